/**
 * A fixed 4-node inventory for the renderer's tests (golden files), built directly as an Inventory
 * so the goldens do not move when the sample nodes/ changes. Secrets are obviously fake.
 */
import type { ClusterModel, Inventory, NodeModel, Secrets } from '../../src/core/model.js';

export const FAKE_SECRETS: Secrets = {
  clusterToken: 'FAKE-CLUSTER-TOKEN-0123456789abcdef',
  agentToken: 'FAKE-AGENT-TOKEN-fedcba9876543210',
  nodePasswordSeed: 'FAKE-NODE-PASSWORD-SEED',
};

export const FAKE_WIFI_PSK = 'FAKE-wifi-passphrase';

export const BUILD_YEAR = 2025;

export function fixtureCluster(): ClusterModel {
  return {
    name: 'pi-cluster',
    k3s: {
      version: 'v1.33.5+k3s1',
      serverUrl: 'https://10.0.0.11:6443',
      binarySha256: '3f'.repeat(32),
    },
    network: {
      mode: 'static',
      cidr: '10.0.0.0/24',
      gateway: '10.0.0.1',
      dns: ['10.0.0.1', '9.9.9.9'],
      searchDomains: ['lan'],
      interface: 'eth0',
    },
    admin: {
      user: 'pi-admin',
      sshKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAK ops@example'],
      groups: ['docker'],
    },
    timezone: 'Europe/Berlin',
    locale: 'en_GB.UTF-8',
    keyboardLayout: 'gb',
    ntpServers: ['0.debian.pool.ntp.org', '1.debian.pool.ntp.org'],
    baseImage: 'raspios-lite-arm64-trixie',
    manifests: true,
    source: 'nodes/cluster.yaml',
  };
}

function node(n: Partial<NodeModel> & Pick<NodeModel, 'hostname' | 'role'>): NodeModel {
  return {
    clusterInit: false,
    board: 'pi4',
    boot: 'sd',
    address: { mode: 'dhcp' },
    labels: {},
    taints: [],
    k3sExtra: {},
    source: `nodes/${n.hostname}.yaml`,
    ...n,
  };
}

/** pi-cluster-1 server (cluster-init), -2 static agent, -3 DHCP agent with a USB data disk, -4 netboot agent. */
export function fixtureInventory(): Inventory {
  return {
    cluster: fixtureCluster(),
    dir: '/nonexistent/nodes',
    nodes: [
      node({
        hostname: 'pi-cluster-1',
        role: 'server',
        clusterInit: true,
        board: 'pi5',
        address: { mode: 'static', address: '10.0.0.11', prefix: 24 },
        mac: '2c:cf:67:00:00:11',
        serial: '5e1c0011',
        labels: { 'pi-image.io/rack': 'shelf-a' },
        k3sExtra: { disable: ['servicelb'], 'node-label': ['pi-image.io/extra=yes'] },
      }),
      node({
        hostname: 'pi-cluster-2',
        role: 'agent',
        address: { mode: 'static', address: '10.0.0.12', prefix: 24 },
        labels: { 'pi-image.io/pool': 'general', 'pi-image.io/rack': 'shelf-a' },
      }),
      node({
        hostname: 'pi-cluster-3',
        role: 'agent',
        boot: 'usb',
        labels: { 'pi-image.io/pool': 'general', 'pi-image.io/rack': 'no' },
        taints: [{ key: 'dedicated', value: 'storage', effect: 'PreferNoSchedule' }],
        dataDisk: { device: '/dev/disk/by-label/data', mountPoint: '/srv/data', fsType: 'ext4' },
      }),
      node({
        hostname: 'pi-cluster-4',
        role: 'agent',
        boot: 'netboot',
        address: { mode: 'static', address: '10.0.0.14', prefix: 24 },
        mac: 'dc:a6:32:00:00:14',
        serial: '4e1c0014',
        labels: { 'pi-image.io/pool': 'general' },
        taints: [{ key: 'gpu', value: '', effect: 'NoSchedule' }],
        dataDisk: { device: '/dev/disk/by-label/rancher', mountPoint: '/var/lib/rancher', fsType: 'ext4' },
      }),
    ],
  };
}

/** The same inventory with Wi-Fi (and the secrets with a PSK). */
export function fixtureWithWifi(): { inventory: Inventory; secrets: Secrets } {
  const inventory = fixtureInventory();
  inventory.cluster.wifi = { ssid: 'pi lab', country: 'DE', hidden: false };
  return { inventory, secrets: { ...FAKE_SECRETS, wifiPsk: FAKE_WIFI_PSK } };
}
