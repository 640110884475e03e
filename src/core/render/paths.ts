/** Where the rendered files land on a node (absolute rootfs paths) and other fixed on-node locations. */
export const NODE_PATHS = {
  k3sConfig: '/etc/rancher/k3s/config.yaml',
  /** servers: the cluster token (`token-file`); agents: the agent token (`token-file`) */
  tokenFile: '/etc/rancher/k3s/pi-image-token',
  /** servers only: the agent token agents join with (`agent-token-file`) */
  agentTokenFile: '/etc/rancher/k3s/pi-image-agent-token',
  nodePassword: '/etc/rancher/node/password',
  joinScript: '/usr/local/sbin/pi-image-join',
  joinUnit: '/etc/systemd/system/pi-image-join.service',
  statusDir: '/var/lib/pi-image',
  /** the official k3s install.sh, when the image was baked with it (air-gapped installs) */
  bakedInstaller: '/usr/local/share/pi-image/install.sh',
  k3sBinary: '/usr/local/bin/k3s',
  /** the FAT boot partition on Raspberry Pi OS (bookworm and later), holding the NoCloud seed */
  seedDir: '/boot/firmware',
  /** drop-in that orders cloud-init-local.service after the seed's mount */
  seedMountDropIn: '/etc/systemd/system/cloud-init-local.service.d/10-pi-image-seed-mount.conf',
  defaultDataDir: '/var/lib/rancher/k3s',
  /**
   * Where the bake stages the air-gap image tarball and a server's manifests. Not under
   * /var/lib/rancher: a data disk mounted there (every netboot node) would hide them. The join
   * script copies them into <data-dir>/agent/images and <data-dir>/server/manifests once the disk
   * is mounted, before k3s starts.
   */
  airgapStage: '/var/lib/pi-image/airgap',
  manifestsStage: '/var/lib/pi-image/manifests',
} as const;

/** The systemd unit name of the join service. */
export const JOIN_UNIT_NAME = 'pi-image-join.service';
