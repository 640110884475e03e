/**
 * With `-o json`, an error is a JSON document too: stdout carries exactly one JSON document per
 * run, the command's report or `{ "error": { … } }` (plus, for some commands, what they found
 * before failing, e.g. `flash`'s device list). The human lines still go to stderr, and the exit code
 * is the same as in text mode. docs/cli.md describes the shape.
 */
import { EXIT_CODES, PiImageError } from './errors.js';

export interface ErrorJson {
  error: {
    /** input, environment, io, cluster, check, internal … (the exit-code category) */
    category: string;
    exitCode: number;
    message: string;
    details: string[];
    hint?: string;
  };
}

export function errorJson(error: unknown): ErrorJson {
  if (error instanceof PiImageError) {
    return {
      error: {
        category: error.category,
        exitCode: error.exitCode,
        message: error.message,
        details: [...error.details],
        ...(error.hint ? { hint: error.hint } : {}),
      },
    };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { error: { category: 'internal', exitCode: EXIT_CODES.internal, message, details: [], hint: 'this is a bug in pi-image; please report it' } };
}

/** Whether the command line asks for JSON output (read before yargs parses, for usage errors too). */
export function wantsJson(argv: readonly string[]): boolean {
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    if (a === '-o' || a === '--output') json = argv[i + 1] === 'json';
    else if (a === '-ojson' || a === '--output=json' || a === '-o=json') json = true;
    else if (a.startsWith('--output=') || a.startsWith('-o=') || (a.startsWith('-o') && a.length > 2 && !a.startsWith('--'))) json = false;
  }
  return json;
}
