import { describe, expect, it } from 'vitest';
import { formatCheck } from '../../src/cni/doctor.js';
import { pool, named, web, fixed, out, FORBIDDEN, run, outcomes, failing } from './doctor-fixtures.js';

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
      'ok    ConfigMap kube-system/cilium-config sets ipam: multi-pool, the mode in which Cilium reads ipam.cilium.io/ip-pool (ipv4-pool, ipv6-pool)',
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
          `cilium-config sets ${said} and Cilium reads ipam.cilium.io/ip-pool (ipv4-pool, ipv6-pool) only with ipam: multi-pool. ` +
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

  describe('pinned IPPools', () => {
    const MANAGED = { 'app.kubernetes.io/managed-by': 'netpin' };
    const ciliumPool = (name: string, cidr: string, labels?: Record<string, string>) => ({
      kind: 'CiliumPodIPPool',
      metadata: { name, ...(labels && { labels }) },
      spec: { ipv4: { cidrs: [cidr], maskSize: cidr.endsWith('/32') ? 32 : 24 } },
    });
    const lists = (...items: object[]) => ({ 'ciliumpodippools.cilium.io/v2alpha1': items });
    // Cilium's own default pool elsewhere, and the pool netpin keeps for one pinned address.
    const apart = lists(ciliumPool('default', '10.0.0.0/16'), ciliumPool('netpin-10.70.0.3', '10.70.0.3/32', MANAGED));

    it('pass multi-pool, no pool of netpin pre-allocated, and no CiliumPodIPPool of Cilium over them, naming none', async () => {
      const checks = await run('cilium', [fixed], {
        configMaps: config({ ipam: 'multi-pool', 'ipam-multi-pool-pre-allocation': 'default=8' }),
        lists: apart,
      });
      expect(checks.map(formatCheck)).toEqual([
        'ok    ConfigMap kube-system/cilium-config sets ipam: multi-pool, the mode in which Cilium reads ipam.cilium.io/ip-pool (ipv4-pool, ipv6-pool)',
        'ok    ConfigMap kube-system/cilium-config pre-allocates (ipam-multi-pool-pre-allocation) none of the ' +
          'single-address CiliumPodIPPools netpin keeps for IPPool fixed',
        'ok    IPPool fixed (pinned): 10.70.0.1-10.70.0.14 overlaps no CiliumPodIPPool that Cilium assigns from ' +
          '(those without app.kubernetes.io/managed-by=netpin), so no address netpin pins is also given to another pod',
      ]);
    });

    it('need multi-pool IPAM too', async () => {
      const checks = await run('cilium', [fixed], { configMaps: config({}), lists: apart });
      expect(failing(checks)).toEqual([
        expect.stringContaining(
          'cilium-config sets ipam: cluster-pool (the default), and Cilium reads ipam.cilium.io/',
        ),
      ]);
    });

    it('fail over a CiliumPodIPPool Cilium assigns from, as at admission, and with a CiliumPodIPPool named', async () => {
      const both = pool('both', { cidr: '10.80.0.0/28', cni: { cilium: { pool: 'web-pool', pinned: true } } });
      const checks = await run('cilium', [fixed, both], {
        configMaps: config({ ipam: 'multi-pool' }),
        lists: lists(ciliumPool('default', '10.70.0.0/24'), ciliumPool('web-pool', '10.90.0.0/24')),
      });
      expect(failing(checks)).toEqual([
        'FAIL  IPPool fixed (spec.cidr): 10.70.0.1-10.70.0.14 lies in CiliumPodIPPool default, which Cilium assigns from by itself, ' +
          'so an address netpin pins could be given to another pod too. ' +
          'Fix: move the range out of CiliumPodIPPool default, or add 10.70.0.1-10.70.0.14 to spec.exclude',
        expect.stringMatching(
          /^FAIL {2}IPPool both \(spec\.cni\.cilium\): names CiliumPodIPPool web-pool, .*one or the other/,
        ),
      ]);
    });

    it.each([
      ['key=value pairs', 'default=8,netpin-10.70.0.3=1'],
      ['JSON', '{"default": "8", "netpin-10.70.0.3": "1"}'],
    ])("fail pre-allocating netpin's single-address pool, written as %s", async (_, value) => {
      const checks = await run('cilium', [fixed], {
        configMaps: config({ ipam: 'multi-pool', 'ipam-multi-pool-pre-allocation': value }),
        lists: apart,
      });
      expect(failing(checks)).toEqual([
        "FAIL  ConfigMap kube-system/cilium-config lists netpin's single-address CiliumPodIPPool netpin-10.70.0.3 " +
          'in ipam-multi-pool-pre-allocation: every node asks for its one block, the node that gets it keeps it, ' +
          'Cilium agents on the other nodes block at startup waiting for it, and the pinned pod never starts on another node. ' +
          "Fix: remove netpin-10.70.0.3 from ipam.multiPoolPreAllocation in Cilium's Helm values " +
          '(ipam-multi-pool-pre-allocation in cilium-config; keep default=<N> there) and restart cilium-agent',
      ]);
    });

    it('pass a pool of netpin pre-allocated with none, which Cilium asks nothing for', async () => {
      const checks = await run('cilium', [fixed], {
        configMaps: config({ ipam: 'multi-pool', 'ipam-multi-pool-pre-allocation': 'default=8,netpin-10.70.0.3=0' }),
        lists: apart,
      });
      expect(outcomes(checks)).toEqual(['ok', 'ok', 'ok']);
    });

    it('leave the pre-allocation unchecked without a pinned IPPool', async () => {
      const checks = await run('cilium', [web], {
        configMaps: config({ ipam: 'multi-pool', 'ipam-multi-pool-pre-allocation': 'netpin-10.70.0.3=1' }),
        lists: ciliumPools('web-pool'),
      });
      expect(outcomes(checks)).toEqual(['ok', 'ok']);
      expect(checks.map(formatCheck).join('\n')).not.toContain('pre-allocat');
    });

    it('warn what went unchecked when cilium-config or the CiliumPodIPPools cannot be read', async () => {
      const checks = await run('cilium', [fixed], {
        configMaps: { 'kube-system/cilium-config': FORBIDDEN },
        lists: { 'ciliumpodippools.cilium.io/v2alpha1': FORBIDDEN },
      });
      expect(checks.map(formatCheck)).toEqual([
        'WARN  could not read ConfigMap kube-system/cilium-config (HTTP 403: configmaps "x" is forbidden): ' +
          'not checked the IPAM mode (ipam) and the pools pre-allocated on every node (ipam-multi-pool-pre-allocation)',
        'WARN  could not read CiliumPodIPPools (cilium.io/v2alpha1) (HTTP 403: configmaps "x" is forbidden): ' +
          'not checked that no CiliumPodIPPool Cilium assigns from overlaps a pinned IPPool',
      ]);
    });
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
