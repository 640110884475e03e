/**
 * One parsed inventory file: the YAML document plus a way to turn a field path into a line:column.
 * Stage 1 of validation (syntax) lives here.
 */
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node, type Pair } from 'yaml';
import { type Diagnostic, fieldPath } from './diagnostics.js';

/** Alias uses allowed per file (the yaml library's own default, stated here so the limit is visible). */
export const MAX_ALIAS_COUNT = 100;

export interface InventoryFileText {
  /** path as shown to the user, e.g. nodes/pi-cluster-4.yaml */
  path: string;
  text: string;
}

export class SourceFile {
  readonly path: string;
  readonly doc: Document;
  private readonly lines: LineCounter;

  private constructor(path: string, doc: Document, lines: LineCounter) {
    this.path = path;
    this.doc = doc;
    this.lines = lines;
  }

  /** Parses the file; syntax errors come back as diagnostics (and no SourceFile). */
  static parse(file: InventoryFileText): { source?: SourceFile; errors: Diagnostic[] } {
    const lines = new LineCounter();
    const doc = parseDocument(file.text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
    const errors: Diagnostic[] = doc.errors.map((e) => {
      const pos = lines.linePos(e.pos[0]);
      return {
        severity: 'error' as const,
        file: file.path,
        line: pos.line,
        col: pos.col,
        field: '',
        message: `YAML syntax: ${e.message.split('\n')[0]}`,
      };
    });
    if (errors.length) return { errors };
    const source = new SourceFile(file.path, doc, lines);
    if (doc.contents === null || !isMap(doc.contents)) {
      return {
        errors: [source.diag([], doc.contents === null ? 'the file is empty; expected a mapping with apiVersion and kind' : 'expected a mapping (key: value lines) at the top level')],
      };
    }
    return { source, errors: [] };
  }

  /**
   * The document as plain data. Aliases are capped (a "billion laughs" file expands exponentially):
   * too many come back as a diagnostic, not an exception.
   */
  toJS(): { value: unknown; error?: Diagnostic } {
    try {
      return { value: this.doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) };
    } catch (e) {
      const message = e instanceof ReferenceError && /alias/i.test(e.message)
        ? `YAML aliases: the file expands too many aliases (*name), more than ${MAX_ALIAS_COUNT} uses; write the values out instead of nesting anchors`
        : `YAML: ${(e as Error).message}`;
      return { value: undefined, error: this.diag([], message) };
    }
  }

  /** The source text of the scalar at `path` (e.g. `00000014` for a serial YAML read as the number 14). */
  scalarSource(path: readonly (string | number)[]): string | undefined {
    let node: unknown = this.doc.contents;
    for (const key of path) {
      if (isMap(node)) node = node.items.find((p: Pair) => isScalar(p.key) && String(p.key.value) === String(key))?.value;
      else if (isSeq(node) && typeof key === 'number') node = node.items[key];
      else return undefined;
    }
    return isScalar(node) && typeof node.source === 'string' ? node.source : undefined;
  }

  /** line:col of the deepest existing node on the path (the key when `atKey`, e.g. for unknown fields). */
  position(path: readonly (string | number)[], atKey = false): { line: number; col: number } {
    let node: Node | null | undefined = this.doc.contents as Node | null;
    let offset = node?.range?.[0] ?? 0;
    for (let i = 0; i < path.length && node; i++) {
      const key = path[i]!;
      if (isMap(node)) {
        const pair: Pair | undefined = node.items.find((p: Pair) => isScalar(p.key) && String(p.key.value) === String(key));
        if (!pair) break;
        const last = i === path.length - 1;
        if (last && atKey && isScalar(pair.key) && pair.key.range) {
          offset = pair.key.range[0];
          break;
        }
        node = (pair.value as Node | null) ?? undefined;
        offset = node?.range?.[0] ?? (isScalar(pair.key) && pair.key.range ? pair.key.range[0] : offset);
      } else if (isSeq(node) && typeof key === 'number') {
        node = node.items[key] as Node | undefined;
        if (node?.range) offset = node.range[0];
      } else break;
    }
    const pos = this.lines.linePos(offset);
    return { line: pos.line, col: pos.col };
  }

  diag(path: readonly (string | number)[], message: string, severity: 'error' | 'warning' = 'error', atKey = false): Diagnostic {
    const pos = this.position(path, atKey);
    return { severity, file: this.path, line: pos.line, col: pos.col, field: fieldPath(path), message };
  }
}
