import tseslint from 'typescript-eslint';

/** Test code (tests, their fixtures, test suites exported for other packages) may reach across packages. */
const TEST_FILES = ['**/*.test.ts', '**/*.test.tsx', '**/__fixtures__/**', '**/*-conformance.ts', 'tests/**', 'bench/**', 'scripts/**'];

/** Node modules that do I/O: the pure packages (model, sdk, api) import none of them. */
const IO_MODULES = ['fs', 'fs/promises', 'child_process', 'net', 'http', 'https', 'http2', 'dgram', 'dns', 'tls', 'cluster', 'worker_threads', 'readline']
  .flatMap((m) => [m, `node:${m}`]);

const WORKSPACE = ['api', 'apps', 'cli', 'db', 'dicom', 'engine', 'extension-packages', 'model', 'sdk', 'server', 'web'];

/**
 * The import boundaries (docs/adr/0012-http-contract-and-domain-shape.md): a package imports
 * only the packages below it, never one above, and never another package's files by path.
 */
function boundary(pkg, allowed, { pure = false, extra = [] } = {}) {
  const forbidden = WORKSPACE.filter((p) => p !== pkg && !allowed.includes(p));
  return {
    files: [`packages/${pkg}/src/**/*.{ts,tsx}`],
    ignores: TEST_FILES,
    rules: {
      'no-restricted-imports': ['error', {
        paths: pure ? IO_MODULES.map((name) => ({ name, message: `@tessera/${pkg} does no I/O (pure model code)` })) : [],
        patterns: [
          ...(forbidden.length ? [{ group: forbidden.map((p) => `@tessera/${p}`), message: `@tessera/${pkg} may import only ${allowed.map((a) => `@tessera/${a}`).join(', ') || 'no other workspace package'}` }] : []),
          { regex: '^(\\.\\./)+(packages/)?[a-z-]+/src/', message: "import another package by its name and public entry point, not by a path into its files" },
          ...extra,
        ],
      }],
    },
  };
}

export default tseslint.config(
  { ignores: ['**/node_modules/**', 'packages/web/dist/**', '.tessera/**', 'bench/out/**', 'coverage/**', 'scratch/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
      // Files a reader can take in at one sitting (STYLE.md).
      'max-lines': ['error', { max: 500 }],
    },
  },
  // Type-aware rules: a promise is awaited, returned or handled, and never given where a callback's result is ignored.
  {
    files: ['**/*.ts', '**/*.tsx'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
    },
  },
  boundary('model', [], { pure: true }),
  boundary('api', ['model'], { pure: true }),
  boundary('sdk', ['model'], { pure: true }),
  boundary('db', ['model']),
  boundary('dicom', ['model', 'db']),
  boundary('engine', ['model', 'db']),
  boundary('extension-packages', ['model', 'db']),
  boundary('apps', ['model', 'db', 'extension-packages', 'engine']),
  boundary('server', ['api', 'model', 'db', 'dicom', 'engine', 'extension-packages', 'apps']),
  // The CLI talks to the server over HTTP; the EDK's in-process parts (ADR 12) are the exceptions, in their own files.
  boundary('cli', ['api', 'model', 'sdk', 'extension-packages']),
  {
    files: ['packages/cli/src/commands/ext-test.ts', 'packages/cli/src/commands/ext-run-operator.ts', 'packages/cli/src/commands/task-command.ts', 'packages/cli/src/main.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
  // The UI reaches the server only over HTTP, with the contract's types.
  boundary('web', ['api'], { extra: [] }),
  {
    files: ['extensions/*/**/*.{ts,tsx}'],
    ignores: TEST_FILES,
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: WORKSPACE.filter((p) => p !== 'sdk').map((p) => `@tessera/${p}`), message: 'a built-in extension uses only the public SDK (@tessera/sdk), as a third party would' }] }],
    },
  },
);
