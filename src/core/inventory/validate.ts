/**
 * Inventory validation in stages, every problem reported at once:
 *   1. YAML syntax (per file, with line:col)
 *   2. schema (per file: types, formats, unknown fields)
 *   3. rules across fields and files (uniqueness, addresses in the subnet, server count, …)
 * then normalisation into the Inventory model (defaults → role → node). Pure: no I/O.
 */
import type * as z from 'zod';
import type { Inventory } from '../model.js';
import { type Diagnostic, fieldPath, sortDiagnostics } from './diagnostics.js';
import { buildInventory } from './normalise.js';
import { checkRules } from './rules.js';
import { closest } from './suggest.js';
import { type ClusterFile, clusterFileSchema, type NodeFile, nodeFileSchema } from './schema.js';
import { type InventoryFileText, SourceFile } from './source.js';
import { printable } from './text.js';
import { fileNameProblem, fileStem, isClusterFile } from './names.js';

export const CLUSTER_FILE = 'cluster.yaml';

export interface ValidateOptions {
  /** inventory directory as given by the user (kept in the model for adapters) */
  dir: string;
  /** the directory as shown in messages (default: dir) */
  displayDir?: string;
  /** base image names present in the catalogue; when given, cluster.image must be one of them */
  knownImages?: readonly string[];
}

export interface ParsedCluster {
  source: SourceFile;
  data: ClusterFile;
}
export interface ParsedNode {
  source: SourceFile;
  data: NodeFile;
  /** hostname (from the file or its name) */
  hostname: string;
}

export interface ValidationResult {
  inventory?: Inventory;
  errors: Diagnostic[];
  warnings: Diagnostic[];
}



function valueAt(obj: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = obj;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[key];
  }
  return cur;
}

function describeType(t: string): string {
  if (t === 'object' || t === 'record') return 'a mapping (key: value lines)';
  if (t === 'array') return 'a list';
  return `a ${t}`;
}

function shortValue(v: unknown): string | undefined {
  if (typeof v === 'string') {
    const p = printable(v, 40);
    return p !== v || v === '' ? `"${p}"` : v;
  }
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

function knownKeys(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  // Walk the zod object shape along the path (through optional/default wrappers).
  let cur: unknown = schema;
  const unwrap = (s: unknown): unknown => {
    let x = s as { def?: { innerType?: unknown; type?: string; element?: unknown }; shape?: unknown };
    while (x?.def?.innerType) x = x.def.innerType as typeof x;
    return x;
  };
  cur = unwrap(cur);
  for (const key of path) {
    const s = cur as { shape?: Record<string, unknown>; def?: { type?: string; element?: unknown } };
    if (typeof key === 'number' && s.def?.type === 'array') cur = unwrap(s.def.element);
    else if (s.shape && typeof key === 'string') cur = unwrap(s.shape[key]);
    else return [];
  }
  const shape = (cur as { shape?: Record<string, unknown> }).shape;
  return shape ? Object.keys(shape) : [];
}

function schemaDiagnostics(source: SourceFile, schema: z.ZodType, raw: unknown, issues: z.core.$ZodIssue[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const issue of issues) {
    const path = issue.path as (string | number)[];
    if (issue.code === 'unrecognized_keys') {
      const keys = knownKeys(schema, path);
      for (const key of issue.keys) {
        const best = closest(key, keys);
        const hint = best ? `; did you mean "${best}"?` : keys.length ? `; known fields: ${keys.join(', ')}` : '';
        out.push(source.diag([...path, key], `unknown field${hint}`, 'error', true));
      }
      continue;
    }
    if (issue.code === 'invalid_key') {
      const inner = issue.issues[0]?.message;
      out.push(source.diag(path, inner && !inner.startsWith('Invalid') ? inner : 'is not a valid key here', 'error', true));
      continue;
    }
    const value = valueAt(raw, path);
    if (value === undefined && (issue.code === 'invalid_type' || issue.code === 'invalid_value')) {
      const what = issue.code === 'invalid_value' ? `one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}` : describeType(issue.expected);
      out.push(source.diag(path, `is required (${what})`));
      continue;
    }
    if (value === null && issue.code === 'invalid_type') {
      out.push(source.diag(path, `is empty; expected ${describeType(issue.expected)}`, 'error', true));
      continue;
    }
    if (issue.code === 'invalid_union') {
      // Report the most specific branch message: the one whose errors go deepest.
      const branches = issue.errors.map((errs) => errs.filter((e) => e.code !== 'invalid_type'));
      const best = branches.find((b) => b.length > 0);
      if (best) {
        out.push(...schemaDiagnostics(source, schema, raw, best.map((e) => ({ ...e, path: [...path, ...e.path] }) as z.core.$ZodIssue)));
        continue;
      }
    }
    const shown = shortValue(value);
    let message = issue.message;
    if (issue.code === 'invalid_type') {
      message = issue.message.startsWith('Invalid input') ? `must be ${describeType(issue.expected)}` : issue.message;
      const raw = source.scalarSource(path);
      if (issue.expected === 'string' && (typeof value === 'number' || typeof value === 'boolean') && raw !== undefined) {
        const key = path[path.length - 1];
        const example = typeof key === 'string' ? `${key}: "${raw}"` : `"${raw}"`;
        message += `; YAML reads ${raw} as a ${typeof value}${String(value) !== raw ? ` (${String(value)})` : ''}: put it in quotes, e.g. ${example}`;
      }
    }
    if (issue.code === 'invalid_value' && 'values' in issue) {
      message = issue.message.startsWith('must') ? issue.message : `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    }
    out.push(source.diag(path, shown !== undefined && !message.startsWith('must') ? `${shown} ${message}` : shown !== undefined ? `${shown}: ${message}` : message));
  }
  return out;
}

/** Stages 1 and 2 for one file. */
function parseFile<T extends z.ZodType>(
  file: InventoryFileText,
  schema: T,
): { source?: SourceFile; data?: z.output<T>; partial?: { data: z.output<T>; pruned: string[] }; errors: Diagnostic[] } {
  const { source, errors } = SourceFile.parse(file);
  if (!source) return { errors };
  const js = source.toJS();
  if (js.error) return { source, errors: [js.error] };
  const raw = js.value;
  const result = schema.safeParse(raw);
  if (result.success) return { source, data: result.data, errors: [] };
  const partial = pruneToValid(schema, raw, result.error.issues);
  return { source, ...(partial ? { partial } : {}), errors: schemaDiagnostics(source, schema, raw, result.error.issues) };
}

/**
 * The file with every field the schema refused taken out, when what is left is valid (a refused
 * field that has a default or is optional): the cross-file rules then run on it, so one typo does
 * not hide the rule problems of the rest of the file. A refused required field gives up (undefined).
 * List elements take their whole list out, so rule messages keep their indices. `pruned` holds the
 * field paths taken out, to drop rule messages about them (the schema error already names them).
 */
function pruneToValid<T extends z.ZodType>(
  schema: T,
  raw: unknown,
  issues: readonly z.core.$ZodIssue[],
): { data: z.output<T>; pruned: string[] } | undefined {
  if (raw === null || typeof raw !== 'object') return undefined;
  const doc = structuredClone(raw) as Record<string, unknown>;
  const pruned: string[] = [];
  let current = issues;
  for (let round = 0; round < 8; round++) {
    let removed = false;
    for (const issue of current) {
      const paths =
        issue.code === 'unrecognized_keys' ? issue.keys.map((k) => [...issue.path, k]) : [issue.path];
      for (const full of paths) {
        const index = full.findIndex((p) => typeof p === 'number');
        const path = index === -1 ? full : full.slice(0, index);
        if (path.length === 0) return undefined;
        const parent = valueAt(doc, path.slice(0, -1));
        const key = path[path.length - 1]!;
        if (parent === null || typeof parent !== 'object' || !(key in parent)) continue;
        delete (parent as Record<PropertyKey, unknown>)[key];
        pruned.push(fieldPath(path as (string | number)[]));
        removed = true;
      }
    }
    if (!removed) return undefined;
    const again = schema.safeParse(doc);
    if (again.success) return { data: again.data, pruned };
    current = again.error.issues;
  }
  return undefined;
}

/** A rule message about a field the schema already refused (or its parent / child) says nothing new. */
function aboutPruned(d: Diagnostic, prunedByFile: ReadonlyMap<string, readonly string[]>): boolean {
  const pruned = prunedByFile.get(d.file);
  if (!pruned) return false;
  // a whole-file message about a refused top-level field ("ip is required: …") is about it too
  if (d.field === '') return pruned.some((p) => !/[.[]/.test(p) && d.message.startsWith(`${p} `));
  const related = (a: string, b: string) => a === b || a.startsWith(`${b}.`) || a.startsWith(`${b}[`);
  return pruned.some((p) => related(d.field, p) || related(p, d.field));
}

/**
 * Validates the inventory files (cluster.yaml and one file per node).
 * `files` are the *.yaml files of the inventory directory, with paths as shown to the user.
 */
export function validateInventory(files: readonly InventoryFileText[], opts: ValidateOptions): ValidationResult {
  const errors: Diagnostic[] = [];
  const warnings: Diagnostic[] = [];
  const clusterFiles = files.filter((f) => isClusterFile(f.path));
  const clusterText = clusterFiles[0];
  for (const extra of clusterFiles.slice(1)) {
    errors.push({
      severity: 'error',
      file: extra.path,
      line: 1,
      col: 1,
      field: '',
      message: `a second cluster file next to ${clusterText!.path}; keep one ${CLUSTER_FILE}`,
    });
  }
  let cluster: ParsedCluster | undefined;
  /** fields the schema refused, per file, for files whose rest still goes through the rules */
  const prunedByFile = new Map<string, string[]>();
  if (!clusterText) {
    errors.push({
      severity: 'error',
      file: `${(opts.displayDir ?? opts.dir).replace(/\/$/, '')}/${CLUSTER_FILE}`,
      line: 1,
      col: 1,
      field: '',
      message: `missing: every inventory needs a ${CLUSTER_FILE} (see docs/inventory.md)`,
    });
  } else {
    const r = parseFile(clusterText, clusterFileSchema);
    errors.push(...r.errors);
    if (r.source && r.data) cluster = { source: r.source, data: r.data };
    else if (r.source && r.partial) {
      cluster = { source: r.source, data: r.partial.data };
      prunedByFile.set(r.source.path, r.partial.pruned);
    }
  }

  const nodes: ParsedNode[] = [];
  let nodeFiles = 0;
  for (const file of files) {
    if (clusterFiles.includes(file)) continue;
    nodeFiles++;
    const nameProblem = fileNameProblem(file.path);
    if (nameProblem) errors.push({ severity: 'error', file: file.path, line: 1, col: 1, field: '', message: nameProblem });
    const r = parseFile(file, nodeFileSchema);
    errors.push(...r.errors);
    const data = r.data ?? r.partial?.data;
    if (r.source && data) {
      nodes.push({ source: r.source, data, hostname: data.hostname ?? fileStem(file.path) });
      if (r.partial) prunedByFile.set(r.source.path, r.partial.pruned);
    }
  }
  if (nodeFiles === 0 && clusterText) {
    errors.push({
      severity: 'error',
      file: clusterText.path,
      line: 1,
      col: 1,
      field: '',
      message: 'the inventory has no nodes: add one <hostname>.yaml per node next to cluster.yaml',
    });
  }

  // Stage 3 runs on everything that parsed, a file with schema errors included (minus the refused
  // fields), so schema errors and rule problems are reported at once.
  const rules = checkRules(cluster, nodes, opts).filter((d) => !aboutPruned(d, prunedByFile));
  errors.push(...rules.filter((d) => d.severity === 'error'));
  warnings.push(...rules.filter((d) => d.severity === 'warning'));

  const result: ValidationResult = { errors: sortDiagnostics(errors), warnings: sortDiagnostics(warnings) };
  if (errors.length === 0 && cluster) result.inventory = buildInventory(cluster, nodes, opts.dir);
  return result;
}

/**
 * Stages 1 and 2 for cluster.yaml alone: what commands that need only the cluster settings (the
 * secrets commands: cluster name, whether Wi-Fi is configured) read, so they work while node files
 * are still missing or being fixed.
 */
export function validateClusterFile(file: InventoryFileText): { cluster?: ClusterFile; errors: Diagnostic[] } {
  const r = parseFile(file, clusterFileSchema);
  return r.data && r.errors.length === 0 ? { cluster: r.data, errors: [] } : { errors: sortDiagnostics(r.errors) };
}
