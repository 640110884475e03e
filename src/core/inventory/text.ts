/**
 * Checks for free text that ends up in generated files (shell scripts, YAML, systemd units): no
 * control characters. The reason is part of the message, so the operator knows why a value was refused.
 */

/** C0 controls (incl. NUL, tab, newline, carriage return), DEL and C1 controls; also U+2028/U+2029 line separators. */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/** Name of the first control character in `s` (e.g. "a newline"), or undefined when there is none. */
export function controlCharacter(s: string): string | undefined {
  const m = CONTROL.exec(s);
  if (!m) return undefined;
  const c = m[0];
  const names: Record<string, string> = { '\n': 'a newline', '\r': 'a carriage return', '\t': 'a tab', '\u0000': 'a NUL byte' };
  return names[c] ?? `the control character U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
}

export const CONTROL_REASON = 'values are written into the node\'s shell scripts and YAML files, where a line break or control character would change their meaning';

/** The message for a value with a control character, e.g. `contains a newline; …`. */
export function controlMessage(s: string): string | undefined {
  const c = controlCharacter(s);
  return c === undefined ? undefined : `contains ${c}: ${CONTROL_REASON}`;
}

/** Shows a value in a message on one line: control characters escaped (JSON style), long values cut. */
export function printable(s: string, max = 60): string {
  const escaped = JSON.stringify(s).slice(1, -1);
  return escaped.length > max ? `${escaped.slice(0, max - 1)}…` : escaped;
}

let canonicalZones: Set<string> | undefined;

/** The IANA time zone check: `Europe/Berlin` yes, `Europe/Nowhere` no, `europe/berlin` only with the right case. */
export function checkTimezone(name: string): { ok: true } | { ok: false; message: string } {
  // A canonical zone name (ICU's own list, as Intl.DateTimeFormat knows them, all of which pass the
  // check below) is found without building a date formatter: its locale data costs about as long as
  // starting Node. Aliases (US/Pacific) and misspellings take the full check.
  canonicalZones ??= new Set(['UTC', ...Intl.supportedValuesOf('timeZone')]);
  if (canonicalZones.has(name)) return { ok: true };
  let resolved: string;
  try {
    resolved = new Intl.DateTimeFormat('en', { timeZone: name }).resolvedOptions().timeZone;
  } catch {
    return { ok: false, message: `is not a time zone of the IANA database (e.g. Europe/Berlin, America/New_York or UTC; \`timedatectl list-timezones\` lists them)` };
  }
  if (resolved !== name && resolved.toLowerCase() === name.toLowerCase()) {
    return { ok: false, message: `is spelled ${resolved} in the IANA database (the node looks it up in /usr/share/zoneinfo, which is case-sensitive)` };
  }
  return { ok: true };
}
