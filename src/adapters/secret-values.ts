/**
 * Secret values seen in this process, for the CLI's last-line-of-defence redaction (src/cli.ts
 * masks them in everything it prints). Its own module, free of dependencies, so the CLI can reset
 * and read it at start-up without loading the age library (commands load lazily).
 */
const seenValues = new Set<string>();
const printable = new Set<string>();

/** Remembers decrypted or written values (those allowed to print stay unmasked). */
export function rememberSecretValues(values: Iterable<string>): void {
  for (const v of values) if (v && !printable.has(v)) seenValues.add(v);
}

/** Every secret value decrypted or written by this process. */
export function secretValuesSeen(): string[] {
  return [...seenValues];
}

/** Starts a new CLI run: forgets earlier values and permissions to print. */
export function resetSecretValuesSeen(): void {
  seenValues.clear();
  printable.clear();
}

/** `secrets show --reveal NAME` prints exactly this value on purpose: let it through the mask. */
export function allowToPrint(value: string): void {
  printable.add(value);
  seenValues.delete(value);
}
