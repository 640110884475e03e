/**
 * One advisory lock per store: a lock file created with O_EXCL that names its owner (pid, host,
 * start time, what it does). Used for the secrets store (secrets.age + secrets.recipients) and for
 * each image-cache entry, held across the whole read-modify-write.
 *
 * - A second process waits (polling, bounded by `waitMs`) and then fails with a message naming
 *   the owner.
 * - A lock whose owner process is gone (same host, pid no longer running, e.g. after SIGKILL) is
 *   stale: the next process takes it over. The takeover itself is serialised by a short-lived
 *   guard file, so two waiters cannot both remove the stale lock and both believe they hold it.
 * - A lock file that could not be parsed (its owner died between creating and writing it) is
 *   stale once it is older than a few seconds.
 * - A held lock is removed when the process is stopped by SIGINT/SIGTERM (image-files'
 *   removeOnSignal), so an interrupted command leaves no lock file behind.
 */
import { readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { EnvironmentError, IoError } from '../core/errors.js';
import { removeOnSignal } from './image-files.js';
import { pidAlive } from './process.js';

export interface LockOwner {
  pid: number;
  host: string;
  since: string;
  what: string;
}

export interface LockOptions {
  /** what the holder is doing, shown to a waiting process ("changing nodes/secrets.age") */
  what: string;
  /** how long to wait for another holder before giving up (default 120 s) */
  waitMs?: number;
  /** pause between attempts (default 50–150 ms, jittered) */
  pollMs?: number;
  /** hint for the error when the wait is over */
  hint?: string;
  /** called once when the lock is held by another live process and this one starts waiting */
  onWait?: (owner: LockOwner | undefined) => void;
}

/** Lock files younger than this with unreadable content are assumed to be being written. */
const UNPARSABLE_GRACE_MS = 5_000;
/** A takeover guard older than this was left by a process that died mid-takeover. */
const GUARD_STALE_MS = 10_000;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const o = JSON.parse(text) as Partial<LockOwner>;
    if (typeof o.pid === 'number' && typeof o.host === 'string') {
      return { pid: o.pid, host: o.host, since: String(o.since ?? ''), what: String(o.what ?? '') };
    }
  } catch {
    /* fall through */
  }
  return undefined;
}

async function readLock(path: string): Promise<{ text: string; owner?: LockOwner; ageMs: number } | undefined> {
  try {
    const [text, st] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    const owner = parseOwner(text);
    return { text, ageMs: Date.now() - st.mtimeMs, ...(owner ? { owner } : {}) };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

function isStale(lock: { owner?: LockOwner; ageMs: number }): boolean {
  if (!lock.owner) return lock.ageMs > UNPARSABLE_GRACE_MS;
  return lock.owner.host === hostname() && !pidAlive(lock.owner.pid);
}

/** Removes `path` if it still holds `text` (a stale lock), under a guard so only one process does it. */
async function takeOver(path: string, text: string): Promise<void> {
  const guard = `${path}.takeover`;
  try {
    await writeFile(guard, String(process.pid), { flag: 'wx', mode: 0o644 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    const st = await stat(guard).catch(() => undefined);
    if (st && Date.now() - st.mtimeMs > GUARD_STALE_MS) await unlink(guard).catch(() => undefined);
    return; // someone else is taking over; try again after a pause
  }
  try {
    const again = await readFile(path, 'utf8').catch(() => undefined);
    if (again === text) await unlink(path).catch(() => undefined);
  } finally {
    await unlink(guard).catch(() => undefined);
  }
}

export interface HeldLock {
  path: string;
  /** set when this process removed a stale lock left by a dead process */
  tookOverFrom?: LockOwner;
  release(): Promise<void>;
}

/** Takes the lock at `path` (waiting for another holder, taking over a stale one). */
export async function acquireLock(path: string, opts: LockOptions): Promise<HeldLock> {
  const waitMs = opts.waitMs ?? 120_000;
  const started = Date.now();
  const me: LockOwner = { pid: process.pid, host: hostname(), since: new Date().toISOString(), what: opts.what };
  const mine = `${JSON.stringify(me)}\n`;
  let tookOverFrom: LockOwner | undefined;
  let waiting = false;
  for (;;) {
    try {
      await writeFile(path, mine, { flag: 'wx', mode: 0o644 });
      let released = false;
      const forget = removeOnSignal(path);
      return {
        path,
        ...(tookOverFrom ? { tookOverFrom } : {}),
        release: async () => {
          if (released) return;
          released = true;
          forget();
          const now = await readFile(path, 'utf8').catch(() => undefined);
          if (now === mine) await unlink(path).catch(() => undefined);
        },
      };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') {
        throw new IoError(`cannot create the lock file ${path}: ${code ?? String(e)}`, {
          hint: 'check that the directory exists and is writable',
        });
      }
    }
    const held = await readLock(path);
    if (held === undefined) continue; // released between our attempt and the read
    if (isStale(held)) {
      if (held.owner) tookOverFrom = held.owner;
      await takeOver(path, held.text);
      continue;
    }
    if (Date.now() - started >= waitMs) {
      const who = held.owner
        ? `pid ${held.owner.pid} on ${held.owner.host}, since ${held.owner.since}, ${held.owner.what}`
        : 'an unknown process';
      throw new EnvironmentError(`${path} is locked by another pi-image (${who}); waited ${Math.round((Date.now() - started) / 1000)} s`, {
        hint:
          opts.hint ??
          `try again when it has finished; if no pi-image is running${held.owner && held.owner.host !== hostname() ? ` on ${held.owner.host}` : ''}, delete ${path}`,
      });
    }
    if (!waiting) {
      waiting = true;
      opts.onWait?.(held.owner);
    }
    await sleep(opts.pollMs ?? 50 + Math.floor(Math.random() * 100));
  }
}

/** Runs `fn` while holding the lock at `path`; the lock is released however `fn` ends. */
export async function withLock<T>(path: string, opts: LockOptions, fn: (lock: HeldLock) => Promise<T>): Promise<T> {
  const lock = await acquireLock(path, opts);
  try {
    return await fn(lock);
  } finally {
    await lock.release();
  }
}
