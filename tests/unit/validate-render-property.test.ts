/**
 * Every inventory rule lives in the staged validator: whatever `validate` accepts renders without an
 * input error. Checked on the sample inventory, hand-written variants (netboot, Wi-Fi, DHCP) and
 * inventories generated from them by random edits of the YAML (fast-check): a field set to an odd
 * value, a key added or removed. Render may still refuse what is not inventory (secrets, build year).
 */
import fc from 'fast-check';
import { parseDocument } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadTemplates } from '../../src/adapters/templates.js';
import { PiImageError } from '../../src/core/errors.js';
import { validateInventory } from '../../src/core/inventory/validate.js';
import { renderNodeFiles } from '../../src/core/render/node.js';
import type { Templates } from '../../src/core/render/templates.js';
import { BUILD_YEAR, FAKE_SECRETS, FAKE_WIFI_PSK } from '../helpers/render-fixture.js';
import { sampleFiles } from '../helpers/sample-inventory.js';

type Files = Record<string, string>;
let templates: Templates;
beforeAll(async () => {
  templates = await loadTemplates();
});

function edit(files: Files, name: string, fn: (doc: ReturnType<typeof parseDocument>) => void): Files {
  const doc = parseDocument(files[name]!);
  fn(doc);
  return { ...files, [name]: doc.toString() };
}

/** Hand-written starting points besides the sample. */
function seeds(): Record<string, Files> {
  const sample = sampleFiles();
  const netboot = edit(sample, 'pi-cluster-4.yaml', (d) => {
    d.set('boot', 'netboot');
    d.set('dataDisk', { device: '/dev/disk/by-label/rancher' });
  });
  const wifi = edit(sample, 'cluster.yaml', (d) => d.set('wifi', { ssid: 'lab', country: 'DE' }));
  const dhcp = edit(
    edit(sample, 'cluster.yaml', (d) => {
      d.setIn(['network', 'dhcp'], true);
      d.setIn(['k3s', 'endpoint'], 'k3s.lan');
    }),
    'pi-cluster-4.yaml',
    (d) => d.set('ip', 'dhcp'),
  );
  return { sample, netboot, wifi, dhcp };
}

const CLUSTER_PATHS = [
  ['k3s', 'version'],
  ['k3s', 'channel'],
  ['k3s', 'endpoint'],
  ['k3s', 'port'],
  ['k3s', 'airgapDir'],
  ['k3s', 'sha256'],
  ['network', 'dhcp'],
  ['network', 'cidr'],
  ['network', 'gateway'],
  ['network', 'dns'],
  ['network', 'searchDomains'],
  ['network', 'interface'],
  ['admin', 'user'],
  ['admin', 'sshKeys'],
  ['admin', 'groups'],
  ['timezone'],
  ['locale'],
  ['keyboard'],
  ['ntp'],
  ['wifi'],
  ['wifi', 'ssid'],
  ['wifi', 'country'],
  ['image'],
  ['manifests'],
  ['defaults', 'server', 'labels'],
  ['defaults', 'agent', 'taints'],
  ['defaults', 'agent', 'k3s'],
  ['defaults', 'server', 'k3s', 'token'],
  ['defaults', 'server', 'k3s', 'node-label'],
] as const;

const NODE_PATHS = [
  ['hostname'],
  ['role'],
  ['clusterInit'],
  ['board'],
  ['boot'],
  ['ip'],
  ['mac'],
  ['serial'],
  ['labels'],
  ['labels', 'example.com/x'],
  ['taints'],
  ['dataDisk'],
  ['dataDisk', 'device'],
  ['dataDisk', 'mountPoint'],
  ['dataDisk', 'fsType'],
  ['k3s'],
  ['k3s', 'token'],
  ['k3s', 'server'],
  ['k3s', 'node-label'],
  ['k3s', 'disable'],
] as const;

/** Values that have broken renderers before: separators, spaces, device forms, odd types. */
const odd = fc.oneof(
  fc.constantFrom(
    '',
    '/',
    '/srv/data:1',
    '/srv/my data',
    '/var/lib/rancher/',
    '//',
    'LABEL=rancher',
    'UUID=1234-ABCD',
    '/dev/sda1',
    '/dev/disk/by-path/platform-fd500000.pcie-pci-0000:01:00.0-usb-0:2:1.0-scsi-0:0:0:0',
    'wlan0',
    'eth1',
    'dhcp',
    '10.0.0.1',
    '10.0.0.0',
    '10.0.0.255',
    '10.0.0.99',
    '192.168.1.5',
    'k3s.lan',
    'https://k3s.lan:6443',
    'stable',
    'v1.33.5+k3s1',
    'v1.34',
    'server',
    'agent',
    'netboot',
    'usb',
    'pi5',
    'xfs',
    'dc:a6:32:00:00:99',
    '4e1c00ff',
    'key=value:NoSchedule',
    'a"quote',
    "it's",
    'line\nbreak',
    '$(reboot)',
    '{{handlebars}}',
    'ünïcödé',
    'UTC',
    'Europe/Berlin',
    'de_DE.UTF-8',
    'traefik',
  ),
  fc.integer({ min: -1, max: 70000 }),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.constantFrom('10.0.0.1', 'traefik', 'x y', 'example.com', 'ssh-ed25519 AAAA'), { maxLength: 3 }),
  fc.dictionary(fc.constantFrom('disable', 'token', 'example.com/a', 'node-label', 'kubelet-arg'), fc.constantFrom('x', 'traefik', 'a=b')),
  fc.string({ maxLength: 12 }),
);

const mutation = fc.record({
  seed: fc.constantFrom('sample', 'netboot', 'wifi', 'dhcp'),
  edits: fc.array(
    fc.oneof(
      fc.record({ file: fc.constant('cluster.yaml'), path: fc.constantFrom(...CLUSTER_PATHS), value: odd, remove: fc.boolean() }),
      fc.record({
        file: fc.constantFrom('pi-cluster-1.yaml', 'pi-cluster-2.yaml', 'pi-cluster-3.yaml', 'pi-cluster-4.yaml'),
        path: fc.constantFrom(...NODE_PATHS),
        value: odd,
        remove: fc.boolean(),
      }),
    ),
    { minLength: 1, maxLength: 3 },
  ),
});

function apply(files: Files, edits: { file: string; path: readonly string[]; value: unknown; remove: boolean }[]): Files {
  let out = files;
  for (const e of edits) {
    out = edit(out, e.file, (d) => {
      try {
        if (e.remove) d.deleteIn([...e.path]);
        else d.setIn([...e.path], e.value);
      } catch {
        // the path runs through a scalar (e.g. an earlier edit replaced its parent): no edit
      }
    });
  }
  return out;
}

/** Validates; when accepted, renders every node and returns the error render threw (if any). */
function check(files: Files): { accepted: boolean; renderError?: unknown } {
  const result = validateInventory(
    Object.entries(files).map(([name, text]) => ({ path: `nodes/${name}`, text })),
    { dir: '/inv/nodes', displayDir: 'nodes' },
  );
  if (!result.inventory) return { accepted: false };
  const secrets = { ...FAKE_SECRETS, ...(result.inventory.cluster.wifi ? { wifiPsk: FAKE_WIFI_PSK } : {}) };
  try {
    renderNodeFiles(result.inventory, secrets, templates, { buildYear: BUILD_YEAR });
    return { accepted: true };
  } catch (renderError) {
    return { accepted: true, renderError };
  }
}

describe('what validate accepts, render renders', () => {
  it('the hand-written inventories are valid and render', () => {
    for (const [name, files] of Object.entries(seeds())) {
      const r = check(files);
      expect(r.accepted, name).toBe(true);
      expect(r.renderError, name).toBeUndefined();
    }
  });

  it('the two disagreements found by hand are now one rule each', () => {
    const s = seeds().sample!;
    const withDisk = (disk: Record<string, string>) => edit(s, 'pi-cluster-3.yaml', (d) => d.set('dataDisk', disk));
    expect(check(withDisk({ device: '/dev/sda1', mountPoint: '/srv/data:1' })).accepted).toBe(false);
    expect(check(withDisk({ device: 'LABEL=rancher' })).accepted).toBe(false);
    expect(check(edit(s, 'pi-cluster-2.yaml', (d) => d.set('k3s', { token: 'K10secret' }))).accepted).toBe(false);
  });

  it('random edits: accepted ⇒ renders without an error', () => {
    const all = seeds();
    let accepted = 0;
    fc.assert(
      fc.property(mutation, ({ seed, edits }) => {
        const r = check(apply(all[seed]!, edits));
        if (!r.accepted) return true;
        accepted++;
        if (r.renderError !== undefined) {
          const e = r.renderError;
          throw new Error(`validate accepted, render refused: ${e instanceof PiImageError ? `${e.category}: ${e.message}` : String(e)}\n${JSON.stringify(edits)}`);
        }
        return true;
      }),
      { numRuns: 400, seed: 11 },
    );
    expect(accepted).toBeGreaterThan(40); // the generator does not only produce invalid inventories
  });
});
