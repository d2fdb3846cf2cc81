import { expect, it } from 'vitest';
import { diagnose } from '../../src/cli/doctor.js';
import type { CniName } from '../../src/cni/dialect.js';
import { formatCheck, type Check } from '../../src/cni/doctor.js';
import type { Pool } from '../../src/ipam/pool.js';
import { doctorFor } from '../../src/cni/index.js';
import { source, web, type FakeCluster } from '../cni/doctor-fixtures.js';

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

it("checks the interconnects after the CNI's checks, and without a netpin IPPool too", async () => {
  const ic = { configMaps: { 'kube-system/ovn-ic-config': { 'enable-ic': 'false' } } };
  const IC =
    'ok    Kube-OVN OVN-IC: ConfigMap kube-system/ovn-ic-config sets enable-ic: "false", so this cluster is not interconnected';
  expect((await run('calico', [], ic)).map(formatCheck)).toEqual([
    'WARN  no netpin IPPool (netpin.io/v1alpha1) exists, so there is nothing to check against the CNI',
    IC,
  ]);
  const checks = (await run('kube-ovn', [web], ic)).map(formatCheck);
  expect(checks.at(-1)).toBe(IC);
  expect(checks.slice(0, -1)).toEqual(
    (await doctorFor('kube-ovn')({ pools: [web], claims: [], source: source(ic) })).map(formatCheck),
  );
});

it('prints a check on one line, with its fix', () => {
  expect(formatCheck({ outcome: 'ok', text: 'fine' })).toBe('ok    fine');
  expect(formatCheck({ outcome: 'FAIL', text: 'broken', fix: 'mend it' })).toBe('FAIL  broken. Fix: mend it');
});
