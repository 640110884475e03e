/**
 * The one clock type. Use cases take a Clock as a port: the CLI passes the system clock
 * (src/adapters/clock.ts), tests pass `fakeClock`, so deadlines, budgets and timestamps are
 * deterministic. Core functions take the time they need as a value (a Date), never a Clock.
 */
export interface Clock {
  /** milliseconds since the epoch */
  now(): number;
  /** resolves after `ms` milliseconds (of this clock) */
  sleep(ms: number): Promise<void>;
}

/** The clock's time as a Date. */
export function clockDate(clock: Pick<Clock, 'now'>): Date {
  return new Date(clock.now());
}

/** A clock that only moves when slept on or advanced (tests). */
export function fakeClock(start: Date | number = 0): Clock & { advance(ms: number): void } {
  let t = typeof start === 'number' ? start : start.getTime();
  return {
    now: () => t,
    sleep: async (ms) => {
      t += Math.max(0, ms);
    },
    advance: (ms) => {
      t += ms;
    },
  };
}
