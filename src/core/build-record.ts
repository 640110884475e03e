/**
 * The build record: `build/images/<node>.json`, written by `pi-image build` next to each image and
 * read by diff, boot-test, flash and rebuild. One schema, one version, one parser (pure); the file
 * is read and written by src/adapters/build-record.ts only.
 */
import * as z from 'zod';
import { InputError } from './errors.js';

/**
 * The record format version; a record of another version is refused (rebuild the image). A new
 * optional field (read by those who know it, ignored by older readers, absent from older records)
 * keeps the version; a field that changes meaning, or becomes required, needs a new version.
 */
export const BUILD_RECORD_VERSION = 1;

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'expected a sha256 (64 hex digits)');

const recordFile = z.object({
  target: z.enum(['boot', 'root']),
  path: z.string().min(1),
  /** octal, as in "0644" */
  mode: z.string().regex(/^0[0-7]{3,4}$/, 'expected an octal mode such as "0644"'),
  bytes: z.number().int().nonnegative(),
  secret: z.boolean(),
  /** ordinary files only: files holding secrets carry no plain hash */
  sha256: sha256.optional(),
  /** sha256 prefix for ordinary files, HMAC keyed by a cluster secret for files holding secrets */
  digest: z.string(),
});

export const buildRecordSchema = z.object({
  version: z.literal(BUILD_RECORD_VERSION),
  node: z.string().min(1),
  role: z.enum(['server', 'agent']),
  instanceId: z.string().min(1),
  tool: z.object({ name: z.literal('pi-image'), version: z.string() }),
  builtAt: z.string(),
  base: z.object({ name: z.string(), path: z.string(), sha256: z.string(), size: z.number().int().nonnegative() }),
  inputs: z.object({ inventorySha256: z.string(), templatesSha256: z.string(), secretsVersion: z.number().int(), secretsDigest: z.string() }),
  image: z.object({
    path: z.string(),
    sha256,
    size: z.number().int().nonnegative(),
    compress: z.string(),
    rawSha256: z.string(),
    /**
     * The block map beside the image (`<node>.img.bmap`, bmaptool's format, of the raw content):
     * `sha256` is its BmapFileChecksum, `mappedBytes` what a mapped flash writes. Optional: records
     * of builds before block maps have none (their images are flashed whole).
     */
    bmap: z.object({ path: z.string(), sha256, mappedBytes: z.number().int().nonnegative() }).optional(),
  }),
  /**
   * Every file pi-image put into the image. `sha256` for ordinary files; files holding secrets carry
   * only `digest` (HMAC keyed by a cluster secret), so the record reveals nothing about them.
   */
  files: z.array(recordFile),
});

export type BuildRecord = z.infer<typeof buildRecordSchema>;
export type BuildRecordFile = BuildRecord['files'][number];

const REBUILD_HINT = 'rebuild the image with `pi-image build <node>` (it rewrites the record), or pass --build-dir pointing at the right directory';

/** Parses the text of a build record; `source` names the file in messages. Throws InputError. */
export function parseBuildRecord(text: string, source: string): BuildRecord {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (cause) {
    throw new InputError(`build record ${source} is not valid JSON: ${(cause as Error).message}`, { hint: REBUILD_HINT, cause });
  }
  const version = (data as { version?: unknown } | null)?.version;
  if (version !== BUILD_RECORD_VERSION) {
    throw new InputError(`build record ${source} is not a pi-image build record (version ${BUILD_RECORD_VERSION}; found ${JSON.stringify(version ?? null)})`, {
      hint: REBUILD_HINT,
    });
  }
  const r = buildRecordSchema.safeParse(data);
  if (!r.success) {
    throw new InputError(`build record ${source} is malformed`, {
      details: r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`),
      hint: REBUILD_HINT,
    });
  }
  return r.data;
}

/** The record as written to disk: pretty JSON with a final newline. */
export function serializeBuildRecord(record: BuildRecord): string {
  return `${JSON.stringify(record, null, 2)}\n`;
}

/** Unix mode of a record file ("0644" → 0o644). */
export function recordFileMode(f: Pick<BuildRecordFile, 'mode'>): number {
  return Number.parseInt(f.mode, 8);
}
