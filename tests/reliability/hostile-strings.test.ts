/**
 * Hostile strings through every inventory field. Each string (newlines, quotes, `$()`, backticks,
 * NUL, YAML syntax…) is put into one field of the sample inventory at a time:
 *   - refused by validation → the error names that file and field, and no inventory comes back;
 *   - accepted → the node's files are rendered and must be safe: the join script passes shellcheck
 *     and is the baseline script except for its quoted assignments, every YAML file parses to the
 *     baseline's shape (same top-level keys, same write_files paths, same runcmd), no comment line
 *     changes, and the value survives the YAML round trip unchanged where it lands.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { loadTemplates } from '../../src/adapters/templates.js';
import { fieldPath } from '../../src/core/inventory/diagnostics.js';
import { validateInventory } from '../../src/core/inventory/validate.js';
import type { NodeFileSet } from '../../src/core/model.js';
import { renderNodeFiles } from '../../src/core/render/node.js';
import type { Templates } from '../../src/core/render/templates.js';
import { BUILD_YEAR, FAKE_SECRETS, FAKE_WIFI_PSK } from '../helpers/render-fixture.js';
import { sampleFiles } from '../helpers/sample-inventory.js';

export const HOSTILE = [
  'a\nruncmd: [[touch, /tmp/pwned]]',
  'it\'s "quoted"',
  '$(touch /tmp/pwned)',
  '`touch /tmp/pwned`',
  'a\u0000b',
  "x'; touch /tmp/pwned; echo '",
  '&a *a {x: 1} # c',
  'a\r\nb',
  '- item',
  'key: value',
  '\u2028line',
  'x\ty',
];

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGuIB3qOVWsjCA/gMZzv/hWWOpSkE5AJnttbHisIo+4x';
const C = 'cluster.yaml';
const N = 'pi-cluster-4.yaml';

interface Field {
  file: string;
  /** path of the value; a trailing `{key}` sets a map key instead */
  path: (string | number)[];
  key?: boolean;
  /** value from the hostile string (default: the string itself) */
  value?: (h: string) => unknown;
}

const fields: Field[] = [
  { file: C, path: ['name'] },
  { file: C, path: ['k3s', 'version'] },
  { file: C, path: ['k3s', 'endpoint'] },
  { file: C, path: ['k3s', 'airgapDir'] },
  { file: C, path: ['k3s', 'sha256'] },
  { file: C, path: ['network', 'cidr'] },
  { file: C, path: ['network', 'gateway'] },
  { file: C, path: ['network', 'dns', 0] },
  { file: C, path: ['network', 'searchDomains', 0] },
  { file: C, path: ['network', 'interface'] },
  { file: C, path: ['admin', 'user'] },
  { file: C, path: ['admin', 'sshKeys', 0] },
  { file: C, path: ['admin', 'sshKeys', 0], value: (h) => `${KEY} ${h}` },
  { file: C, path: ['admin', 'groups', 0] },
  { file: C, path: ['timezone'] },
  { file: C, path: ['locale'] },
  { file: C, path: ['keyboard'] },
  { file: C, path: ['ntp', 0] },
  { file: C, path: ['wifi', 'ssid'] },
  { file: C, path: ['wifi', 'country'] },
  { file: C, path: ['image'] },
  { file: C, path: ['defaults', 'agent', 'labels', 'pi-image.io/pool'] },
  { file: C, path: ['defaults', 'agent', 'labels'], key: true },
  { file: C, path: ['defaults', 'agent', 'taints', 0] },
  { file: C, path: ['defaults', 'server', 'k3s', 'disable', 0] },
  { file: C, path: ['defaults', 'server', 'k3s'], key: true },
  { file: N, path: ['hostname'] },
  { file: N, path: ['role'] },
  { file: N, path: ['board'] },
  { file: N, path: ['ip'] },
  { file: N, path: ['mac'] },
  { file: N, path: ['serial'] },
  { file: N, path: ['labels', 'pi-image.io/rack'] },
  { file: N, path: ['labels'], key: true },
  { file: N, path: ['taints', 0] },
  { file: N, path: ['taints', 0], value: (h) => ({ key: h, value: 'x', effect: 'NoSchedule' }) },
  { file: N, path: ['taints', 0], value: (h) => ({ key: 'dedicated', value: h, effect: 'NoSchedule' }) },
  { file: N, path: ['dataDisk', 'device'] },
  { file: N, path: ['dataDisk', 'mountPoint'] },
  { file: N, path: ['k3s', 'kubelet-arg', 0] },
  { file: N, path: ['k3s', 'node-label', 0] },
  { file: N, path: ['k3s', 'disable'] },
  { file: N, path: ['k3s'], key: true },
];

let templates: Templates;
let baseline: NodeFileSet;
let work: string;
const accepted: { name: string; set: NodeFileSet; value: string; field: Field }[] = [];
let refused = 0;
const outcomes: { name: string; field: Field; errors?: { file: string; field: string; message: string }[] }[] = [];

function baseFiles(): Record<string, string> {
  const f = sampleFiles();
  f[C] += '\nwifi:\n  ssid: pi-lab\n  country: DE\n';
  f[N] += 'dataDisk:\n  device: /dev/disk/by-label/rancher\n';
  return f;
}

function withValue(files: Record<string, string>, field: Field, hostile: string): Record<string, string> {
  const doc = parseDocument(files[field.file]!);
  if (field.key) doc.setIn([...field.path, hostile], 'x');
  else doc.setIn(field.path, doc.createNode(field.value ? field.value(hostile) : hostile));
  return { ...files, [field.file]: doc.toString() };
}

const SECRETS = { ...FAKE_SECRETS, wifiPsk: FAKE_WIFI_PSK };

function render(files: Record<string, string>, names?: Record<string, string>): { set?: NodeFileSet; errors: { file: string; field: string; message: string }[] } {
  const list = Object.entries(files).map(([name, text]) => ({ path: `nodes/${names?.[name] ?? name}`, text }));
  const r = validateInventory(list, { dir: '/inv', displayDir: 'nodes' });
  if (!r.inventory) return { errors: r.errors };
  const sets = renderNodeFiles(r.inventory, SECRETS, templates, { buildYear: BUILD_YEAR });
  return { set: sets.find((s) => s.node !== 'pi-cluster-1' && s.node !== 'pi-cluster-2' && s.node !== 'pi-cluster-3') ?? sets[sets.length - 1]!, errors: [] };
}

beforeAll(async () => {
  templates = await loadTemplates();
  const r = render(baseFiles());
  expect(r.errors).toEqual([]);
  baseline = r.set!;
  work = mkdtempSync(join(tmpdir(), 'pi-image-hostile-'));
  for (const field of fields) {
    for (const h of HOSTILE) {
      const v = field.value ? field.value(h) : h;
      const name = `${field.file} ${fieldPath(field.path)}${field.key ? ' (key)' : ''} = ${JSON.stringify(v)}`;
      const res = render(withValue(baseFiles(), field, h));
      if (res.set) {
        accepted.push({ name, set: res.set, value: typeof v === 'string' ? v : h, field });
        outcomes.push({ name, field });
      } else {
        refused++;
        outcomes.push({ name, field, errors: res.errors });
      }
    }
  }
}, 300_000);
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

const JOIN = '/usr/local/sbin/pi-image-join';
const YAML_FILES = ['user-data', 'network-config', 'meta-data', '/etc/rancher/k3s/config.yaml'];

function file(set: NodeFileSet, path: string): string {
  const f = set.files.find((x) => x.path === path);
  if (!f) throw new Error(`${path} not rendered`);
  return f.contents;
}

function withoutAssignments(script: string): string {
  return script
    .split('\n')
    .filter((l) => !/^readonly [A-Z0-9_]+=/.test(l))
    .join('\n');
}

function comments(text: string): string[] {
  return text.split('\n').filter((l) => l.trimStart().startsWith('#'));
}

function contains(data: unknown, value: string): boolean {
  if (typeof data === 'string') return data.includes(value);
  if (Array.isArray(data)) return data.some((x) => contains(x, value));
  if (data && typeof data === 'object') return Object.entries(data).some(([k, v]) => k.includes(value) || contains(v, value));
  return false;
}

describe('reliability: hostile strings in every inventory field', () => {
  it('each field × each hostile string is refused naming the field, or rendered safely', () => {
    for (const o of outcomes) {
      if (o.errors === undefined) continue;
      const where = fieldPath(o.field.path);
      const named = o.errors.some((e) => e.file === `nodes/${o.field.file}` && (e.field.startsWith(where) || where.startsWith(e.field) || (o.field.key && e.field.includes(where))));
      expect(named, `${o.name}: ${JSON.stringify(o.errors)}`).toBe(true);
      // eslint-disable-next-line no-control-regex
      for (const e of o.errors) expect(e.message, o.name).not.toMatch(/[\u0000-\u001f]/);
    }
    // a strict schema: most hostile strings are refused; the ones accepted are free text (SSID, key comment, k3s values)
    expect(refused).toBeGreaterThan(fields.length * HOSTILE.length * 0.7);
  });

  it('a node file name with a newline, quotes or $() is refused naming the file', () => {
    for (const h of HOSTILE) {
      const r = render(baseFiles(), { [N]: `${h}.yaml` });
      expect(r.set, h).toBeUndefined();
      expect(r.errors.some((e) => e.message.includes('is not a valid hostname') || e.message.includes('is not <hostname>.yaml')), JSON.stringify(r.errors)).toBe(true);
    }
  });

  it('accepted values leave the join script and the YAML files intact', () => {
    expect(accepted.length).toBeGreaterThan(0);
    const scripts: string[] = [];
    const seen = new Set<string>();
    const baseScript = withoutAssignments(file(baseline, JOIN));
    accepted.forEach(({ name, set, value, field }, i) => {
      const script = file(set, JOIN);
      expect(withoutAssignments(script), name).toBe(baseScript);
      if (!seen.has(script)) {
        seen.add(script);
        const p = join(work, `join-${i}.sh`);
        writeFileSync(p, script);
        scripts.push(p);
      }
      for (const path of YAML_FILES) {
        const text = file(set, path);
        const base = file(baseline, path);
        expect(comments(text), `${name}: ${path} comments`).toEqual(comments(base));
        for (const version of ['1.1', '1.2'] as const) {
          const doc = parseDocument(text, { version, uniqueKeys: true });
          expect(doc.errors, `${name}: ${path} (YAML ${version})`).toEqual([]);
          const data = doc.toJS() as Record<string, unknown>;
          const baseData = parseDocument(base, { version }).toJS() as Record<string, unknown>;
          // a k3s option adds its own key to config.yaml, nothing else does
          const added = path.endsWith('config.yaml') && field.path[0] === 'k3s' ? [String(field.path[1])] : [];
          expect(Object.keys(data).filter((k) => !added.includes(k)), `${name}: ${path}`).toEqual(Object.keys(baseData).filter((k) => !added.includes(k)));
          if (path === 'user-data') {
            const paths = (d: Record<string, unknown>) => (d.write_files as { path: string }[]).map((w) => w.path);
            expect(paths(data), name).toEqual(paths(baseData));
            expect(data.runcmd, name).toEqual(baseData.runcmd);
            expect(data.ssh_pwauth).toBe(false);
            const user = data.user as { ssh_authorized_keys: string[] };
            expect(user.ssh_authorized_keys.length, name).toBe(1);
          }
        }
      }
      // the value lands somewhere intact (not mangled into YAML structure)
      const all = YAML_FILES.map((p) => parseDocument(file(set, p), { version: '1.1' }).toJS());
      const plain = value;
      if (YAML_FILES.some((p) => file(set, p) !== file(baseline, p))) {
        expect(all.some((d) => contains(d, plain)), `${name}: value not found intact`).toBe(true);
      }
    });
    const r = spawnSync('shellcheck', ['--shell=bash', '--severity=style', ...scripts], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const n = spawnSync('bash', ['-n', scripts[0]!], { encoding: 'utf8' });
    expect(n.status, n.stderr).toBe(0);
  });
});
