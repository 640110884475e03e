#!/usr/bin/env node
/**
 * The command line as one bundle: after `tsc` has compiled src/ to dist/ (the library, its types,
 * every module loadable on its own), esbuild bundles src/cli.ts into dist/cli.js, and each command
 * (loaded lazily, src/commands/index.ts) into its own chunk under dist/chunks/. Start-up is what it
 * is for (`npm run bench:startup`): Node resolves, reads and compiles one file for `pi-image --help`
 * instead of ~65 (yargs and its helpers), and `pi-image validate` reads a handful of chunks instead
 * of ~170 modules (zod alone is 110 files, most of them locales it never uses).
 *
 * Bundled: pi-image's own code and the libraries on the start-up path (yargs, zod, yaml). Every
 * other dependency stays an ordinary import from node_modules (native addons in ssh2, the
 * Kubernetes client's size); the commands that need them load them when they run.
 *
 * `string-width` (used by yargs' help layout, through cliui and wrap-ansi) builds an
 * `Intl.Segmenter` and a `\p{RGI_Emoji}` regular expression when it loads: ICU data that costs
 * about as long as starting Node itself. In the bundle it loads on the first string that is not
 * printable ASCII; a printable ASCII string is as wide as it is long, which is what every version
 * of string-width returns for it (all of pi-image's help text is ASCII).
 *
 *   node scripts/bundle-cli.mjs          # part of `npm run build`
 */
import { build } from 'esbuild';
import { chmodSync, cpSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const DIST = join(ROOT, 'dist');
const BUNDLED = new Set(['yargs', 'zod', 'yaml']);

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const external = Object.keys(pkg.dependencies)
  .filter((name) => !BUNDLED.has(name))
  .flatMap((name) => [name, `${name}/*`]);

/** Each `import … from 'string-width'` gets a wrapper that loads the real module on first non-ASCII use. */
const lazyStringWidth = {
  name: 'lazy-string-width',
  setup(b) {
    b.onResolve({ filter: /^string-width$/ }, async (args) => {
      if (args.pluginData?.real) return undefined;
      const real = await b.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: { real: true } });
      if (real.errors.length) return { errors: real.errors };
      return { path: real.path, namespace: 'lazy-string-width' };
    });
    b.onLoad({ filter: /.*/, namespace: 'lazy-string-width' }, (args) => ({
      loader: 'js',
      resolveDir: dirname(args.path),
      contents: [
        'let real;',
        'export default function stringWidth(string, options) {',
        '  // printable ASCII: one column per character, as string-width itself counts it',
        '  if (typeof string === "string" && /^[\\x20-\\x7e]*$/.test(string)) return string.length;',
        `  real ??= require(${JSON.stringify(args.path)}).default;`,
        '  return real(string, options);',
        '}',
      ].join('\n'),
    }));
  },
};

/**
 * yargs finds its translations (`Commands:` → `Kommandos:` for LANG=de_DE…) three folders above its
 * own file. Inside the bundle that file is dist/cli.js: the build copies the installed yargs'
 * locales/ to dist/yargs-locales/ and the bundle reads them there (looking yargs up in node_modules
 * at run time would cost a module resolution on every start).
 */
const YARGS_LOCALES_FROM = "resolve(__dirname, '../../../locales')";
const YARGS_LOCALES_DIR = 'yargs-locales';
const yargsLocales = {
  name: 'yargs-locales',
  setup(b) {
    b.onLoad({ filter: /[\\/]yargs[\\/]lib[\\/]platform-shims[\\/]esm\.mjs$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      if (!source.includes(YARGS_LOCALES_FROM)) {
        return { errors: [{ text: `${args.path} no longer contains ${YARGS_LOCALES_FROM}: check how this yargs finds its locales/ and update scripts/bundle-cli.mjs` }] };
      }
      return { loader: 'js', contents: source.replace(YARGS_LOCALES_FROM, `resolve(__dirname, '../${YARGS_LOCALES_DIR}')`) };
    });
  },
};

rmSync(join(DIST, 'chunks'), { recursive: true, force: true });
rmSync(join(DIST, YARGS_LOCALES_DIR), { recursive: true, force: true });
cpSync(join(dirname(createRequire(import.meta.url).resolve('yargs/package.json')), 'locales'), join(DIST, YARGS_LOCALES_DIR), { recursive: true });
await build({
  absWorkingDir: ROOT,
  entryPoints: { cli: 'src/cli.ts' },
  outdir: DIST,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external,
  plugins: [lazyStringWidth, yargsLocales],
  sourcemap: true,
  // CommonJS inside the bundle (yaml) calls require() for Node's built-ins; made on first use
  banner: {
    js: [
      "import { createRequire as __piImageCreateRequire } from 'node:module';",
      'let __piImageRequire;',
      'const require = (id) => (__piImageRequire ??= __piImageCreateRequire(import.meta.url))(id);',
    ].join('\n'),
  },
  logLevel: 'warning',
});
// the yargs code (and with it the path to its locales) must sit in dist/cli.js, next to yargs-locales/
if (!readFileSync(join(DIST, 'cli.js'), 'utf8').includes(`"../${YARGS_LOCALES_DIR}"`)) {
  throw new Error(`bundle-cli: yargs is no longer bundled into dist/cli.js; its path to ${YARGS_LOCALES_DIR}/ would be wrong`);
}
chmodSync(join(DIST, 'cli.js'), 0o755);
