import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Outside-world modules: only adapters (and the CLI entry) may import them. Type-only imports are fine. */
const IO_MODULES = [
  'node:fs',
  'node:fs/promises',
  'node:child_process',
  'node:net',
  'node:dgram',
  'node:http',
  'node:https',
  'node:os',
  'node:readline',
  'node:readline/promises',
  'node:timers/promises',
  'execa',
  'ssh2',
  '@kubernetes/client-node',
  'age-encryption',
  'cli-progress',
  'tar-stream',
].map((name) => ({ name, message: 'src/core is pure: I/O goes through an adapter (src/adapters) passed in as a port', allowTypeImports: true }));

const layer = (groups, message) => ({ group: groups, message });

export default tseslint.config(
  { ignores: ['dist/**', 'build/**', 'node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'error',
    },
  },
  {
    files: ['scripts/**', 'bench/**', 'tests/**'],
    rules: { 'no-console': 'off' },
  },
  // start-up (docs/architecture.md#start-up): the CLI bundle keeps only the zod it uses when zod is
  // imported as a namespace; `import { z }` keeps all of it (every locale, ~750 KB)
  {
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: "ImportDeclaration[source.value='zod'] > :matches(ImportSpecifier[imported.name='z'], ImportDefaultSpecifier)",
          message: "import * as z from 'zod' (the bundled CLI then keeps only the parts of zod it uses)",
        },
      ],
    },
  },
  // ── layering (docs/architecture.md): core → adapters → app → commands → cli ──
  {
    files: ['src/core/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: IO_MODULES,
          patterns: [layer(['**/adapters/**', '**/app/**', '**/commands/**', '**/cli.js'], 'src/core imports only src/core (and pure libraries)')],
        },
      ],
    },
  },
  {
    files: ['src/adapters/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        // type-only imports pass: the Io port type is declared in src/app/io.ts
        { patterns: [{ ...layer(['**/app/**', '**/commands/**', '**/cli.js'], 'adapters import neither use cases (src/app) nor commands'), allowTypeImports: true }] },
      ],
    },
  },
  {
    files: ['src/app/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', { patterns: [layer(['**/commands/**', '**/cli.js'], 'use cases (src/app) do not import commands')] }],
    },
  },
  {
    files: ['src/commands/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        { patterns: [layer(['**/adapters/**'], 'commands only declare flags, build options, call one use case (src/app) and print')] },
      ],
    },
  },
);
