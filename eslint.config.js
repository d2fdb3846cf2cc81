// Lint for src/, test/, harness/, bench/ and scripts/. Formatting is Prettier's (`npm run format`), so the
// stylistic rules are off (eslint-config-prettier); unused exports are knip's (`knip.json`).
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';
import importX from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

// The binary (cli), its wiring (server), then the path of a request, top to bottom: a folder may
// import only folders below it.
const LAYERS = ['cli', 'server', 'transport', 'admission', 'cluster', 'config', 'cni', 'ipam', 'intent', 'net'];
const layering = LAYERS.slice(1).map((layer, i) => ({
  target: `./src/${layer}`,
  from: LAYERS.slice(0, i + 1).map((above) => `./src/${above}`),
  message: `src/${layer} sits below ${LAYERS.slice(0, i + 1).join(', ')} on the path of a request (README, "How a request travels")`,
}));
// The harness (harness/) serves the tests, the bench and scripts/: none of those three reaches into test/.
const harnessApart = ['./harness', './bench', './scripts'].map((target) => ({
  target,
  from: './test',
  message: 'harness/, bench/ and scripts/ do not import from test/: shared code belongs in harness/',
}));

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', 'bench/results/', 'reports/', '.stryker-tmp/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  importX.flatConfigs.typescript,
  {
    files: ['**/*.ts'],
    settings: { 'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })] },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'import-x/no-cycle': 'error',
      'import-x/no-restricted-paths': ['error', { zones: [...layering, ...harnessApart] }],
    },
  },
  {
    // Rooms small enough to read whole: a file that outgrows this splits by responsibility.
    files: ['src/**/*.ts'],
    rules: {
      'max-lines': ['error', { max: 350 }],
      'max-lines-per-function': ['error', { max: 80 }],
    },
  },
  prettier,
);
