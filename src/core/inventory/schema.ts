/**
 * The inventory file formats (nodes/cluster.yaml and nodes/<hostname>.yaml) as zod schemas.
 * Field-level checks live here; checks across fields and files live in rules.ts.
 * docs/inventory.md documents every field; tests/unit/inventory-docs.test.ts keeps the two in step,
 * and `npm run schema` writes the JSON Schemas in schema/ for editors.
 */
import { z } from 'zod';
import { HOSTNAME_RE, isIpv4, normaliseMac, parseCidr } from './net.js';

export const API_VERSION = 'pi-image/v1';

/** Pinned k3s release, e.g. v1.33.5+k3s1 */
export const K3S_VERSION_RE = /^v1\.(\d+)\.(\d+)\+k3s(\d+)$/;

const ipv4 = z.string().refine(isIpv4, { message: 'is not an IPv4 address (expected e.g. 10.0.0.11)' });
const cidr = z
  .string()
  .refine((s) => parseCidr(s) !== undefined, { message: 'is not an IPv4 CIDR (expected e.g. 10.0.0.0/24)' });
const hostname = z.string().regex(HOSTNAME_RE, {
  message: 'is not a valid hostname (RFC 1123: lower-case letters, digits and "-", 1–63 characters, no leading or trailing "-")',
});

/** Kubernetes label key (optional DNS prefix + name) and value. */
const LABEL_NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$/;
const LABEL_PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export function isLabelKey(key: string): boolean {
  const slash = key.lastIndexOf('/');
  if (slash === -1) return LABEL_NAME.test(key);
  const prefix = key.slice(0, slash);
  return prefix.length <= 253 && LABEL_PREFIX.test(prefix) && LABEL_NAME.test(key.slice(slash + 1));
}
const labelValue = z
  .union([z.string(), z.number(), z.boolean()])
  .transform((v) => String(v))
  .refine((v) => v === '' || LABEL_NAME.test(v), {
    message: 'is not a valid label value (up to 63 of A-Z a-z 0-9 - _ ., starting and ending alphanumeric)',
  });
const labels = z
  .record(z.string().refine(isLabelKey, { message: 'is not a valid label key (e.g. example.com/zone or zone)' }), labelValue)
  .describe('Kubernetes node labels, applied by k3s at registration (node-label)');

export const TAINT_EFFECTS = ['NoSchedule', 'PreferNoSchedule', 'NoExecute'] as const;
const TAINT_RE = /^([^=:\s]+)(?:=([^:\s]*))?:(\w+)$/;
const taint = z.union([
  z.string().transform((s, ctx) => {
    const m = TAINT_RE.exec(s);
    if (!m || !(TAINT_EFFECTS as readonly string[]).includes(m[3]!)) {
      ctx.addIssue({
        code: 'custom',
        message: `is not a taint: expected "key=value:Effect" with Effect one of ${TAINT_EFFECTS.join(', ')}`,
      });
      return z.NEVER;
    }
    return { key: m[1]!, value: m[2] ?? '', effect: m[3] as (typeof TAINT_EFFECTS)[number] };
  }),
  z.strictObject({
    key: z.string().refine(isLabelKey, { message: 'is not a valid taint key' }),
    value: z.string().default(''),
    effect: z.enum(TAINT_EFFECTS),
  }),
]);
const taints = z.array(taint).describe('Kubernetes taints: "key=value:Effect" strings or {key, value, effect}');

const k3sExtra = z
  .record(z.string(), z.unknown())
  .describe('extra keys for /etc/rancher/k3s/config.yaml (e.g. disable: [traefik]); inventory fields win');

const roleDefaults = z.strictObject({
  labels: labels.optional(),
  taints: taints.optional(),
  k3s: k3sExtra.optional(),
});

export const clusterFileSchema = z.strictObject({
  apiVersion: z.literal(API_VERSION, { message: `must be "${API_VERSION}"` }),
  kind: z.literal('Cluster', { message: 'must be "Cluster" in cluster.yaml' }),
  name: hostname.describe('cluster name; used for the kubeconfig context and the secrets key file'),
  k3s: z.strictObject({
    version: z
      .string()
      .regex(K3S_VERSION_RE, { message: 'is not a k3s version (expected e.g. v1.33.5+k3s1)' })
      .optional()
      .describe('pinned k3s release, e.g. v1.33.5+k3s1 (recommended)'),
    channel: z
      .string()
      .regex(/^(stable|latest|testing|v1\.\d+)$/, { message: 'is not a k3s channel (stable, latest, testing or v1.NN)' })
      .optional()
      .describe('k3s release channel, used only when no version is pinned'),
    endpoint: z
      .string()
      .regex(/^[a-z0-9.-]+$/i, { message: 'must be a host name or IPv4 address without scheme or port' })
      .optional()
      .describe('address every node joins (a VIP, DNS name or the first server); default: the cluster-init server'),
    port: z.number().int().min(1).max(65535).default(6443).describe('Kubernetes API port'),
    airgapDir: z
      .string()
      .optional()
      .describe('directory (relative to the inventory) with k3s-arm64, k3s-airgap-images-arm64.tar[.zst] and install.sh'),
    sha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/, { message: 'must be 64 lower-case hex digits' })
      .optional()
      .describe('sha256 of the k3s-arm64 binary for the pinned version; checked by the join script after download'),
  }),
  network: z
    .strictObject({
      dhcp: z.boolean().default(false).describe('true: every node uses DHCP (cidr/gateway not needed)'),
      cidr: cidr.optional().describe('subnet of the nodes, e.g. 10.0.0.0/24 (required for static addresses)'),
      gateway: ipv4.optional().describe('default gateway (required for static addresses)'),
      dns: z.array(ipv4).default([]).describe('DNS servers for static addresses'),
      searchDomains: z.array(z.string()).default([]).describe('DNS search domains'),
      interface: z
        .string()
        .regex(/^[a-z][a-z0-9]{1,14}$/, { message: 'is not an interface name (e.g. eth0)' })
        .default('eth0')
        .describe('the wired interface first boot depends on'),
    })
    .describe('node network'),
  admin: z.strictObject({
    user: z
      .string()
      .regex(/^[a-z_][a-z0-9_-]{0,31}$/, { message: 'is not a valid Linux user name (lower-case, up to 32 characters)' })
      .refine((u) => u !== 'root', { message: 'must not be root; pick an admin user name such as pi-admin' })
      .describe('admin user created on every node (sudo, SSH key login only)'),
    sshKeys: z
      .array(z.string())
      .min(1, { message: 'needs at least one SSH public key: password login is disabled' })
      .describe('SSH public keys allowed to log in as the admin user'),
    groups: z.array(z.string().regex(/^[a-z_][a-z0-9_-]*$/)).default([]).describe('extra groups for the admin user'),
  }),
  timezone: z
    .string()
    .regex(/^(UTC|[A-Z][A-Za-z_+-]*(\/[A-Za-z0-9_+-]+){1,2})$/, { message: 'is not a timezone name (e.g. Europe/Berlin or UTC)' })
    .default('UTC')
    .describe('IANA timezone'),
  locale: z
    .string()
    .regex(/^[a-z]{2,3}_[A-Z]{2}\.UTF-8$/, { message: 'is not a UTF-8 locale (e.g. en_GB.UTF-8)' })
    .default('en_GB.UTF-8')
    .describe('system locale'),
  keyboard: z.string().regex(/^[a-z]{2}$/).default('gb').describe('console keyboard layout'),
  ntp: z.array(z.string()).default([]).describe('NTP servers (default: the distribution pool)'),
  wifi: z
    .strictObject({
      ssid: z.string().min(1).max(32),
      country: z.string().regex(/^[A-Z]{2}$/, { message: 'must be a two-letter country code, e.g. DE' }),
      hidden: z.boolean().default(false),
    })
    .optional()
    .describe('Wi-Fi; the PSK is a secret (`pi-image secrets set wifi-psk`), never in YAML'),
  image: z.string().regex(/^[a-z0-9][a-z0-9.-]*$/).default('raspios-lite-arm64-trixie').describe('base image name from images/'),
  manifests: z.boolean().default(true).describe('bake manifests/ into server images'),
  defaults: z
    .strictObject({ server: roleDefaults.optional(), agent: roleDefaults.optional() })
    .default({})
    .describe('labels, taints and k3s keys per role'),
});

export const nodeFileSchema = z.strictObject({
  apiVersion: z.literal(API_VERSION, { message: `must be "${API_VERSION}"` }),
  kind: z.literal('Node', { message: 'must be "Node" in a node file' }),
  hostname: hostname.optional().describe('defaults to the file name without .yaml; must match it'),
  role: z.enum(['server', 'agent'], { message: 'must be "server" or "agent"' }),
  clusterInit: z.boolean().default(false).describe('first server of an embedded-etcd cluster'),
  board: z.enum(['pi4', 'pi5'], { message: 'must be "pi4" or "pi5"' }).default('pi4'),
  boot: z.enum(['sd', 'usb', 'netboot'], { message: 'must be "sd", "usb" or "netboot"' }).default('sd'),
  ip: z
    .union([z.literal('dhcp'), ipv4])
    .optional()
    .describe('static IPv4 address inside network.cidr, or "dhcp"; default: dhcp when the network is DHCP'),
  mac: z
    .string()
    .transform((s, ctx) => {
      const m = normaliseMac(s);
      if (!m) {
        ctx.addIssue({ code: 'custom', message: 'is not a MAC address (expected e.g. dc:a6:32:01:02:03)' });
        return z.NEVER;
      }
      return m;
    })
    .optional()
    .describe('Ethernet MAC, e.g. dc:a6:32:01:02:03 (required for netboot)'),
  serial: z
    .string()
    .transform((s) => s.toLowerCase())
    .refine((s) => /^[0-9a-f]{8}$/.test(s), { message: 'is not a Pi serial (8 hex digits, e.g. 3a4b5c6d)' })
    .optional()
    .describe('Pi serial number, 8 hex digits (required for netboot: the TFTP folder name)'),
  labels: labels.optional(),
  taints: taints.optional(),
  dataDisk: z
    .strictObject({
      device: z.string().regex(/^\/dev\//, { message: 'must be a device path under /dev, e.g. /dev/disk/by-label/rancher' }),
      mountPoint: z.string().regex(/^\/[^\s]*$/).default('/var/lib/rancher'),
      fsType: z.enum(['ext4', 'xfs', 'btrfs']).default('ext4'),
    })
    .optional()
    .describe('local disk for /var/lib/rancher (required for netboot: containerd cannot run on NFS)'),
  k3s: k3sExtra.optional(),
});

export type ClusterFile = z.output<typeof clusterFileSchema>;
export type NodeFile = z.output<typeof nodeFileSchema>;
