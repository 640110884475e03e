/** A small validated-shape Inventory for netboot unit tests (pi-cluster-1..4 as in nodes/). */
import type { Inventory, NodeModel } from '../../src/core/model.js';
import { clusterModel } from './cluster-model.js';

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
  return { dir: 'nodes', nodes, cluster: clusterModel({ manifests: false }) };
}

export const DATA_DISK = { device: '/dev/disk/by-label/rancher', mountPoint: '/var/lib/rancher', fsType: 'ext4' };
