import { describe, expect, it } from 'vitest';
import { formatCheck } from '../../src/cni/doctor.js';
import { pool, named, web, out, FORBIDDEN, run, outcomes, failing } from './doctor-fixtures.js';

describe('Cilium', () => {
  const ciliumPools = (...n: string[]) => ({
    'ciliumpodippools.cilium.io/v2alpha1': n.map((name) => named('CiliumPodIPPool', name, {})),
  });
  const config = (data: Record<string, string>) => ({ 'kube-system/cilium-config': data });

  it('passes multi-pool IPAM, the egress gateway and the CiliumPodIPPools named', async () => {
    const checks = await run('cilium', [web, out], {
      configMaps: config({ ipam: 'multi-pool', 'enable-egress-gateway': 'true' }),
      lists: ciliumPools('web-pool'),
    });
    expect(checks.map(formatCheck)).toEqual([
      'ok    ConfigMap kube-system/cilium-config sets ipam: multi-pool, the mode in which Cilium reads ipam.cilium.io/ip-pool',
      'ok    ConfigMap kube-system/cilium-config sets enable-egress-gateway: "true", ' +
        'so Cilium applies the CiliumEgressGatewayPolicies netpin keeps',
      'ok    IPPool web: CiliumPodIPPool web-pool (cilium.io/v2alpha1) exists',
    ]);
  });

  it('fails another IPAM mode, set or by default, naming the Helm value', async () => {
    for (const [data, said] of [
      [{ ipam: 'cluster-pool' }, 'ipam: cluster-pool,'],
      [{}, 'ipam: cluster-pool (the default),'],
    ] as const) {
      const checks = await run('cilium', [web], { configMaps: config(data), lists: ciliumPools('web-pool') });
      expect(failing(checks)).toEqual([
        expect.stringContaining(
          `cilium-config sets ${said} and Cilium reads ipam.cilium.io/ip-pool only with ipam: multi-pool. ` +
            'Fix: install Cilium with ipam.mode=multi-pool',
        ),
      ]);
    }
  });

  it('fails the egress gateway off, and warns about its name before Cilium 1.18', async () => {
    const off = await run('cilium', [out], { configMaps: config({}) });
    expect(off.map(formatCheck)).toEqual([
      'FAIL  ConfigMap kube-system/cilium-config does not set enable-egress-gateway: "true", ' +
        'so Cilium ignores the CiliumEgressGatewayPolicies netpin keeps for IPPool out. ' +
        'Fix: set egressGateway.enabled=true in Cilium\'s Helm values (enable-egress-gateway: "true" in cilium-config) ' +
        'and restart cilium-agent and cilium-operator',
    ]);
    const old = await run('cilium', [out], { configMaps: config({ 'enable-ipv4-egress-gateway': 'true' }) });
    expect(outcomes(old)).toEqual(['WARN']);
    expect(old[0]!.text).toContain('a name Cilium reads only before 1.19');
  });

  it('fails a missing CiliumPodIPPool and a pool that names none', async () => {
    const unnamed = pool('bare', { cidr: '10.60.0.0/29' });
    const checks = await run('cilium', [web, unnamed], {
      configMaps: config({ ipam: 'multi-pool' }),
      lists: ciliumPools(),
    });
    expect(failing(checks)).toEqual([
      expect.stringMatching(
        /IPPool web names CiliumPodIPPool web-pool \(spec\.cni\.cilium\.pool\), which does not exist.*Fix: create/,
      ),
      expect.stringMatching(/IPPool bare names no CiliumPodIPPool \(spec\.cni\.cilium\.pool\)/),
    ]);
  });

  it('warns what went unchecked when cilium-config cannot be read', async () => {
    const checks = await run('cilium', [web, out], {
      configMaps: { 'kube-system/cilium-config': FORBIDDEN },
      lists: ciliumPools('web-pool'),
    });
    expect(checks.map(formatCheck)[0]).toBe(
      'WARN  could not read ConfigMap kube-system/cilium-config (HTTP 403: configmaps "x" is forbidden): ' +
        'not checked the IPAM mode (ipam) and the egress gateway (enable-egress-gateway)',
    );
    expect(outcomes(checks)).toEqual(['WARN', 'ok']);
  });
});
