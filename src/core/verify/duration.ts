/** Durations on the command line: `90s`, `10m`, `1h30m`, `500ms`, or plain seconds (`30`). */
import { InputError } from '../errors.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export function parseDuration(text: string, flag: string): number {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Math.round(Number(t) * 1000);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(t); m !== null; m = re.exec(t)) {
    total += Number(m[1]) * (UNIT_MS[m[2] ?? ''] ?? 0);
    matched = re.lastIndex;
  }
  if (t === '' || matched !== t.length) {
    throw new InputError(`${flag}: "${text}" is not a duration`, { hint: `use e.g. ${flag} 90s, ${flag} 10m or ${flag} 1h30m` });
  }
  return Math.round(total);
}

/** 95000 → "1m35s" (for progress lines). */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${sec}s`;
}
