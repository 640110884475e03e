/** Facts about the machine pi-image runs on that come from the operating system. */
import { hostname, userInfo } from 'node:os';

/** The account name of this process, or undefined when the system cannot tell (no passwd entry). */
export function systemUser(): string | undefined {
  try {
    return userInfo().username;
  } catch {
    return undefined;
  }
}

/** This machine's host name. */
export function hostName(): string {
  return hostname();
}
