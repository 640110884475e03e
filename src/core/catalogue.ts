/**
 * The base-image catalogue: one YAML file per base image in `images/<name>.yaml`, naming where to
 * download it, how it is compressed and which checksums it must have. Pure: parses text, no fs.
 *
 *   name: raspios-lite-arm64-trixie
 *   url: https://downloads.raspberrypi.com/…/2025-11-24-raspios-trixie-arm64-lite.img.xz
 *   sha256: <sha256 of the downloaded file>
 *   image: { sha256: <sha256 of the extracted .img> | null, size: <bytes> | null }
 *
 * `image.sha256: null` means "not known yet": the first fetch records the digest it computed in
 * the cache sidecar and `images verify` checks against that recording from then on.
 */
import { isMap, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import * as z from 'zod';
import { InputError } from './errors.js';

export const COMPRESSIONS = ['xz', 'zstd', 'gzip', 'none'] as const;
export type Compression = (typeof COMPRESSIONS)[number];

const sha256Hex = z
  .string()
  .regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits (a sha256)');
const bytes = z.number().int().positive();

const entrySchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'must be lower-case letters, digits, ".", "-" or "_"'),
    description: z.string().min(1).optional(),
    release: z
      .string()
      .regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date like 2025-11-24')
      .optional(),
    arch: z.enum(['arm64']),
    url: z
      .string()
      .regex(/^https?:\/\/[^\s]+$/, 'must be an http(s) URL'),
    compression: z.enum(COMPRESSIONS).optional(),
    sha256: sha256Hex,
    size: bytes.nullable().optional(),
    image: z
      .object({
        sha256: sha256Hex.nullable().optional(),
        size: bytes.nullable().optional(),
      })
      .strict()
      .optional(),
    layout: z
      .object({
        bootLabel: z.string().min(1).default('bootfs'),
        rootLabel: z.string().min(1).default('rootfs'),
      })
      .strict()
      .optional(),
    cloudInit: z.boolean().default(true),
  })
  .strict();

export interface CatalogueEntry {
  name: string;
  description: string;
  release: string | undefined;
  arch: 'arm64';
  url: string;
  compression: Compression;
  /** sha256 of the file at `url` */
  sha256: string;
  /** size in bytes of the file at `url`, when known */
  size: number | undefined;
  image: {
    /** sha256 of the extracted raw image, when known */
    sha256: string | undefined;
    size: number | undefined;
  };
  layout: { bootLabel: string; rootLabel: string };
  cloudInit: boolean;
  /** where the entry came from, for messages */
  source: string;
}

/** The compression implied by a file name or URL (`.xz`, `.zst`, `.gz`, else none). */
export function compressionFromName(name: string): Compression {
  const base = name.replace(/[?#].*$/, '').toLowerCase();
  if (base.endsWith('.xz')) return 'xz';
  if (base.endsWith('.zst') || base.endsWith('.zstd')) return 'zstd';
  if (base.endsWith('.gz')) return 'gzip';
  return 'none';
}

/** The compression given by a file's first bytes (magic numbers), or undefined if not recognised. */
export function compressionFromMagic(head: Uint8Array): Compression | undefined {
  const m = (sig: number[]): boolean => sig.every((b, i) => head[i] === b);
  if (m([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return 'xz';
  if (m([0x28, 0xb5, 0x2f, 0xfd])) return 'zstd';
  if (m([0x1f, 0x8b])) return 'gzip';
  return undefined;
}

/**
 * Parses one catalogue file. `source` is the file name used in messages; when `expectedName` is
 * given, the entry's `name` must equal it (the file's base name). Every problem is reported at once
 * as `<source>:<line>:<col> <field>: <message>`.
 */
export function parseCatalogue(text: string, source: string, expectedName?: string): CatalogueEntry {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number | undefined): string => {
    if (offset === undefined) return source;
    const p = lc.linePos(offset);
    return `${source}:${p.line}:${p.col}`;
  };
  if (doc.errors.length > 0) {
    throw new InputError(`${source} is not valid YAML`, {
      details: doc.errors.map((e) => `${at(e.pos[0])} ${e.message.split('\n')[0] ?? ''}`),
    });
  }
  const raw: unknown = doc.toJS();
  const parsed = entrySchema.safeParse(raw);
  if (!parsed.success) {
    throw new InputError(`${source} is not a valid base-image catalogue entry`, {
      details: parsed.error.issues.map((i) => {
        const path = i.path.map(String);
        return `${at(nodeOffset(doc, i.path))} ${path.join('.') || '(top level)'}: ${i.message}`;
      }),
      hint: 'see images/raspios-lite-arm64-trixie.yaml for the expected fields',
    });
  }
  const d = parsed.data;
  if (expectedName !== undefined && d.name !== expectedName) {
    throw new InputError(`${at(nodeOffset(doc, ['name']))} name: "${d.name}" must match the file name "${expectedName}"`);
  }
  return {
    name: d.name,
    description: d.description ?? d.name,
    release: d.release,
    arch: d.arch,
    url: d.url,
    compression: d.compression ?? compressionFromName(d.url),
    sha256: d.sha256,
    size: d.size ?? undefined,
    image: { sha256: d.image?.sha256 ?? undefined, size: d.image?.size ?? undefined },
    layout: d.layout ?? { bootLabel: 'bootfs', rootLabel: 'rootfs' },
    cloudInit: d.cloudInit,
    source,
  };
}

/** Offset of the YAML node at `path` (or of its closest existing parent). */
function nodeOffset(doc: Document, path: readonly PropertyKey[]): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n) as unknown[], true) as { range?: [number, number, number] } | undefined;
    if (node !== undefined && node !== null && typeof node === 'object' && node.range !== undefined) {
      // for a missing key, point at the map that should hold it
      return node.range[0];
    }
    if (n === 0 && (isMap(doc.contents) || isSeq(doc.contents))) return doc.contents.range?.[0];
  }
  return undefined;
}

/** File name of the cached raw image for an entry. */
export function cachedImageName(name: string): string {
  return `${name}.img`;
}

/** File name under which the downloaded (compressed) file is kept while downloading. */
export function downloadName(url: string): string {
  const last = url.replace(/[?#].*$/, '').split('/').pop() ?? 'download';
  return last === '' ? 'download' : decodeURIComponent(last);
}
