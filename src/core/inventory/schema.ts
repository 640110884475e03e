/**
 * The inventory file formats (nodes/cluster.yaml and nodes/<hostname>.yaml) as zod schemas.
 * Field-level checks live here; checks across fields and files live in rules.ts.
 * docs/inventory.md documents every field; tests/unit/inventory-docs.test.ts keeps the two in step,
 * and `npm run schema` writes the JSON Schemas in schema/ for editors.
 */
import * as z from 'zod';
import { DNS_NAME_RE, HOSTNAME_RE, isIpv4, isNonUnicastMac, normaliseMac, parseCidr } from './net.js';
import { checkTimezone, controlMessage } from './text.js';

export const API_VERSION = 'pi-image/v1';

/** dataDisk.device: a device path under /dev (fstab and cloud-init `mounts` take it verbatim). */
export const DEVICE_PATH = /^\/dev\/[A-Za-z0-9._/:@+=-]+$/;
/** dataDisk.mountPoint: an absolute path safe in fstab, systemd mount units and the k3s data-dir. */
export const MOUNT_POINT = /^\/[A-Za-z0-9._/@+-]*$/;

/** Pinned k3s release, e.g. v1.33.5+k3s1 */
export const K3S_VERSION_RE = /^v1\.(\d+)\.(\d+)\+k3s(\d+)$/;

/**
 * A string without control characters: every string of the inventory ends up in a shell script, a
 * YAML file or a systemd unit on the node. Checked first (`abort`), so the reason is the only message.
 */
export const text = () =>
  z.string().refine((s) => controlMessage(s) === undefined, { error: (iss) => controlMessage(String(iss.input)) ?? 'invalid', abort: true });

const ipv4 = text().refine(isIpv4, { message: 'is not an IPv4 address (expected e.g. 10.0.0.11)' });
const cidr = text()
  .refine((s) => parseCidr(s) !== undefined, { message: 'is not an IPv4 CIDR (expected e.g. 10.0.0.0/24)' });
const hostname = text().regex(HOSTNAME_RE, {
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
  .refine((v) => controlMessage(v) === undefined, { error: (iss) => controlMessage(String(iss.input)) ?? 'invalid', abort: true })
  .refine((v) => v === '' || LABEL_NAME.test(v), {
    message: 'is not a valid label value (up to 63 of A-Z a-z 0-9 - _ ., starting and ending alphanumeric)',
  });
const labels = z
  .record(text().refine(isLabelKey, { message: 'is not a valid label key (e.g. example.com/zone or zone)' }), labelValue)
  .describe('Kubernetes node labels, applied by k3s at registration (node-label)');

export const TAINT_EFFECTS = ['NoSchedule', 'PreferNoSchedule', 'NoExecute'] as const;
const TAINT_RE = /^([^=:\s]+)(?:=([^:\s]*))?:(\w+)$/;
const TAINT_KEY_MESSAGE = 'is not a valid taint key (a label key such as dedicated or example.com/gpu: letters, digits, "-", "_", "." and one "/"; no spaces or shell characters)';
const TAINT_VALUE_MESSAGE = 'is not a valid taint value (up to 63 of A-Z a-z 0-9 - _ ., starting and ending alphanumeric)';
const taint = z.union([
  text().transform((s, ctx) => {
    const m = TAINT_RE.exec(s);
    if (!m || !(TAINT_EFFECTS as readonly string[]).includes(m[3]!)) {
      ctx.addIssue({
        code: 'custom',
        message: `is not a taint: expected "key=value:Effect" with Effect one of ${TAINT_EFFECTS.join(', ')}`,
      });
      return z.NEVER;
    }
    const value = m[2] ?? '';
    if (!isLabelKey(m[1]!)) {
      ctx.addIssue({ code: 'custom', message: TAINT_KEY_MESSAGE });
      return z.NEVER;
    }
    if (value !== '' && !LABEL_NAME.test(value)) {
      ctx.addIssue({ code: 'custom', message: TAINT_VALUE_MESSAGE });
      return z.NEVER;
    }
    return { key: m[1]!, value, effect: m[3] as (typeof TAINT_EFFECTS)[number] };
  }),
  z.strictObject({
    key: text().refine(isLabelKey, { message: TAINT_KEY_MESSAGE }),
    value: text().refine((v) => v === '' || LABEL_NAME.test(v), { message: TAINT_VALUE_MESSAGE }).default(''),
    effect: z.enum(TAINT_EFFECTS),
  }),
]);
const taints = z.array(taint).describe('Kubernetes taints: "key=value:Effect" strings or {key, value, effect}');

/** k3s config keys are flag names (`disable`, `kubelet-arg`); values are written YAML-encoded into config.yaml. */
const K3S_KEY_RE = /^[a-z][a-z0-9-]*$/;
function k3sValueProblem(v: unknown, depth = 0): string | undefined {
  if (typeof v === 'string') return controlMessage(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return undefined;
  if (depth > 4) return 'is nested too deeply for a k3s option';
  if (Array.isArray(v)) {
    for (const x of v) {
      const p = k3sValueProblem(x, depth + 1);
      if (p) return p;
    }
    return undefined;
  }
  if (typeof v === 'object') {
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      const p = controlMessage(k) ?? k3sValueProblem(x, depth + 1);
      if (p) return p;
    }
    return undefined;
  }
  return 'is not a YAML value k3s can read';
}
const k3sExtra = z
  .record(
    text().regex(K3S_KEY_RE, { message: 'is not a k3s option name (lower-case flag names without dashes in front, e.g. disable or kubelet-arg)' }),
    z.unknown().superRefine((v, ctx) => {
      const p = k3sValueProblem(v);
      if (p) ctx.addIssue({ code: 'custom', message: p });
    }),
  )
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
    endpoint: text()
      .regex(/^[a-z0-9.-]+$/i, { message: 'must be a host name or IPv4 address without scheme or port' })
      .optional()
      .describe('address every node joins (a VIP, DNS name or the first server); default: the cluster-init server'),
    port: z.number().int().min(1).max(65535).default(6443).describe('Kubernetes API port'),
    airgapDir: text()
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
      searchDomains: z
        .array(text().regex(DNS_NAME_RE, { message: 'is not a DNS domain (e.g. lan or home.example.org)' }))
        .default([]).describe('DNS search domains'),
      interface: text()
        .regex(/^[a-z][a-z0-9]{1,14}$/, { message: 'is not an interface name (e.g. eth0)' })
        .default('eth0')
        .describe('the wired interface first boot depends on'),
    })
    .describe('node network'),
  admin: z.strictObject({
    user: text()
      .regex(/^[a-z_][a-z0-9_-]{0,31}$/, { message: 'is not a valid Linux user name (lower-case, up to 32 characters)' })
      .refine((u) => u !== 'root', { message: 'must not be root; pick an admin user name such as pi-admin' })
      .describe('admin user created on every node (sudo, SSH key login only)'),
    sshKeys: z
      .array(
        z
          .string()
          .transform((s) => s.trim())
          .refine((s) => !/[\r\n\u2028\u2029]/.test(s), {
            message: 'holds more than one line: each sshKeys entry is exactly one public key line (add one list entry per key)',
            abort: true,
          })
          .refine((s) => controlMessage(s) === undefined, { error: (iss) => controlMessage(String(iss.input)) ?? 'invalid', abort: true }),
      )
      .min(1, { message: 'needs at least one SSH public key: password login is disabled' })
      .describe('SSH public keys allowed to log in as the admin user'),
    groups: z.array(text().regex(/^[a-z_][a-z0-9_-]*$/)).default([]).describe('extra groups for the admin user'),
  }),
  timezone: text()
    .regex(/^(UTC|[A-Z][A-Za-z_+-]*(\/[A-Za-z0-9_+-]+){1,2})$/, { message: 'is not a timezone name (e.g. Europe/Berlin or UTC)', abort: true })
    .superRefine((s, ctx) => {
      const r = checkTimezone(s);
      if (!r.ok) ctx.addIssue({ code: 'custom', message: r.message });
    })
    .default('UTC')
    .describe('IANA timezone'),
  locale: text()
    .regex(/^[a-z]{2,3}_[A-Z]{2}\.UTF-8$/, { message: 'is not a UTF-8 locale (e.g. en_GB.UTF-8)' })
    .default('en_GB.UTF-8')
    .describe('system locale'),
  keyboard: text().regex(/^[a-z]{2}$/).default('gb').describe('console keyboard layout'),
  ntp: z
    .array(
      text().refine((s) => isIpv4(s) || DNS_NAME_RE.test(s), { message: 'is not an NTP server (a host name such as 0.debian.pool.ntp.org, or an IPv4 address)' }),
    )
    .default([]).describe('NTP servers (default: the distribution pool)'),
  wifi: z
    .strictObject({
      ssid: text()
        .min(1, { message: 'is empty; give the network name' })
        .refine((s) => Buffer.byteLength(s, 'utf8') <= 32, { message: 'is longer than 32 bytes, the most an SSID can hold' }),
      country: text().regex(/^[A-Z]{2}$/, { message: 'must be a two-letter country code, e.g. DE' }),
      hidden: z.boolean().default(false),
    })
    .optional()
    .describe('Wi-Fi; the PSK is a secret (`pi-image secrets set wifi-psk`), never in YAML'),
  image: text().regex(/^[a-z0-9][a-z0-9.-]*$/).default('raspios-lite-arm64-trixie').describe('base image name from images/'),
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
    .string({ error: 'must be a static IPv4 address such as 10.0.0.14, or "dhcp"' })
    .refine((s) => s === 'dhcp' || (controlMessage(s) === undefined && isIpv4(s)), {
      message: 'is not an IPv4 address (e.g. 10.0.0.14) or "dhcp"',
    })
    .optional()
    .describe('static IPv4 address inside network.cidr, or "dhcp"; default: dhcp when the network is DHCP'),
  mac: text()
    .transform((s, ctx) => {
      const m = normaliseMac(s);
      if (!m) {
        ctx.addIssue({ code: 'custom', message: 'is not a MAC address (expected e.g. dc:a6:32:01:02:03)' });
        return z.NEVER;
      }
      const kind = isNonUnicastMac(m);
      if (kind) {
        const what = kind === 'zero' ? 'the all-zero address' : `a ${kind} address`;
        ctx.addIssue({ code: 'custom', message: `is ${what}, not a board's own Ethernet address; use the MAC printed by \`ip link show eth0\` on the Pi (e.g. dc:a6:32:01:02:03)` });
        return z.NEVER;
      }
      return m;
    })
    .optional()
    .describe('Ethernet MAC, e.g. dc:a6:32:01:02:03 (required for netboot)'),
  serial: text()
    .transform((s) => s.toLowerCase())
    .refine((s) => /^[0-9a-f]{8}$/.test(s), { message: 'is not a Pi serial (8 hex digits, e.g. 3a4b5c6d)' })
    .optional()
    .describe('Pi serial number, 8 hex digits (required for netboot: the TFTP folder name)'),
  labels: labels.optional(),
  taints: taints.optional(),
  dataDisk: z
    .strictObject({
      device: text().regex(/^\/dev\/[A-Za-z0-9._/:@+=-]+$/, { message: 'must be a device path under /dev, e.g. /dev/disk/by-label/rancher' }),
      mountPoint: text()
        .regex(/^\/[A-Za-z0-9._/@+-]+$/, { message: 'is not an absolute mount point without spaces (e.g. /var/lib/rancher)' })
        .default('/var/lib/rancher'),
      fsType: z.enum(['ext4', 'xfs', 'btrfs']).default('ext4'),
    })
    .optional()
    .describe('local disk for /var/lib/rancher (required for netboot: containerd cannot run on NFS)'),
  k3s: k3sExtra.optional(),
});

export type ClusterFile = z.output<typeof clusterFileSchema>;
export type NodeFile = z.output<typeof nodeFileSchema>;
