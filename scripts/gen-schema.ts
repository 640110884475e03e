/** Writes schema/*.schema.json from the zod schemas (tests check they are up to date). */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inventoryJsonSchemas } from '../src/core/inventory/json-schema.js';

const dir = join(import.meta.dirname, '..', 'schema');
mkdirSync(dir, { recursive: true });
for (const [name, schema] of Object.entries(inventoryJsonSchemas())) {
  writeFileSync(join(dir, name), `${JSON.stringify(schema, null, 2)}\n`);
  console.log(`wrote schema/${name}`);
}
