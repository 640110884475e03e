/**
 * Child process for the Ctrl-C test: installs pi-image's interrupt handlers, draws a progress bar
 * on a terminal Io (cli-progress hides the cursor and turns wrapping off), prints "ready" and waits
 * for the signal.
 */
import { createProgress } from '../../src/adapters/progress.js';
import { installInterruptHandlers } from '../../src/adapters/terminal.js';

installInterruptHandlers();
const progress = createProgress({
  err: (t) => process.stderr.write(t),
  isTTY: true,
});
const task = progress.task('writing', 100);
task.update(40, 'seed');
process.stderr.write('\nready\n');
setInterval(() => task.update(41, 'seed'), 1000);
