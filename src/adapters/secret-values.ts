/**
 * Secret values seen in one CLI run, for the CLI's last-line-of-defence redaction (src/cli.ts masks
 * them in everything the run prints). Each run creates its own `SecretValues` and runs inside it
 * (`withSecretValues`), so two runs in one process (the in-process tests, a library caller) never
 * share or clear each other's values. Free of dependencies, so the CLI can create it at start-up
 * without loading the age library (commands load lazily).
 */
import { AsyncLocalStorage } from 'node:async_hooks';

/** The secret values of one run. */
export class SecretValues {
  private readonly seen = new Set<string>();
  private readonly printable = new Set<string>();

  /** Remembers decrypted or written values (those allowed to print stay unmasked). */
  remember(values: Iterable<string>): void {
    for (const v of values) if (v && !this.printable.has(v)) this.seen.add(v);
  }

  /** `secrets show --reveal NAME` prints exactly this value on purpose: let it through the mask. */
  allowToPrint(value: string): void {
    this.printable.add(value);
    this.seen.delete(value);
  }

  /** Every secret value decrypted or written in this run. */
  values(): string[] {
    return [...this.seen];
  }
}

const currentRun = new AsyncLocalStorage<SecretValues>();

/** Runs `fn` (and everything it awaits) with `values` as the run's registry. */
export function withSecretValues<T>(values: SecretValues, fn: () => T): T {
  return currentRun.run(values, fn);
}

/** Remembers values in the current run's registry (outside a run, e.g. a library caller: nothing to mask). */
export function rememberSecretValues(values: Iterable<string>): void {
  currentRun.getStore()?.remember(values);
}

/** Lets one value through the current run's mask. */
export function allowToPrint(value: string): void {
  currentRun.getStore()?.allowToPrint(value);
}
