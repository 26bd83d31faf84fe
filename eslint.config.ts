// Lint rules for the whole tree (ESLint 9 flat config). Type-aware: the rules that
// matter most here (floating promises, promises passed where a callback's result is
// ignored) need the types, so every TypeScript file is linted with tsconfig.json's
// program. `bootfarm/no-import-cycle` (lint/no-import-cycle.ts) keeps the layers
// pointing one way (issue 18): a file circle fails the check, type-only imports
// included (import-x/no-cycle skips those; the server/lab/attacker.ts <-> lab.ts circle
// was type-only on one side).
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';
import { bootfarmPlugin } from './lint/no-import-cycle.js';

export default defineConfig(
  {
    // Generated, vendored or machine-local output; test/fixtures holds captured
    // packets and rendered files, not code.
    ignores: [
      'dist/**',
      'bench/dist/**',
      'bench/results/**',
      'reports/**',
      '.stryker-tmp*/**',
      // bench/run-*.sh build snapshots (bench/lib/run.sh): compiled output
      'bench/.*-snapshot/**',
      'examples/state/**',
      'examples/images/**',
      'examples/tftpboot/**',
      'test/fixtures/**',
    ],
  },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    plugins: { bootfarm: bootfarmPlugin },
    rules: {
      'bootfarm/no-import-cycle': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      // `async` on a function without `await` is deliberate here: it implements a
      // Promise-returning interface (a DHCP handler, a file resolver, a route), and
      // `async` turns a throw in its body into a rejection the caller handles.
      '@typescript-eslint/require-await': 'off',
      // `_name` marks a parameter a signature needs but this body does not use.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    // vitest's asymmetric matchers (expect.stringContaining, expect.any...) are typed
    // `any` so they fit any field of an expected object.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-unsafe-assignment': 'off' },
  },
  {
    // Plain JavaScript (the bench probes in bench/*.mjs) has no program to ask for
    // types; lint it with the syntax rules only.
    files: ['**/*.js', '**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly' },
    },
  },
);
