#!/usr/bin/env node
/**
 * bench/datastore-writes — what a single k3s server's datastore writes to its storage while the
 * cluster is idle: embedded etcd (pi-image's default, `cluster-init`) against SQLite through kine
 * (k3s' default for one server without cluster-init). REAL datastores under a MODELLED load:
 *
 *   (a) Debian's etcd-server (bookworm: 3.4.x; k3s v1.33 embeds 3.5.x) on 127.0.0.1 only, with the
 *       options k3s' pkg/etcd/etcd.go sets where they apply (snapshot-count 10000, heartbeat
 *       500 ms, election timeout 5000 ms, initial corrupt check, watch progress notify 5 s) and
 *       etcd's defaults for the rest (as k3s leaves them: 2 GiB quota, no auto-compaction, batch
 *       commits every 100 ms); the kube-apiserver's compaction (every 5 min, compact_rev_key) is
 *       modelled. Plain HTTP instead of k3s' TLS: the disk does not see the difference.
 *   (b) SQLite in WAL mode with kine's schema, DSN pragmas, statements and compaction
 *       (bench/kine-sqlite.py, Python's sqlite3 over the system libsqlite3).
 *
 * Both receive the same write stream, at real rate, in the same run: the idle load of a 4-node
 * cluster (1 server, 3 agents): kubelet node Leases (10 s), leader-election Leases (2 s),
 * kube-apiserver identity Lease and master lease (10 s), Node status (5 min), with values of
 * realistic size (docs/reference/datastore-write-load.md gives every number and its source).
 * Events, pods and anything else that changes are NOT modelled.
 *
 * Each datastore's data directory is an ext4 file system (mkfs.ext4 without lazy init, mounted
 * noatime like Pi OS' root) on its own loop device over a scratch file. Measured between the end
 * of seeding and the end of the run: bytes and write requests the file system sent to the loop
 * device (/sys/block/loopN/stat: data, journal and metadata), cache flushes the device received,
 * fsync/fdatasync calls of the datastore process (strace --seccomp-bpf), and its /proc/PID/io
 * write_bytes. Extrapolated per day and per year. The bench asserts nothing and exits 0.
 *
 *   sudo npm run bench:datastore                  # 10 minutes of real time
 *   sudo node bench/datastore-writes.mjs --minutes 10 --dir /var/tmp/pi-image-bench [--keep]
 *        [--card-gb 32 --pe 3000]                 # the card the endurance line is computed for
 *
 * Needs root (losetup, mount), e2fsprogs, util-linux, python3, and two packages that setup does not
 * install (only this bench uses them): `apt-get install --no-install-recommends etcd-server strace`.
 * etcd-server Depends: adduser, libc6, init-system-helpers; on a machine booted with systemd the
 * package enables and starts etcd.service on 127.0.0.1:2379 — `systemctl disable --now etcd` after
 * installing (the bench starts its own etcd). strace Depends: libc6, libunwind8.
 */
import process from 'node:process';
import { Buffer } from 'node:buffer';
import console from 'node:console';
import { clearTimeout, setTimeout } from 'node:timers';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { arg, printResult, REPO_ROOT, round, runBench, table } from './lib.mjs';

const MINUTES = Number(arg('minutes', 10));
const DIR = String(arg('dir', process.env.PI_IMAGE_BENCH_CACHE ?? '/var/tmp/pi-image-bench'));
const KEEP = Boolean(arg('keep', false));
const CARD_GB = Number(arg('card-gb', 32));
const PE_CYCLES = Number(arg('pe', 3000));
const FS_MIB = 1024;
/** Debian's python3 (its sqlite3 module over the system libsqlite3), not a version manager's shim */
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const SYNC_CALLS = 'fsync,fdatasync,sync_file_range,syncfs,msync';

/**
 * The modelled idle write stream of a 4-node k3s cluster (1 server, 3 agents). Sizes are stored
 * value sizes (protobuf with managedFields). `etcdOnly`: exists only with the etcd datastore.
 */
const NODES = ['pi-cluster-1', 'pi-cluster-2', 'pi-cluster-3', 'pi-cluster-4'];
const STREAMS = [
  ...NODES.map((n) => ({ key: `/registry/leases/kube-node-lease/${n}`, every: 10, size: 350, what: 'kubelet node Lease' })),
  ...['kube-controller-manager', 'kube-scheduler', 'k3s-cloud-controller-manager', 'k3s'].map((n) => ({
    key: `/registry/leases/kube-system/${n}`,
    every: 2,
    size: 450,
    what: 'leader-election Lease',
  })),
  { key: '/registry/leases/kube-system/k3s-etcd', every: 2, size: 450, what: 'leader-election Lease', etcdOnly: true },
  { key: '/registry/leases/kube-system/apiserver-3c5bd4e1f0a6', every: 10, size: 500, what: 'kube-apiserver identity Lease' },
  { key: '/registry/masterleases/10.0.0.11', every: 10, size: 150, ttl: 15, what: 'kube-apiserver master lease (TTL 15 s)' },
  ...NODES.map((n) => ({ key: `/registry/minions/${n}`, every: 300, size: 7 * 1024, what: 'kubelet Node status' })),
];
const COMPACT_EVERY = 300;
/** Objects that exist but do not change while idle (a fresh k3s cluster holds a few hundred). */
const SEED = { count: 400, size: 1500 };

/** Deterministic phase of a stream in [0, every): the streams do not all fire at t = 0. */
function phase(key, every) {
  return (createHash('sha256').update(key).digest().readUInt32BE(0) / 2 ** 32) * every;
}

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.error?.code === 'ENOENT') throw new Error(`${cmd} is not installed (apt-get install -y $(grep -v '^#' scripts/apt-packages.txt))`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}:\n${r.stderr}`);
  return r.stdout;
}

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** A scratch ext4 on a loop device over a file: the datastore's "card". */
function makeCard(work, name) {
  const file = join(work, `${name}.img`);
  const mnt = join(work, `${name}-mnt`);
  sh('truncate', ['-s', `${FS_MIB}M`, file]);
  sh('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', '-L', name, file]);
  const dev = sh('losetup', ['--find', '--show', file]).trim();
  mkdirSync(mnt);
  sh('mount', ['-o', 'noatime', dev, mnt]);
  return { name, file, mnt, dev, blk: dev.replace('/dev/', '') };
}

function dropCard(card) {
  if (!card) return;
  spawnSync('umount', [card.mnt]);
  spawnSync('losetup', ['-d', card.dev]);
}

/** /sys/block/loopN/stat: write requests, bytes written (512-byte sectors), flush requests. */
function blockStat(card) {
  const f = readFileSync(`/sys/block/${card.blk}/stat`, 'utf8').trim().split(/\s+/).map(Number);
  return { writeIos: f[4], writeBytes: f[6] * 512, flushes: f[15] ?? NaN };
}

function procWriteBytes(pid) {
  const m = /write_bytes:\s*(\d+)/.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/**
 * The traced program's pid: the child of strace that runs `cmd` (strace also forks short-lived
 * children of its own, e.g. to probe seccomp support).
 */
async function tracee(stracePid, cmd) {
  for (let i = 0; i < 400; i++) {
    try {
      const kids = readFileSync(`/proc/${stracePid}/task/${stracePid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
      for (const kid of kids) {
        if (readFileSync(`/proc/${kid}/cmdline`, 'utf8').split('\0')[0] === cmd) return Number(kid);
      }
    } catch {
      /* not there yet, or gone */
    }
    await sleep(50);
  }
  throw new Error(`strace (pid ${stracePid}) did not start ${cmd}`);
}

/** fsync-family calls in an `strace -f -ttt` log at or after `since` (seconds since the epoch). */
function countSyncCalls(logFile, since) {
  const counts = {};
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    const m = /^\d+\s+(\d+\.\d+)\s+(\w+)\(/.exec(line);
    if (!m || Number(m[1]) < since) continue;
    counts[m[2]] = (counts[m[2]] ?? 0) + 1;
  }
  return counts;
}

/** SIGTERM to the traced program, SIGKILL after 30 s; resolves when strace has exited. */
async function stopTraced(strace, pid) {
  const exited = new Promise((res) => (strace.exitCode !== null || strace.signalCode !== null ? res() : strace.once('exit', res)));
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    /* already gone */
  }
  const timer = setTimeout(() => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }, 30_000);
  await exited;
  clearTimeout(timer);
}

function traced(logFile, cmd, args, opts) {
  return spawn('strace', ['-f', '-qq', '-ttt', '--seccomp-bpf', '-e', `trace=${SYNC_CALLS}`, '-o', logFile, cmd, ...args], opts);
}

/** etcd: started as k3s configures it where that applies; driven through its JSON gateway. */
async function startEtcd(card, work) {
  const [client, peer] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const log = openSync(join(work, 'etcd.log'), 'w');
  const args = [
    '--name', 'pi-cluster-1-bench',
    '--data-dir', join(card.mnt, 'etcd'),
    '--listen-client-urls', url,
    '--advertise-client-urls', url,
    '--listen-peer-urls', peerUrl,
    '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', `pi-cluster-1-bench=${peerUrl}`,
    '--initial-cluster-state', 'new',
    // k3s pkg/etcd/etcd.go (ETCD.cluster → executor.ETCDConfig):
    '--snapshot-count', '10000',
    '--heartbeat-interval', '500',
    '--election-timeout', '5000',
    '--experimental-initial-corrupt-check=true',
    '--experimental-watch-progress-notify-interval', '5s',
    '--logger', 'zap',
    '--log-outputs', 'stderr',
  ];
  const strace = traced(join(work, 'etcd.strace'), 'etcd', args, { stdio: ['ignore', log, log] });
  closeSync(log);
  const pid = await tracee(strace.pid, 'etcd');
  const call = async (path, body) => {
    const r = await globalThis.fetch(url + path, { method: 'POST', body: JSON.stringify(body) });
    const text = await r.text();
    if (!r.ok) throw new Error(`etcd ${path}: HTTP ${r.status} ${text}`);
    return JSON.parse(text);
  };
  for (let i = 0; ; i++) {
    try {
      await call('/v3/maintenance/status', {});
      break;
    } catch (e) {
      if (strace.exitCode !== null || i > 600) throw new Error(`etcd did not start (see ${join(work, 'etcd.log')}): ${e.message}`, { cause: e });
      await sleep(100);
    }
  }
  const b64 = (s) => Buffer.from(s).toString('base64');
  const modRev = new Map();
  const store = {
    name: 'etcd',
    pid,
    strace,
    /**
     * The kube-apiserver's GuaranteedUpdate: Txn(If mod_revision == seen, Then Put, Else Get), once
     * more with the revision the Get returned when the key changed (a master lease can expire).
     */
    async put(key, size, ttl) {
      let lease;
      if (ttl) lease = (await call('/v3/lease/grant', { TTL: String(ttl + 1) })).ID;
      for (let attempt = 0; ; attempt++) {
        const r = await call('/v3/kv/txn', {
          compare: [{ key: b64(key), result: 'EQUAL', target: 'MOD', mod_revision: String(modRev.get(key) ?? 0) }],
          success: [{ request_put: { key: b64(key), value: randomValue(size).toString('base64'), ...(lease ? { lease } : {}) } }],
          failure: [{ request_range: { key: b64(key) } }],
        });
        if (r.succeeded) return void modRev.set(key, Number(r.header.revision));
        if (attempt > 0) throw new Error(`etcd: update of ${key} lost its compare twice (nothing else writes here)`);
        modRev.set(key, Number(r.responses?.[0]?.response_range?.kvs?.[0]?.mod_revision ?? 0));
      }
    },
    /** kube-apiserver staging/src/k8s.io/apiserver/pkg/storage/etcd3/compact.go, every 5 min. */
    compactState: { version: 0, rev: 0 },
    async compact() {
      const s = this.compactState;
      const k = b64('compact_rev_key');
      const r = await call('/v3/kv/txn', {
        compare: [{ key: k, result: 'EQUAL', target: 'VERSION', version: String(s.version) }],
        success: [{ request_put: { key: k, value: b64(String(s.rev)) } }],
        failure: [{ request_range: { key: k } }],
      });
      if (!r.succeeded) throw new Error('etcd: compact_rev_key changed under the bench');
      s.version += 1;
      if (s.rev > 0) await call('/v3/kv/compaction', { revision: String(s.rev) });
      s.rev = Number(r.header.revision);
    },
    stop: () => stopTraced(strace, pid),
  };
  return store;
}

/** SQLite through bench/kine-sqlite.py (kine's schema, pragmas and statements). */
async function startSqlite(card, work) {
  mkdirSync(join(card.mnt, 'db'));
  const log = openSync(join(work, 'sqlite.log'), 'w');
  const strace = traced(join(work, 'sqlite.strace'), PYTHON, [join(REPO_ROOT, 'bench', 'kine-sqlite.py'), join(card.mnt, 'db', 'state.db')], {
    stdio: ['pipe', 'pipe', log],
  });
  closeSync(log);
  const pid = await tracee(strace.pid, PYTHON);
  const lines = createInterface({ input: strace.stdout });
  const waiting = [];
  lines.on('line', (l) => waiting.shift()?.(JSON.parse(l)));
  let chain = Promise.resolve();
  const ask = (cmd) => {
    const p = chain.then(
      () =>
        new Promise((res, rej) => {
          if (strace.exitCode !== null) return rej(new Error(`kine-sqlite.py exited (see ${join(work, 'sqlite.log')})`));
          waiting.push(res);
          strace.stdin.write(JSON.stringify(cmd) + '\n');
        }),
    );
    chain = p.catch(() => {});
    return p;
  };
  await ask({ op: 'stats' });
  return {
    name: 'sqlite',
    pid,
    strace,
    put: (key, size) => ask({ op: 'put', key, size }),
    compact: () => ask({ op: 'compact' }),
    stats: () => ask({ op: 'stats' }),
    stop() {
      strace.stdin.end(JSON.stringify({ op: 'quit' }) + '\n');
      return stopTraced(strace, pid);
    },
  };
}

let valueCounter = 0;
/** Value bytes: incompressible and different on every write (a renewTime changes every time). */
function randomValue(size) {
  const out = Buffer.alloc(size);
  for (let off = 0; off < size; off += 32) createHash('sha256').update(`v${valueCounter++}`).digest().copy(out, off);
  return out;
}

/** Runs the modelled stream against one store for `seconds`; returns the number of writes. */
async function drive(store, seconds, t0) {
  const events = [];
  for (const s of STREAMS) {
    if (s.etcdOnly && store.name !== 'etcd') continue;
    for (let t = phase(s.key, s.every); t < seconds; t += s.every) events.push({ t, s });
  }
  for (let t = phase('compact', COMPACT_EVERY); t < seconds; t += COMPACT_EVERY) events.push({ t, compact: true });
  events.sort((a, b) => a.t - b.t);
  let writes = 0;
  let compactions = 0;
  let lastReport = 0;
  for (const e of events) {
    const wait = t0 + e.t * 1000 - Date.now();
    if (wait > 0) await sleep(wait);
    if (e.compact) {
      await store.compact();
      compactions++;
    } else {
      await store.put(e.s.key, e.s.size, e.s.ttl);
      writes++;
    }
    if (e.t - lastReport >= 60) {
      lastReport = e.t;
      process.stderr.write(`bench: ${store.name}: ${Math.round(e.t)} s, ${writes} writes, ${compactions} compactions\n`);
    }
  }
  const rest = t0 + seconds * 1000 - Date.now();
  if (rest > 0) await sleep(rest);
  return { writes, compactions };
}

async function seed(store) {
  for (let i = 0; i < SEED.count; i++) await store.put(`/registry/configmaps/default/seed-${i}`, SEED.size);
  for (const s of STREAMS) if (!s.etcdOnly || store.name === 'etcd') await store.put(s.key, s.size, s.ttl);
}

const fmtMiB = (b) => `${(b / 2 ** 20).toFixed(2)} MiB`;
const fmtGiB = (b) => `${(b / 2 ** 30).toFixed(2)} GiB`;

async function main() {
  if (process.getuid?.() !== 0) throw new Error('needs root (losetup, mount): sudo npm run bench:datastore');
  for (const tool of ['etcd', 'strace', 'mkfs.ext4', 'losetup', PYTHON]) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) throw new Error(
        `${tool} is not installed: ${tool === 'etcd' || tool === 'strace' ? "apt-get install --no-install-recommends etcd-server strace (then, on a systemd machine, systemctl disable --now etcd)" : "run ./scripts/setup.sh"}`,
      );
  }
  mkdirSync(DIR, { recursive: true });
  const work = mkdtempSync(join(DIR, 'datastore-'));
  const cards = [];
  const stores = [];
  const cleanup = async () => {
    for (const s of stores.splice(0)) await s.stop().catch(() => {});
    for (const c of cards.splice(0)) dropCard(c);
    if (!KEEP) rmSync(work, { recursive: true, force: true });
  };
  const onSignal = () => cleanup().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const etcdCard = makeCard(work, 'etcd');
    cards.push(etcdCard);
    const sqliteCard = makeCard(work, 'sqlite');
    cards.push(sqliteCard);
    const etcd = await startEtcd(etcdCard, work);
    stores.push(etcd);
    const sqlite = await startSqlite(sqliteCard, work);
    stores.push(sqlite);
    const etcdVersion = sh('etcd', ['--version']).split('\n')[0].replace('etcd Version: ', '');
    const sqliteVersion = sh(PYTHON, ['-c', 'import sqlite3; print(sqlite3.sqlite_version)']).trim();

    process.stderr.write(`bench: seeding ${SEED.count} objects + ${STREAMS.length} modelled keys into each store …\n`);
    await Promise.all([seed(etcd), seed(sqlite)]);
    for (const c of cards) sh('sync', ['-f', c.mnt]);
    await sleep(10_000); // let the journal's periodic commit of the seeding pass
    const seconds = MINUTES * 60;
    const before = new Map(cards.map((c) => [c.name, blockStat(c)]));
    const ioBefore = new Map(stores.map((s) => [s.name, procWriteBytes(s.pid)]));
    const since = Date.now() / 1000;
    process.stderr.write(`bench: driving both stores for ${MINUTES} min at real rate …\n`);
    const t0 = Date.now();
    const [etcdRun, sqliteRun] = await Promise.all([drive(etcd, seconds, t0), drive(sqlite, seconds, t0)]);
    const ioAfter = new Map(stores.map((s) => [s.name, procWriteBytes(s.pid)]));
    const sqliteStats = await sqlite.stats();
    for (const c of cards) sh('sync', ['-f', c.mnt]);
    const after = new Map(cards.map((c) => [c.name, blockStat(c)]));
    const elapsed = (Date.now() - t0) / 1000;
    const dbSize = (dir) => Number(sh('du', ['-sb', dir]).split(/\s+/)[0]);
    const sizes = { etcd: dbSize(join(etcdCard.mnt, 'etcd')), sqlite: dbSize(join(sqliteCard.mnt, 'db')) };
    for (const s of stores.splice(0)) await s.stop();

    const perDay = 86400 / elapsed;
    const cardBytes = CARD_GB * 1e9 * PE_CYCLES;
    const results = {};
    for (const [name, run] of [['etcd', etcdRun], ['sqlite', sqliteRun]]) {
      const b = before.get(name);
      const a = after.get(name);
      const sync = countSyncCalls(join(work, `${name}.strace`), since);
      const bytes = a.writeBytes - b.writeBytes;
      const flushes = a.flushes - b.flushes;
      results[name] = {
        writes: run.writes,
        compactions: run.compactions,
        blockBytes: bytes,
        blockWriteIos: a.writeIos - b.writeIos,
        flushes,
        syncCalls: Object.values(sync).reduce((x, y) => x + y, 0),
        syncByCall: sync,
        procWriteBytes: ioAfter.get(name) - ioBefore.get(name),
        bytesPerWrite: round(bytes / run.writes, 0),
        bytesPerFlush: flushes > 0 ? round(bytes / flushes, 0) : null,
        perDayBytes: round(bytes * perDay, 0),
        perYearBytes: round(bytes * perDay * 365, 0),
        flushesPerDay: round(flushes * perDay, 0),
        /** years until CARD_GB × PE_CYCLES bytes are written, with NO write amplification */
        cardYearsAtWA1: round(cardBytes / (bytes * perDay * 365), 1),
        dataDirBytes: sizes[name],
      };
    }
    results.sqlite.rows = sqliteStats.rows;

    const e = results.etcd;
    const q = results.sqlite;
    console.log(`\nIdle write load of a 4-node cluster, ${round(elapsed / 60, 1)} min at real rate (modelled load, real datastores)`);
    console.log(`etcd ${etcdVersion} (k3s v1.33 embeds 3.5.x) vs SQLite ${sqliteVersion} (WAL, synchronous=NORMAL, kine's schema)\n`);
    const row = (label, f) => [label, f(e), f(q)];
    console.log(
      table(
        ['', 'etcd', 'SQLite (kine)'],
        [
          row('writes issued (+ compactions)', (r) => `${r.writes} (+${r.compactions})`),
          row('bytes written to the device', (r) => fmtMiB(r.blockBytes)),
          row('write requests to the device', (r) => r.blockWriteIos),
          row('cache flushes to the device', (r) => r.flushes),
          row('fsync/fdatasync calls (strace)', (r) => r.syncCalls),
          row('process write_bytes (/proc/PID/io)', (r) => fmtMiB(r.procWriteBytes)),
          row('device bytes per write', (r) => `${(r.bytesPerWrite / 1024).toFixed(1)} KiB`),
          row('device bytes per flush', (r) => (r.bytesPerFlush === null ? '-' : `${(r.bytesPerFlush / 1024).toFixed(1)} KiB`)),
          row('per day', (r) => fmtGiB(r.perDayBytes)),
          row('per year', (r) => `${(r.perYearBytes / 1e12).toFixed(2)} TB`),
          row('flushes per day', (r) => r.flushesPerDay),
          row(`years to ${CARD_GB} GB × ${PE_CYCLES} P/E at WA 1`, (r) => r.cardYearsAtWA1),
          row('data dir at the end (apparent size)', (r) => fmtMiB(r.dataDirBytes)),
        ],
      ),
    );
    console.log(`\netcd / SQLite: bytes ${(e.blockBytes / q.blockBytes).toFixed(2)}×, flushes ${(e.flushes / Math.max(1, q.flushes)).toFixed(1)}×`);
    console.log('WA 1 = no write amplification inside the card: an upper bound. Small synchronous writes are the');
    console.log("worst case for a card's flash translation layer; divide by the card's (unknown) amplification.\n");
    printResult({
      bench: 'datastore-writes',
      minutes: round(elapsed / 60, 2),
      etcdVersion,
      sqliteVersion,
      model: { nodes: NODES.length, streams: STREAMS.map(({ key, every, size, ttl, etcdOnly }) => ({ key, every, size, ttl, etcdOnly })), compactEvery: COMPACT_EVERY, seed: SEED },
      card: { gb: CARD_GB, pe: PE_CYCLES },
      etcd: e,
      sqlite: q,
      ratio: { bytes: round(e.blockBytes / q.blockBytes, 2), flushes: round(e.flushes / Math.max(1, q.flushes), 2) },
    });
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await cleanup();
  }
}

runBench('datastore-writes', main);
