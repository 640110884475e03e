/**
 * Child process for the SIGINT cleanup test: starts withTempOutput(<argv[2]>), writes the temp
 * file, prints "ready <tmp>" and waits to be killed.
 */
import { writeFile } from 'node:fs/promises';
import { withTempOutput } from '../../src/adapters/image-files.js';

const dest = process.argv[2] ?? '';
await withTempOutput(dest, async (tmp) => {
  await writeFile(tmp, 'partial');
  process.stdout.write(`ready ${tmp}\n`);
  await new Promise((r) => setTimeout(r, 60_000));
});
