/**
 * pi-image as a library: the same use cases the CLI runs (src/cli.ts is a thin layer over them).
 *
 *   import { validate, render, build, verifyChecks } from 'pi-image';
 *
 * - validate: read and check an inventory directory, every problem with file, line and field;
 * - loadInventory: the same, throwing an InputError unless it is valid;
 * - render: load the cluster secrets and render the seed files of nodes (writeNodeFiles writes them);
 * - build: bake ready-to-flash images with build records;
 * - verifyChecks: the named cluster health checks over a snapshot (`pi-image verify` takes the
 *   snapshot from the Kubernetes API); summarizeChecks counts them.
 * Errors are PiImageError subclasses; their category decides the CLI's exit code (EXIT_CODES).
 */
export { checkInventory as validate, loadInventory, type LoadOptions } from './app/inventory.js';
export { renderInventory as render, writeNodeFiles, type RenderInventoryOptions, type WrittenNode } from './app/render.js';
export { buildImages as build, type BuildOptions, type BuildResult } from './app/build.js';
export {
  runChecks as verifyChecks,
  summarize as summarizeChecks,
  type Baseline,
  type CheckResult,
  type CheckSummary,
  type ClusterSnapshot,
  type VerifyOptions,
} from './core/verify/checks.js';
export { runCli } from './cli.js';

export type { BuildRecord } from './core/build-record.js';
export type { Clock } from './core/clock.js';
export type { Io, OutputFormat } from './app/io.js';
export type { ValidationResult } from './core/inventory/validate.js';
export type { Diagnostic } from './core/inventory/diagnostics.js';
export type { ClusterModel, Inventory, NodeFileSet, NodeModel, RenderedFile, Secrets } from './core/model.js';
export {
  ChecksFailedError,
  ClusterError,
  EnvironmentError,
  EXIT_CODES,
  InputError,
  InternalError,
  IoError,
  PiImageError,
  type ErrorCategory,
} from './core/errors.js';
