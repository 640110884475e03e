/**
 * Every default a pi-image command falls back to, in one place (flags document them in --help,
 * docs/cli.md repeats them). Paths are relative to the working directory.
 */

/** --inventory */
export const DEFAULT_INVENTORY_DIR = 'nodes';
/** render --out */
export const DEFAULT_RENDER_DIR = 'build';
/** --build-dir of build, diff, boot-test, flash, netboot and rebuild (build's old --out is a hidden alias) */
export const DEFAULT_BUILD_DIR = 'build/images';
/** where evidence folders go: diff --evidence without a DIR, rebuild --evidence-dir */
export const DEFAULT_EVIDENCE_DIR = 'docs/governance/reviews';
/** build --jobs */
export const DEFAULT_BUILD_JOBS = 2;
/** build --compress */
export const DEFAULT_COMPRESS = 'none';
/** boot-test --timeout: an emulated arm64 boot takes minutes */
export const DEFAULT_BOOT_TEST_TIMEOUT = '20m';
/** verify --timeout */
export const DEFAULT_VERIFY_TIMEOUT = '10m';
/** verify/rebuild --interval */
export const DEFAULT_POLL_INTERVAL = '5s';
/** kubeconfig --timeout (SSH connect and command) */
export const DEFAULT_SSH_TIMEOUT = '30s';
/** kubeconfig --ssh-port */
export const DEFAULT_SSH_PORT = 22;
/** rebuild --budget */
export const DEFAULT_REBUILD_BUDGET = '60m';
/** rebuild --drain-timeout */
export const DEFAULT_DRAIN_TIMEOUT = '5m';

/**
 * How long systemd waits for a node's data disk at boot (`x-systemd.device-timeout` of its fstab
 * line). k3s requires the mount (RequiresMountsFor): if the disk shows up after this, the mount
 * fails and k3s stays down until someone restarts it, on every later boot too (the join script's
 * own wait covers the first boot only). A slow USB disk, a hub, or a loaded machine must not cost
 * the node: 30 s was seen to be too short.
 */
export const DATA_DISK_DEVICE_TIMEOUT = '10min';
