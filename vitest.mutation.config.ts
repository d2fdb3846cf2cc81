// Vitest as Stryker runs it (`npm run mutation`, stryker.config.mjs): the `unit` project of
// vitest.config.ts alone, since the Stryker runner takes one config file and cannot pick a project,
// and a mutant must never start the end-to-end suite's control plane.
import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

const unit = base.test?.projects?.find((p) => typeof p === 'object' && 'test' in p && p.test?.name === 'unit');
if (!unit || typeof unit !== 'object' || !('test' in unit))
  throw new Error('vitest.config.ts has no project named unit');

// These run the built binary (dist/) in a child process (preview.test.ts in its last block): no
// mutant is ever active there, so those tests cannot kill one, and without `npm run build` they fail
// the initial run. Preview's in-process tests go with them; the admission tests cover that path.
const BINARY_TESTS = ['test/cli/main.test.ts', 'test/cli/preview.test.ts'];

export default defineConfig({
  test: { ...unit.test, name: undefined, exclude: [...(unit.test?.exclude ?? []), ...BINARY_TESTS] },
});
