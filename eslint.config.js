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
  { files: ['**/*.js', '**/*.mjs'], ...tseslint.configs.disableTypeChecked },
);
