/** Small, pure IPv4 / MAC / hostname helpers used by the inventory schema and rules. */

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function isIpv4(s: string): boolean {
  return IPV4.test(s);
}

export function ipv4ToInt(s: string): number {
  return s.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
}

export function intToIpv4(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

export interface Cidr {
  network: number;
  prefix: number;
  /** first and last address of the block (network and broadcast) */
  first: number;
  last: number;
}

/** Parses `10.0.0.0/24`; returns undefined when malformed. Host bits set is allowed (10.0.0.5/24). */
export function parseCidr(s: string): Cidr | undefined {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(s);
  if (!m || !isIpv4(m[1]!)) return undefined;
  const prefix = Number(m[2]);
  if (prefix < 1 || prefix > 32) return undefined;
  const size = 2 ** (32 - prefix);
  const network = Math.floor(ipv4ToInt(m[1]!) / size) * size;
  return { network, prefix, first: network, last: network + size - 1 };
}

export function cidrContains(cidr: Cidr, ip: string): boolean {
  const n = ipv4ToInt(ip);
  return n >= cidr.first && n <= cidr.last;
}

export function formatCidr(c: Cidr): string {
  return `${intToIpv4(c.network)}/${c.prefix}`;
}

/** RFC 1123 hostname label: 1–63 of [a-z0-9-], not starting or ending with '-'. */
export const HOSTNAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** A DNS name (RFC 1123 labels separated by dots), e.g. lan or ntp.example.org; at most 253 characters. */
export const DNS_NAME_RE = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** True for the multicast bit (which includes the broadcast address ff:ff:ff:ff:ff:ff) or all zeros. */
export function isNonUnicastMac(mac: string): 'broadcast' | 'multicast' | 'zero' | undefined {
  if (mac === 'ff:ff:ff:ff:ff:ff') return 'broadcast';
  if (mac === '00:00:00:00:00:00') return 'zero';
  return (parseInt(mac.slice(0, 2), 16) & 1) === 1 ? 'multicast' : undefined;
}

/** Accepts aa:bb:cc:dd:ee:ff or aa-bb-…, any case; returns the lower-case colon form or undefined. */
export function normaliseMac(s: string): string | undefined {
  const m = s.trim().toLowerCase().replace(/-/g, ':');
  return MAC_RE.test(m) ? m : undefined;
}

/** A Wi-Fi interface name (wlan0, wlp1s0 …): netplan puts it under `wifis`, not `ethernets`. */
export function isWifiInterface(name: string): boolean {
  return name.startsWith('wl');
}
