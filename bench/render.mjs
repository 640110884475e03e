#!/usr/bin/env node
/**
 * bench/render — `pi-image render --all` for a 200-node inventory, against the start-up time of
 * `pi-image --version` measured in the same run, plus an in-process breakdown (load + validate,
 * secrets, pure renderNodeFiles, writing) to show where the time goes.
 *
 *   npm run bench:render                 # builds dist/ first (npm run build)
 *   node bench/render.mjs --runs 9 --no-build --nodes 200 --servers 3
 *
 * Not a test: asserts no timings, prints a table and one JSON line (prefix `BENCH `), exits 0.
 */
import process from 'node:process';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { arg, CLI, ensureBuilt, fmtS, fmtX, median, REPO_ROOT, printResult, round, runBench, since, summary, table, timeCommand } from './lib.mjs';

const RUNS = Number(arg('runs', 7));
const NODES = Number(arg('nodes', 200));
const SERVERS = Number(arg('servers', 3)); // 1 or 3 (embedded etcd wants an odd number)

/** cluster.yaml for a /23 network with labels/taints defaults per role. */
function clusterYaml() {
  return `apiVersion: pi-image/v1
kind: Cluster
name: bench-cluster
k3s:
  version: v1.33.5+k3s1
network:
  cidr: 10.20.0.0/23
  gateway: 10.20.0.1
  dns: [10.20.0.1, 9.9.9.9]
  interface: eth0
admin:
  user: pi-admin
  sshKeys:
    - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGuIB3qOVWsjCA/gMZzv/hWWOpSkE5AJnttbHisIo+4x ops@bench
timezone: Europe/Berlin
locale: en_GB.UTF-8
keyboard: gb
image: raspios-lite-arm64-trixie
defaults:
  server:
    k3s:
      disable: [servicelb]
    taints:
      - node-role.pi-image.io/control-plane=true:NoSchedule
  agent:
    labels:
      pi-image.io/pool: general
`;
}

const hex = (n, w) => n.toString(16).padStart(w, '0');

/** One node file: servers first; IPs spread over both halves of the /23; a mix of labels and taints. */
function nodeYaml(i) {
  const server = i < SERVERS;
  const host = 10 + i * 2; // 10.20.0.10 … 10.20.1.152 for 200 nodes
  const ip = `10.20.${Math.floor(host / 256)}.${host % 256}`;
  const lines = [
    'apiVersion: pi-image/v1',
    'kind: Node',
    `role: ${server ? 'server' : 'agent'}`,
    ...(i === 0 ? ['clusterInit: true'] : []),
    `board: ${i % 3 === 0 ? 'pi5' : 'pi4'}`,
    `boot: ${i % 25 === 7 ? 'usb' : 'sd'}`,
    `ip: ${ip}`,
    `mac: dc:a6:32:00:${hex(i >> 8, 2)}:${hex(i & 0xff, 2)}`,
    `serial: ${hex(0x5e1c0000 + i, 8)}`,
    'labels:',
    `  pi-image.io/rack: shelf-${'abcde'[i % 5]}`,
    `  example.com/zone: zone-${(i % 3) + 1}`,
    ...(i % 4 === 0 ? ['  example.com/disk: ssd'] : []),
  ];
  const taints = [];
  if (!server && i % 10 === 0) taints.push('  - dedicated=storage:NoSchedule');
  if (!server && i % 7 === 0) taints.push('  - key: example.com/gpu', '    value: "true"', '    effect: PreferNoSchedule');
  if (!server && i % 33 === 0) taints.push('  - maintenance=planned:NoExecute');
  if (taints.length) lines.push('taints:', ...taints);
  if (!server && i % 20 === 5) lines.push('dataDisk:', '  device: /dev/disk/by-label/k3s-data');
  if (!server && i % 16 === 3) lines.push('k3s:', '  kubelet-arg: [max-pods=80]');
  return `${lines.join('\n')}\n`;
}

function writeBenchInventory(root) {
  const dir = join(root, 'nodes');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'cluster.yaml'), clusterYaml());
  for (let i = 0; i < NODES; i++) writeFileSync(join(dir, `node-${String(i + 1).padStart(3, '0')}.yaml`), nodeYaml(i));
  return dir;
}

async function main() {
  ensureBuilt();
  const root = mkdtempSync(join(tmpdir(), 'pi-image-bench-render-'));
  try {
    const invDir = writeBenchInventory(root);
    const env = { ...process.env, XDG_CONFIG_HOME: join(root, 'config'), PI_IMAGE_CACHE: join(root, 'cache') };
    delete env.PI_IMAGE_AGE_KEY;
    delete env.PI_IMAGE_AGE_KEY_FILE;
    const cli = (args) => [CLI, '--inventory', invDir, ...args];
    const init = spawnSync(process.execPath, cli(['secrets', 'init']), { cwd: root, env, encoding: 'utf8' });
    if (init.status !== 0) throw new Error(`secrets init failed:\n${init.stderr}`);

    // ---- CLI: start-up baseline vs render --all, interleaved so both see the same machine load
    const out = join(root, 'out');
    const version = () => timeCommand(process.execPath, [CLI, '--version'], { cwd: root, env });
    const render = () => timeCommand(process.execPath, cli(['render', '--all', '--out', out]), { cwd: root, env });
    version();
    render(); // warm-up (page cache, first write of out/)
    const tVersion = [];
    const tRender = [];
    for (let i = 0; i < RUNS; i++) {
      tVersion.push(version());
      tRender.push(render());
    }

    // ---- in-process: where the time goes (same modules the CLI runs, imported from dist/)
    const dist = (p) => import(pathToFileURL(join(REPO_ROOT, 'dist', p)).href);
    const { loadInventory } = await dist('app/inventory.js');
    const { loadSecrets } = await dist('app/secrets.js');
    const { loadTemplates } = await dist('adapters/templates.js');
    const { renderNodeFiles } = await dist('core/render/node.js');
    const { writeNodeFiles } = await dist('app/render.js');
    const phases = { load: [], secrets: [], core: [], write: [] };
    let files = 0;
    const inProcOut = join(root, 'out-inproc');
    for (let i = 0; i < RUNS + 1; i++) {
      let t = process.hrtime.bigint();
      const inv = await loadInventory(invDir, { cwd: root });
      const load = since(t);
      t = process.hrtime.bigint();
      const { secrets } = await loadSecrets(inv.dir, inv.cluster.name, { env, wifiRequired: false });
      const sec = since(t);
      const templates = await loadTemplates();
      t = process.hrtime.bigint();
      const sets = renderNodeFiles(inv, secrets, templates, { buildYear: 2025 });
      const core = since(t);
      t = process.hrtime.bigint();
      await writeNodeFiles(inProcOut, sets, secrets);
      const write = since(t);
      files = sets.reduce((a, s) => a + s.files.length, 0);
      if (sets.length !== NODES) throw new Error(`rendered ${sets.length} of ${NODES} nodes`);
      if (i === 0) continue; // warm-up (JIT)
      phases.load.push(load);
      phases.secrets.push(sec);
      phases.core.push(core);
      phases.write.push(write);
    }

    const v = median(tVersion);
    const r = median(tRender);
    const m = (k) => median(phases[k]);
    const rows = [
      ['pi-image --version (baseline: start-up)', fmtS(v), fmtX(1)],
      [`pi-image render --all (${NODES} nodes, ${files} files)`, fmtS(r), fmtX(r / v)],
      ['  render − start-up', fmtS(r - v), fmtX((r - v) / v)],
      ['in-process: loadInventory (read + validate)', fmtS(m('load')), fmtX(m('load') / v)],
      ['in-process: secrets (age decrypt)', fmtS(m('secrets')), fmtX(m('secrets') / v)],
      [`in-process: renderNodeFiles (pure core, ${NODES} nodes)`, fmtS(m('core')), fmtX(m('core') / v)],
      ['in-process: writeNodeFiles (atomic writes)', fmtS(m('write')), fmtX(m('write') / v)],
    ];
    process.stdout.write(`bench/render: median of ${RUNS} runs (after 1 warm-up), ${NODES} nodes / ${SERVERS} server(s), node ${process.version}\n\n`);
    process.stdout.write(`${table(['what', 'median', 'vs start-up'], rows)}\n\n`);
    printResult({
      bench: 'render',
      nodes: NODES,
      servers: SERVERS,
      files,
      runs: RUNS,
      seconds: {
        version: summary(tVersion),
        renderAll: summary(tRender),
        inProcess: Object.fromEntries(Object.entries(phases).map(([k, xs]) => [k, summary(xs)])),
      },
      ratios: {
        renderAllVsStartup: round(r / v, 3),
        renderWorkVsStartup: round((r - v) / v, 3),
        coreVsStartup: round(m('core') / v, 3),
        corePerNodeMs: round((m('core') / NODES) * 1000, 3),
      },
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

runBench('render', main);
