/** Names of evidence folders (diff reviews, rebuild drills): `<YYYY-MM-DD>-<name>[-N]`. Pure. */

/** `YYYY-MM-DD` of a time, in UTC. */
export function isoDay(t: Date): string {
  return t.toISOString().slice(0, 10);
}

/** `<YYYY-MM-DD>-<name>`, or with `-2`, `-3`, … when that folder is taken. */
export function evidenceFolderName(now: Date, name: string, taken: (folder: string) => boolean): string {
  const first = `${isoDay(now)}-${name}`;
  if (!taken(first)) return first;
  for (let i = 2; ; i++) if (!taken(`${first}-${i}`)) return `${first}-${i}`;
}
