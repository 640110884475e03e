/**
 * Progress as commands show it (a bar on a terminal, a line now and then otherwise). The drawing
 * lives in adapters/progress.ts; commands reach it through here, as they reach no adapter directly.
 */
export { createProgress, type ProgressReporter, type ProgressTask } from '../adapters/progress.js';
