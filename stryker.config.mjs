// Mutation testing of the safety core (`npm run mutation`; docs/testing.md). Slow, so it is no part
// of `npm test` or CI. A subset: `npm run mutation -- --mutate src/ipam/pool.ts`.
export default {
  testRunner: 'vitest',
  // The unit project alone: a mutant must never start the end-to-end suite.
  vitest: { configFile: 'vitest.mutation.config.ts', related: true },
  // The TypeScript sources run as they are (vitest transpiles): no build, and no type check of
  // mutants (a mutant that would not compile runs anyway and is, nearly always, killed).
  coverageAnalysis: 'perTest',
  // The machine has 2 cores, shared with builds: one test runner.
  concurrency: 1,
  timeoutMS: 10_000,
  mutate: [
    // Pools, free ranges, the claim index, the in-memory ledger and the allocator.
    'src/ipam/**/*.ts',
    // The Kubernetes ledger (an IPClaim per address) and the reconciler that releases claims.
    'src/cluster/kube-ledger.ts',
    'src/cluster/kube-ledger/*.ts',
    'src/cluster/reconciler.ts',
    'src/cluster/reconciler/*.ts',
    // The admission checks that decide what is claimed and what is refused.
    'src/admission/pod*.ts',
    'src/admission/checks.ts',
    'src/admission/workload*.ts',
    'src/admission/ordinals.ts',
    'src/admission/ippools.ts',
  ],
  // Not needed by the unit tests: kept out of the sandbox copy.
  ignorePatterns: ['/dist', '/bench/results', '/.certs', '/coverage'],
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  clearTextReporter: { allowColor: false, reportTests: false },
  thresholds: { high: 90, low: 85, break: null },
};
