/**
 * How pi-image reads its command line, for every command at once:
 * - last value wins: a flag given twice (`--root a --root b`) takes its last value, as with ssh and
 *   kubectl; only options declared as arrays collect values (applied centrally by
 *   `lastValueWins` in src/core/last-value.ts, a yargs middleware installed in src/cli.ts);
 * - shared option builders, so the same flag is spelled, defaulted and described the same way in
 *   every command. Defaults live in src/core/defaults.ts.
 */
import type { Io } from '../app/io.js';
import type { SshTargetOptions } from '../app/ssh-target.js';
import { DEFAULT_BUILD_DIR } from '../core/defaults.js';
import { wholeNumber } from './context.js';

/** `[nodes..]`: hostnames from the inventory (with --all as the alternative). */
export const nodesPositional = (describe = 'hostnames from the inventory') => ({ type: 'string' as const, array: true as const, default: [] as string[], describe });

/** --all: every node of the inventory. */
export const allOption = (describe = 'every node of the inventory') => ({ type: 'boolean' as const, default: false, describe });

/** --build-dir: where `pi-image build` wrote <node>.img and <node>.json. */
export const buildDirOption = (describe = 'where node images and build records are') => ({ type: 'string' as const, default: DEFAULT_BUILD_DIR as string, describe });

/** --kubeconfig */
export const kubeconfigOption = (describe = 'kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)') => ({ type: 'string' as const, describe });

/** --context (of a kubeconfig) */
export const kubeContextOption = (describe = 'kubeconfig context (default: its current-context)') => ({ type: 'string' as const, describe });

/** --identity: the admin user's SSH private key. */
export const identityOption = (describe = 'SSH private key (default: $PI_IMAGE_SSH_KEY, then ~/.ssh/id_ed25519)') => ({ type: 'string' as const, describe });

/**
 * How pi-image reaches a node over SSH (kubeconfig, status): key (ssh-agent first), pinned host
 * keys, port and user. Spread into a yargs `.options({...})` call.
 */
export const sshTargetOptions = () => ({
  identity: identityOption('SSH private key (default: $PI_IMAGE_SSH_KEY, then ~/.ssh/id_ed25519); ssh-agent ($SSH_AUTH_SOCK) is tried first'),
  'known-hosts': { type: 'string' as const, describe: 'known_hosts file pi-image pins host keys in (default: ~/.config/pi-image/known_hosts)' },
  'ssh-port': { type: 'string' as const, default: '22', coerce: wholeNumber('--ssh-port', 1, 65535), describe: 'SSH port' },
  user: { type: 'string' as const, describe: "SSH user (default: the inventory's admin user)" },
});

/** The SSH part of a use case's options from the arguments `sshTargetOptions` declares (and --host/--timeout). */
export function sshTarget(argv: SshTargetArgs & { host?: string | undefined }, io: Io, timeoutMs: number): SshTargetOptions {
  return {
    sshPort: argv['ssh-port'],
    timeoutMs,
    ...(argv.identity ? { identity: argv.identity } : {}),
    ...(argv['known-hosts'] ? { knownHosts: argv['known-hosts'] } : {}),
    ...(argv.host ? { host: argv.host } : {}),
    ...(argv.user ? { user: argv.user } : {}),
    ...(io.promptSecret ? { askPassphrase: io.promptSecret } : {}),
  };
}

/** The arguments `sshTargetOptions` declares, as yargs hands them to a handler. */
export interface SshTargetArgs {
  identity?: string;
  'known-hosts'?: string;
  'ssh-port': number;
  user?: string;
}

/** --allow-loop: hidden test override for flash targets. */
export const allowLoopOption = () => ({ type: 'boolean' as const, default: false, hidden: true, describe: 'test override: accept loop devices' });
