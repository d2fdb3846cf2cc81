import { describe, expect, it } from 'vitest';
import { formatCheck } from '../../src/cni/doctor.js';
import { pool, named, web, FORBIDDEN, run, outcomes, failing } from './doctor-fixtures.js';

describe('Kube-OVN', () => {
  const subnets = (...s: object[]) => ({ 'subnets.kubeovn.io/v1': s });
  const open = pool('open', { ranges: ['10.60.0.1-10.60.0.8', 'fd00::1-fd00::8'] });

  it('passes a pool whose Subnet exists and holds it, and warns about a pool that names none', async () => {
    const checks = await run('kube-ovn', [web, open], {
      lists: subnets(
        named('Subnet', 'web-subnet', { cidrBlock: '10.50.0.0/16' }),
        named('Subnet', 'dual', { cidrBlock: '10.60.0.0/24,fd00::/64' }),
      ),
    });
    expect(checks.map(formatCheck)).toEqual([
      'ok    IPPool web: Kube-OVN Subnet web-subnet exists and its spec.cidrBlock 10.50.0.0/16 holds 10.50.0.1-10.50.0.254',
      "WARN  IPPool open names no Kube-OVN Subnet (spec.cni.kubeOvn.subnet), so its pods stay in their namespace's Subnet, " +
        'where Kube-OVN looks for their addresses; Subnet dual holds 10.60.0.1-10.60.0.8, fd00::1-fd00::8. ' +
        'Fix: set spec.cni.kubeOvn.subnet: dual on IPPool open',
      'ok    no running pod uses an address of a netpin IPPool that netpin did not give it ' +
        '(status.podIPs of every pod, against the IPClaims)',
    ]);
  });

  it('fails a Subnet that is missing or does not hold the pool, and a pool no Subnet holds', async () => {
    const missing = await run('kube-ovn', [web], { lists: subnets() });
    expect(failing(missing)).toEqual([
      expect.stringMatching(
        /names Kube-OVN Subnet web-subnet \(spec\.cni\.kubeOvn\.subnet\), which does not exist\. Fix: create Subnet/,
      ),
    ]);
    const small = await run('kube-ovn', [web, open], {
      lists: subnets(named('Subnet', 'web-subnet', { cidrBlock: '10.50.0.0/25' })),
    });
    expect(failing(small)).toEqual([
      expect.stringMatching(
        /IPPool web: 10\.50\.0\.1-10\.50\.0\.254 lies outside spec\.cidrBlock 10\.50\.0\.0\/25 of Kube-OVN Subnet/,
      ),
      expect.stringMatching(/IPPool open: no Kube-OVN Subnet's spec\.cidrBlock holds .*Fix: create a Subnet/),
    ]);
  });

  it('warns when Subnets cannot be read, and fails when the cluster has none', async () => {
    expect(outcomes(await run('kube-ovn', [web], { lists: { 'subnets.kubeovn.io/v1': FORBIDDEN } }))).toEqual([
      'WARN',
      'ok',
    ]);
    expect(failing(await run('kube-ovn', [web], {}))).toEqual([
      'FAIL  the cluster serves no subnets.kubeovn.io, so there are no Kube-OVN Subnets (kubeovn.io/v1). ' +
        'Fix: install Kube-OVN, or pass the --cni this cluster runs',
    ]);
  });

  it('fails a pod Kube-OVN gave an address of a netpin pool', async () => {
    const checks = await run('kube-ovn', [web], {
      lists: subnets(named('Subnet', 'web-subnet', { cidrBlock: '10.50.0.0/16' })),
      pods: [{ namespace: 'a', name: 'b', podIPs: ['10.50.0.3'] }],
    });
    expect(failing(checks)).toEqual([
      expect.stringMatching(
        /pod a\/b uses 10\.50\.0\.3 .*Fix: keep Kube-OVN from assigning 10\.50\.0\.1-10\.50\.0\.254 by itself/,
      ),
    ]);
  });
});
