import { InputError } from '../errors.js';
import type { ClusterModel, NodeModel, Secrets } from '../model.js';
import { isWifiInterface } from '../inventory/net.js';
import { toYaml } from './yaml.js';

/** The Pi's on-board Wi-Fi interface. */
export const WIFI_INTERFACE = 'wlan0';


/** Address/route/DNS settings of the interface the node is reached on. */
function addressing(cluster: ClusterModel, node: NodeModel): Record<string, unknown> {
  const dns = cluster.network.dns;
  const search = cluster.network.searchDomains;
  const nameservers =
    dns.length > 0 || search.length > 0
      ? { nameservers: { ...(dns.length > 0 ? { addresses: [...dns] } : {}), ...(search.length > 0 ? { search: [...search] } : {}) } }
      : {};
  if (node.address.mode === 'dhcp') {
    return { dhcp4: true, ...nameservers };
  }
  // the validator (rules.ts) refuses a static address without network.gateway
  return {
    dhcp4: false,
    addresses: [`${node.address.address}/${node.address.prefix}`],
    routes: [{ to: 'default', via: cluster.network.gateway! }],
    ...nameservers,
  };
}

/**
 * netplan v2 `network-config` for the NoCloud seed: the primary interface (eth0 on a Pi) gets the
 * node's static address or DHCP and `optional: false` (first boot waits for it); when the cluster has
 * Wi-Fi, `wlan0` joins it (with the PSK from the secrets), optional unless it IS the primary interface.
 */
export function renderNetworkConfig(cluster: ClusterModel, node: NodeModel, secrets: Secrets): string {
  const primary = cluster.network.interface;
  const ethernets: Record<string, unknown> = {};
  const wifis: Record<string, unknown> = {};
  const wifi = cluster.wifi;

  if (wifi) {
    if (!secrets.wifiPsk) {
      throw new InputError(`${cluster.source}: wifi is configured but the secrets store has no Wi-Fi PSK`, {
        hint: 'store the Wi-Fi passphrase with the secrets command (key wifi-psk), or remove wifi from cluster.yaml',
      });
    }
    const accessPoint: Record<string, unknown> = { password: secrets.wifiPsk };
    if (wifi.hidden) accessPoint.hidden = true;
    const wifiIf = isWifiInterface(primary) ? primary : WIFI_INTERFACE;
    wifis[wifiIf] = {
      ...(wifiIf === primary ? addressing(cluster, node) : { dhcp4: true }),
      'regulatory-domain': wifi.country,
      'access-points': { [wifi.ssid]: accessPoint },
      optional: wifiIf !== primary,
    };
  }
  // a Wi-Fi network.interface without wifi is refused by the validator (rules.ts)
  if (!isWifiInterface(primary)) {
    ethernets[primary] = { ...addressing(cluster, node), optional: false };
  }

  const network: Record<string, unknown> = { version: 2 };
  if (Object.keys(ethernets).length > 0) network.ethernets = ethernets;
  if (Object.keys(wifis).length > 0) network.wifis = wifis;
  return toYaml({ network });
}
