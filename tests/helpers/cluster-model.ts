/** A validated-shape ClusterModel like nodes/cluster.yaml's, for tests that build an Inventory directly. */
import type { ClusterModel } from '../../src/core/model.js';

export function clusterModel(over: Partial<ClusterModel> = {}): ClusterModel {
  return {
    name: 'pi-cluster',
    k3s: { version: 'v1.33.5+k3s1', serverUrl: 'https://10.0.0.11:6443' },
    network: { mode: 'static', cidr: '10.0.0.0/24', gateway: '10.0.0.1', dns: ['10.0.0.1'], searchDomains: [], interface: 'eth0' },
    admin: { user: 'pi-admin', sshKeys: [], groups: [] },
    timezone: 'Europe/Berlin',
    locale: 'en_GB.UTF-8',
    keyboardLayout: 'gb',
    ntpServers: [],
    baseImage: 'raspios-lite-arm64-trixie',
    manifests: true,
    source: 'nodes/cluster.yaml',
    ...over,
  };
}
