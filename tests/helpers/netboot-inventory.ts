/** A small validated-shape Inventory for netboot unit tests (pi-cluster-1..4 as in nodes/). */
import type { Inventory, NodeModel } from '../../src/core/model.js';

export function netbootNode(hostname: string, ip: string, extra: Partial<NodeModel> = {}): NodeModel {
  return {
    hostname,
    role: 'agent',
    clusterInit: false,
    board: 'pi4',
    boot: 'sd',
    address: { mode: 'static', address: ip, prefix: 24 },
    labels: {},
    taints: [],
    k3sExtra: {},
    source: `nodes/${hostname}.yaml`,
    ...extra,
  };
}

export function netbootInventory(nodes: NodeModel[]): Inventory {
  return {
    dir: 'nodes',
    nodes,
    cluster: {
      name: 'pi-cluster',
      k3s: { version: 'v1.33.5+k3s1', serverUrl: 'https://10.0.0.11:6443' },
      network: { mode: 'static', cidr: '10.0.0.0/24', gateway: '10.0.0.1', dns: ['10.0.0.1'], searchDomains: [], interface: 'eth0' },
      admin: { user: 'pi-admin', sshKeys: [], groups: [] },
      timezone: 'Europe/Berlin',
      locale: 'en_GB.UTF-8',
      keyboardLayout: 'gb',
      ntpServers: [],
      baseImage: 'raspios-lite-arm64-trixie',
      manifests: false,
      source: 'nodes/cluster.yaml',
    },
  };
}

export const DATA_DISK = { device: '/dev/disk/by-label/rancher', mountPoint: '/var/lib/rancher', fsType: 'ext4' };
