// ESLint for outrigger: typescript-eslint's type-aware recommended rules on src/, test/, bench/
// and demo/ (the project's tsconfig.typecheck.json gives the types). Formatting is Prettier's job
// (.prettierrc.json); `npm run lint` runs both checks, `npm run format` rewrites.

import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'native/**', 'bench/results/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { project: './tsconfig.typecheck.json', tsconfigRootDir: import.meta.dirname },
    },
  },
  // A leading underscore marks a parameter or binding as deliberately unused (an interface's
  // argument a class does not need, a key left out of a rest copy): the codebase's convention.
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' },
      ],
    },
  },
  // The sidecar formats time with src/time.ts: Date's own text formatters and local-time methods
  // build V8's date cache, which pages in ICU's time zone data (~0.8 MiB of RSS for good).
  {
    files: ['src/**/*.ts'],
    ignores: ['src/time.ts', 'src/cli/ca.ts', 'src/admin/dashboard/**'],
    rules: {
      'no-restricted-properties': [
        'error',
        ...['toISOString', 'toUTCString', 'toDateString', 'toTimeString', 'toLocaleDateString', 'toLocaleTimeString', 'getTimezoneOffset'].map((property) => ({
          property,
          message: 'format time with src/time.ts (isoTime, imfFixdate): Date formatting pages in ICU time zone data',
        })),
      ],
    },
  },
  { files: ['**/*.js', '**/*.mjs'], ...tseslint.configs.disableTypeChecked },
  // Plain-JS files (this config, scripts/*.mjs) run on Node: its globals are defined (the .ts files
  // get theirs from @types/node through the type checker, and core no-undef is off for them).
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly' },
    },
  },
  // Tests inspect the admin API's JSON answers loosely on purpose (JsonAnswer.json in
  // test/helpers/clients.ts is `any`: each expect() is the check, a typed view per answer would
  // only restate the assertion). The no-unsafe-* rules fight that pattern in every admin test, so
  // they are off for *.test.ts only; the helpers under test/ that build typed views stay checked.
  {
    files: ['test/**/*.test.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
);
