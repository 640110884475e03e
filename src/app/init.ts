/**
 * `pi-image init [dir]`: scaffold a new inventory. On a terminal it asks for every value not given
 * by a flag (the default in brackets; Enter takes it); without one it uses the flags and defaults.
 * It never overwrites: a directory that already holds YAML files is refused. The files appear
 * together (written to a temporary sibling directory, then renamed into place) and are validated
 * with the same code as `pi-image validate`.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, rmdir, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join, relative, sep } from 'node:path';
import { packagePath } from '../adapters/paths.js';
import { InputError, IoError } from '../core/errors.js';
import { intToIpv4, parseCidr } from '../core/inventory/net.js';
import type { ValidationResult } from '../core/inventory/validate.js';
import { checkScaffoldOptions, defaultScaffoldOptions, planScaffold, type Scaffold, type ScaffoldOptions } from '../core/scaffold.js';
import { atomicWriteFile } from '../adapters/atomic-write.js';
import { checkInventory, displayPath } from './inventory.js';

export type InitAnswers = Partial<Omit<ScaffoldOptions, 'schemaDir' | 'sshKeys'>>;

export interface InitRequest {
  /** absolute path of the inventory directory to create */
  dir: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** values given by flags; the rest are asked (terminal) or defaulted */
  given: InitAnswers;
  /** public key files (--ssh-key, repeatable) */
  sshKeyFiles: string[];
  /** asks one question on the terminal; undefined: no terminal (or --yes), use defaults */
  prompt?: (question: string) => Promise<string>;
  /** prints a line for the person answering (why an answer was not taken) */
  say?: (text: string) => void;
}

class Problem {
  constructor(readonly message: string) {}
}

export interface InitResult {
  dir: string;
  files: string[];
  scaffold: Scaffold;
  validation: ValidationResult;
}

/** Refuses a directory that already holds an inventory (any *.yaml) or is not a directory. */
async function checkTarget(dir: string, shown: string): Promise<void> {
  let entries: string[];
  try {
    const st = await stat(dir);
    if (!st.isDirectory()) throw new InputError(`${shown} exists and is not a directory`, { hint: 'give another directory: `pi-image init DIR`' });
    entries = await readdir(dir);
  } catch (err) {
    if (err instanceof InputError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new IoError(`cannot read ${shown}: ${(err as Error).message}`, { cause: err });
  }
  const yaml = entries.filter((f) => /\.ya?ml$/.test(f)).sort();
  if (yaml.length > 0) {
    throw new InputError(`${shown} already holds an inventory (${yaml.slice(0, 4).join(', ')}${yaml.length > 4 ? ', …' : ''}); init never overwrites one`, {
      hint: `check it with \`pi-image validate -i ${shown}\`, or give another directory: \`pi-image init DIR\``,
    });
  }
}

/** Public key lines of a key file (one or more, as in authorized_keys). */
export async function readPublicKeys(file: string, shown: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputError(`--ssh-key ${shown}: ${code === 'ENOENT' ? 'no such file' : `cannot read it (${code ?? (err as Error).message})`}`, {
      hint: 'give your public key file, e.g. --ssh-key ~/.ssh/id_ed25519.pub (create one with `ssh-keygen -t ed25519`)',
    });
  }
  if (text.includes('PRIVATE KEY-----')) {
    throw new InputError(`--ssh-key ${shown} is a private key; give the public half (${shown}.pub)`, {
      hint: 'the private key never goes into the inventory',
    });
  }
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (lines.length === 0) throw new InputError(`--ssh-key ${shown} is empty`);
  return lines;
}

function expandHome(path: string, env: NodeJS.ProcessEnv): string {
  return path === '~' || path.startsWith('~/') ? join(env.HOME ?? homedir(), path.slice(1)) : path;
}

/** Asks the questions whose answers were not given; an answer is re-asked until it is acceptable. */
async function ask(req: InitRequest, prompt: (q: string) => Promise<string>): Promise<{ answers: InitAnswers; keyFiles: string[] }> {
  const d = { ...defaultScaffoldOptions(), ...req.given };
  const answers: InitAnswers = { ...req.given };
  const question = async <T>(text: string, def: string, parse: (s: string) => T | Problem): Promise<T> => {
    for (let attempt = 0; attempt < 3; attempt++) {
      const raw = (await prompt(`${text} [${def}]: `)).trim();
      const value = parse(raw === '' ? def : raw);
      if (!(value instanceof Problem)) return value;
      req.say?.(`  ${value.message}\n`);
    }
    throw new InputError(`init: no acceptable answer to "${text}"`, { hint: 'run `pi-image init --help` and give the value as a flag' });
  };
  const count = (min: number) => (s: string) => (/^\d+$/.test(s) && Number(s) >= min ? Number(s) : new Problem(`a whole number ≥ ${min}, please`));
  const check = (flag: string, o: InitAnswers, value: string) => {
    const problem = checkScaffoldOptions({ ...defaultScaffoldOptions(), ...o }).find((p) => p.startsWith(flag));
    return problem === undefined ? value : new Problem(problem);
  };

  if (req.given.clusterName === undefined) {
    answers.clusterName = await question('Cluster name', d.clusterName, (s) => check('--cluster-name', { clusterName: s }, s));
  }
  if (req.given.servers === undefined) {
    answers.servers = await question('Servers (control plane: 1, 3 or 5)', String(d.servers), (s) => {
      const n = count(1)(s);
      return typeof n === 'number' && n > 1 && n % 2 === 0 ? new Problem('an odd number (etcd quorum), please') : n;
    });
  }
  if (req.given.agents === undefined) answers.agents = await question('Agents (workers)', String(d.agents), count(0));
  if (req.given.dhcp === undefined && req.given.cidr === undefined) {
    const net = await question('Node network (CIDR), or "dhcp"', d.cidr, (s) => (s === 'dhcp' || parseCidr(s) ? s : new Problem('a network such as 10.0.0.0/24, or dhcp')));
    if (net === 'dhcp') answers.dhcp = true;
    else {
      answers.dhcp = false;
      answers.cidr = net;
    }
  }
  if (answers.dhcp === true && req.given.endpoint === undefined) {
    answers.endpoint = await question('Address the nodes join (DNS name or VIP of the servers)', `${answers.clusterName ?? d.clusterName}.lan`, (s) =>
      /^[a-z0-9.-]+$/i.test(s) ? s : new Problem('a host name or IPv4 address, please'),
    );
  }
  if (answers.dhcp !== true && req.given.gateway === undefined) {
    const def = intToIpv4(parseCidr(answers.cidr ?? d.cidr)!.first + 1);
    answers.gateway = await question('Gateway', def, (s) => check('--gateway', { ...answers, gateway: s }, s));
  }
  if (req.given.board === undefined) {
    answers.board = await question('Board (pi4 or pi5)', d.board, (s) => (s === 'pi4' || s === 'pi5' ? s : new Problem('pi4 or pi5, please')));
  }
  let keyFiles = req.sshKeyFiles;
  if (keyFiles.length === 0) {
    const home = req.env.HOME ?? homedir();
    const found = ['id_ed25519.pub', 'id_ecdsa.pub', 'id_rsa.pub'].map((f) => join(home, '.ssh', f)).find((f) => existsSync(f));
    const def = found ? `~/.ssh/${basename(found)}` : 'none: a placeholder';
    const file = await question('SSH public key file for the admin user', def, (s) => s);
    keyFiles = file.startsWith('none') ? [] : [file];
  }
  return { answers, keyFiles };
}

/** Writes the files into a temporary sibling directory, then renames it into place (or moves each file into an existing empty directory). */
async function writeAll(dir: string, files: Scaffold['files']): Promise<void> {
  const exists = await stat(dir).then(
    () => true,
    () => false,
  );
  if (exists) {
    for (const f of files) await atomicWriteFile(join(dir, f.name), f.text);
    return;
  }
  const tmp = join(dirname(dir), `.${basename(dir)}.init-${randomBytes(4).toString('hex')}`);
  try {
    await mkdir(dirname(dir), { recursive: true });
    await mkdir(tmp, { mode: 0o755 });
    for (const f of files) await atomicWriteFile(join(tmp, f.name), f.text);
    await rename(tmp, dir);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    if (err instanceof IoError) throw err;
    throw new IoError(`cannot create ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  } finally {
    await rmdir(tmp).catch(() => undefined);
  }
}

export async function initInventory(req: InitRequest): Promise<InitResult> {
  const shown = displayPath(req.dir, req.cwd) || '.';
  await checkTarget(req.dir, shown);
  const { answers, keyFiles } = req.prompt ? await ask(req, req.prompt) : { answers: req.given, keyFiles: req.sshKeyFiles };
  const sshKeys: string[] = [];
  for (const file of keyFiles) sshKeys.push(...(await readPublicKeys(expandHome(file, req.env), file)));
  // the modeline: relative inside a checkout (the repository's nodes/ → ../schema), else the installed package's absolute path
  const schema = packagePath('schema');
  const rel = relative(req.dir, schema);
  const schemaDir = relative(packagePath(), req.dir).startsWith('..') ? schema : rel.split(sep).join('/');
  const scaffold = planScaffold({ ...defaultScaffoldOptions(), ...answers, sshKeys, schemaDir });
  // a second look right before writing: nothing may have appeared while the questions were asked
  await checkTarget(req.dir, shown);
  await writeAll(req.dir, scaffold.files);
  const validation = await checkInventory(req.dir, { cwd: req.cwd });
  return { dir: shown, files: scaffold.files.map((f) => f.name), scaffold, validation };
}
