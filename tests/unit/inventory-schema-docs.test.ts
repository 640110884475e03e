/** The editor JSON Schemas are up to date, and docs/inventory.md documents every schema field. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { inventoryJsonSchemas } from '../../src/core/inventory/json-schema.js';
import { REPO_ROOT } from '../helpers/sample-inventory.js';

type JsonSchema = { properties?: Record<string, JsonSchema>; anyOf?: JsonSchema[]; additionalProperties?: unknown };

/** Dotted paths of every property, descending into objects (and optional wrappers). */
function fieldPaths(schema: JsonSchema, prefix = ''): string[] {
  const out: string[] = [];
  const props = schema.properties ?? schema.anyOf?.find((s) => s.properties)?.properties ?? {};
  for (const [key, sub] of Object.entries(props)) {
    const path = prefix ? `${prefix}.${key}` : key;
    const nested = fieldPaths(sub, path);
    out.push(...(nested.length ? nested : [path]));
  }
  return out;
}

describe('inventory schema and its documentation', () => {
  const schemas = inventoryJsonSchemas();

  it('schema/*.json match the zod schemas (run `npm run schema` after changing them)', () => {
    for (const [name, schema] of Object.entries(schemas)) {
      const committed = JSON.parse(readFileSync(join(REPO_ROOT, 'schema', name), 'utf8'));
      expect(committed, name).toEqual(JSON.parse(JSON.stringify(schema)));
    }
  });

  it('docs/inventory.md names every field of both files', () => {
    const doc = readFileSync(join(REPO_ROOT, 'docs', 'inventory.md'), 'utf8');
    const [clusterPart, nodePart] = doc.split('## `<hostname>.yaml`');
    const check = (schema: JsonSchema, text: string) => {
      const paths = fieldPaths(schema);
      expect(paths.length).toBeGreaterThan(10);
      const missing = paths.filter((p) => {
        // defaults.server.labels is documented as `defaults.server.labels` / `defaults.agent.labels`
        return !text.includes(`\`${p}\``);
      });
      expect(missing).toEqual([]);
    };
    check(schemas['cluster.schema.json'] as JsonSchema, clusterPart!);
    check(schemas['node.schema.json'] as JsonSchema, nodePart!);
  });
});
