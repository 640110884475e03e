import type { CommandModule } from 'yargs';
import { validateCommand } from './validate.js';
import { verifyCommand } from './verify.js';

/** Every pi-image command, in the order `--help` lists them. Add new commands here. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<any, any>[] = [validateCommand, verifyCommand];
