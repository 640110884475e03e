/** The system clock (wall time and timers), the Clock the CLI hands to use cases. */
import { setTimeout as delay } from 'node:timers/promises';
import type { Clock } from '../core/clock.js';

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => delay(Math.max(0, ms)),
};
