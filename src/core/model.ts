/**
 * The validated, normalised inventory: what every other part of pi-image works from.
 * Produced by `loadInventory` (src/core/inventory/load.ts) from nodes/*.yaml; defaults are
 * already applied (cluster defaults → role defaults → node), so consumers never look at raw YAML.
 */

export type Role = 'server' | 'agent';
export type Board = 'pi4' | 'pi5';
export type BootMedium = 'sd' | 'usb' | 'netboot';

export interface StaticAddress {
  mode: 'static';
  /** IPv4 address without prefix, e.g. 10.0.0.11 */
  address: string;
  /** prefix length taken from the cluster CIDR, e.g. 24 */
  prefix: number;
}
export interface DhcpAddress {
  mode: 'dhcp';
}
export type NodeAddress = StaticAddress | DhcpAddress;

export interface Taint {
  key: string;
  value: string;
  effect: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
}

export interface DataDisk {
  /** block device or stable path, e.g. /dev/disk/by-label/rancher or /dev/sda1 */
  device: string;
  /** where it is mounted; /var/lib/rancher for netboot nodes */
  mountPoint: string;
  /** filesystem type, default ext4 */
  fsType: string;
}

export interface NodeModel {
  hostname: string;
  role: Role;
  /** true only on the first server of an embedded-etcd cluster */
  clusterInit: boolean;
  board: Board;
  boot: BootMedium;
  address: NodeAddress;
  /** lower-case colon-separated MAC, when known (required for netboot) */
  mac?: string;
  /** 8 lower-case hex digits Pi serial, when known (required for netboot) */
  serial?: string;
  /** node labels applied by k3s (`node-label`), merged: role defaults then node */
  labels: Record<string, string>;
  taints: Taint[];
  /** local disk for /var/lib/rancher (required for netboot) */
  dataDisk?: DataDisk;
  /** extra k3s config.yaml keys for this node (merged over role defaults) */
  k3sExtra: Record<string, unknown>;
  /** where this node came from, for messages */
  source: string;
}

export interface WifiModel {
  ssid: string;
  country: string;
  /** true when the PSK is expected in the secrets store (`wifi-psk`) */
  hidden: boolean;
}

export interface ClusterModel {
  name: string;
  k3s: {
    /** pinned version like v1.33.5+k3s1; absent when only a channel is given */
    version?: string;
    /** release channel (stable, latest, v1.33); used only when version is absent */
    channel?: string;
    /** https URL every joining node talks to, e.g. https://10.0.0.11:6443 */
    serverUrl: string;
    /** optional directory (relative to the inventory) with the air-gap k3s binary + images */
    airgapDir?: string;
    /** sha256 of the k3s binary for the installer download path (hex), when pinned */
    binarySha256?: string;
  };
  network: {
    mode: 'static' | 'dhcp';
    /** e.g. 10.0.0.0/24 (static mode) */
    cidr?: string;
    gateway?: string;
    dns: string[];
    searchDomains: string[];
    /** the interface first boot depends on, eth0 on a Pi */
    interface: string;
  };
  admin: {
    user: string;
    sshKeys: string[];
    /** extra groups beyond the Raspberry Pi OS defaults */
    groups: string[];
  };
  timezone: string;
  locale: string;
  keyboardLayout: string;
  ntpServers: string[];
  wifi?: WifiModel;
  /** base image catalogue name (images/<name>.yaml) */
  baseImage: string;
  /** copy manifests/ onto server images */
  manifests: boolean;
  source: string;
}

export interface Inventory {
  cluster: ClusterModel;
  /** nodes in a stable order: servers first (cluster-init first), then by hostname */
  nodes: NodeModel[];
  /** inventory directory (as given); used only by adapters, never by the pure core */
  dir: string;
}

/** Secrets as they reach the pure core. Generated and stored encrypted by src/adapters/secrets.ts. */
export interface Secrets {
  /** k3s server token (servers only) */
  clusterToken: string;
  /** k3s agent token (agents only) */
  agentToken: string;
  /** seed for per-node k3s node passwords (HMAC(seed, hostname)) */
  nodePasswordSeed: string;
  /** Wi-Fi PSK, when the cluster has Wi-Fi */
  wifiPsk?: string;
}

/** One rendered file, as it lands in the image. */
export interface RenderedFile {
  /** path relative to its target: for `boot` the FAT root, for `root` the rootfs root (absolute, e.g. /etc/rancher/k3s/config.yaml) */
  path: string;
  target: 'boot' | 'root' | 'build';
  mode: number;
  contents: string;
  /** true when the file holds a secret (never print its contents) */
  secret: boolean;
}

export interface NodeFileSet {
  node: string;
  instanceId: string;
  files: RenderedFile[];
}
