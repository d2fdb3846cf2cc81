import { expect, it } from 'vitest';
import { diagnose } from '../../src/cli/doctor.js';
import type { CniName } from '../../src/cni/dialect.js';
import { formatCheck, type Check } from '../../src/cni/doctor.js';
import type { Pool } from '../../src/ipam/pool.js';
import { source, type FakeCluster } from '../cni/doctor-fixtures.js';

// Through diagnose, which answers before any CNI's checks when there is no netpin IPPool.
function run(cni: CniName, pools: Pool[], fake: FakeCluster): Promise<Check[]> {
  return diagnose(cni, { pools, claims: [], source: source(fake) });
}

it('says there is nothing to check without a netpin IPPool', async () => {
  const checks = await run('calico', [], {});
  expect(checks.map(formatCheck)).toEqual([
    'WARN  no netpin IPPool (netpin.io/v1alpha1) exists, so there is nothing to check against the CNI',
  ]);
});

it('prints a check on one line, with its fix', () => {
  expect(formatCheck({ outcome: 'ok', text: 'fine' })).toBe('ok    fine');
  expect(formatCheck({ outcome: 'FAIL', text: 'broken', fix: 'mend it' })).toBe('FAIL  broken. Fix: mend it');
});
