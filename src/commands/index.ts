import type { CommandModule } from 'yargs';
import { bootTestCommand } from './boot-test.js';
import { buildCommand } from './build.js';
import { completionCommand } from './completion.js';
import { diffCommand } from './diff.js';
import { flashCommand } from './flash.js';
import { imagesCommand } from './images.js';
import { initCommand } from './init.js';
import { kubeconfigCommand } from './kubeconfig.js';
import { netbootCommand } from './netboot.js';
import { rebuildCommand } from './rebuild.js';
import { renderCommand } from './render.js';
import { secretsCommand } from './secrets.js';
import { statusCommand } from './status.js';
import { validateCommand } from './validate.js';
import { verifyCommand } from './verify.js';

/** Every pi-image command, in the order `--help` lists them (the operator's day, start to end). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<any, any>[] = [
  initCommand,
  validateCommand,
  secretsCommand,
  renderCommand,
  imagesCommand,
  buildCommand,
  diffCommand,
  bootTestCommand,
  flashCommand,
  netbootCommand,
  kubeconfigCommand,
  statusCommand,
  verifyCommand,
  rebuildCommand,
  completionCommand,
];
