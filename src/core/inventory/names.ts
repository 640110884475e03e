/** Inventory file names: which file is the cluster file, and the hostname a node file's name gives. Pure. */
import { HOSTNAME_RE } from './net.js';
import { printable } from './text.js';

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** Inventory files end in .yaml or .yml, in any case (pi-cluster-4.YAML is a node file too). */
export const INVENTORY_FILE_RE = /\.ya?ml$/i;

/** A file's name without the directory and the .yaml/.yml extension: the node's hostname. */
export function fileStem(path: string): string {
  return basename(path).replace(INVENTORY_FILE_RE, '');
}

export function isClusterFile(path: string): boolean {
  return fileStem(path).toLowerCase() === 'cluster';
}

/**
 * Why a node file's name is not a hostname, with a fix; undefined when it is one. A node's hostname
 * comes from its file name, so the name must be an RFC 1123 label like the `hostname:` field.
 */
export function fileNameProblem(path: string): string | undefined {
  const stem = fileStem(path);
  if (HOSTNAME_RE.test(stem)) return undefined;
  const shown = printable(basename(path));
  const rule = 'a node file is named <hostname>.yaml and a hostname is an RFC 1123 label (lower-case letters, digits and "-", 1–63 characters)';
  const dot = stem.indexOf('.');
  if (dot > 0 && HOSTNAME_RE.test(stem.slice(0, dot))) {
    return `the file name ${shown} is not <hostname>.yaml (${rule}); a backup or a copy? move it out of the inventory directory or rename it to ${stem.slice(0, dot)}.yaml.bak, which is not loaded`;
  }
  const suggestion = stem.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63);
  const hint = suggestion && HOSTNAME_RE.test(suggestion) ? `; rename it, e.g. to ${suggestion}.yaml` : '';
  return `the file name ${shown} is not a valid hostname: ${rule}${hint}`;
}
