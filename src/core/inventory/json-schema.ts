/** JSON Schemas of the inventory files, for editors (yaml-language-server) — written by `npm run schema`. */
import * as z from 'zod';
import { clusterFileSchema, nodeFileSchema } from './schema.js';

function toSchema(schema: z.ZodType, title: string, id: string): Record<string, unknown> {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }) as Record<string, unknown>;
  return { $id: id, title, ...json };
}

export function inventoryJsonSchemas(): Record<string, Record<string, unknown>> {
  return {
    'cluster.schema.json': toSchema(clusterFileSchema, 'pi-image cluster (nodes/cluster.yaml)', 'https://pi-image.dev/schema/cluster.schema.json'),
    'node.schema.json': toSchema(nodeFileSchema, 'pi-image node (nodes/<hostname>.yaml)', 'https://pi-image.dev/schema/node.schema.json'),
  };
}
