import { describe, expect, it } from 'vitest';
import { antrea } from '../../src/cni/antrea.js';
import { compilePool } from '../../src/ipam/pool.js';
import type { Intent } from '../../src/intent/types.js';
import { allocation, DEPLOYMENT, pool, POD, rate, STATEFULSET, v4 } from './fixtures.js';

const a4 = pool('a4', '10.10.0.0/24', { antrea: { pool: 'antrea-v4' } });
const a6 = pool('a6', 'fd00:a::/120', { antrea: { pool: 'antrea-v6' } });
const bare4 = pool('bare4', '10.20.0.0/24');
const IPAM_WARNING =
  'Antrea honours ipam.antrea.io/ippools only with the AntreaIPAM feature gate and enableBridgingMode, and its docs say primary-network flexible IPAM is IPv4-only.';

describe('antrea', () => {
  it('renders nothing for an empty intent', () => {
    expect(antrea.pinsAddresses({}, POD, [])).toBe(false);
    expect(antrea.check({}, POD, [])).toEqual([]);
    expect(antrea.render({}, POD, { pools: [] })).toEqual({ annotations: {}, labels: {}, warnings: [] });
  });

  describe('addresses', () => {
    it.each<[string, Intent, (typeof a4)[]]>([
      ['ip', { ip: { ipv4: v4('10.10.0.5') } }, []],
      ['ips', { ips: [{ ipv4: v4('10.10.0.5') }, { ipv4: v4('10.10.0.6') }] }, []],
      ['pools', { pools: ['a4'] }, [a4]],
    ])('pins %s through ippools and pod-ips', (_, intent, pools) => {
      expect(antrea.pinsAddresses(intent, DEPLOYMENT, [])).toBe(true);
      expect(antrea.check(intent, DEPLOYMENT, pools)).toEqual([]);
      expect(antrea.render(intent, DEPLOYMENT, allocation([a4], '10.10.0.5'))).toEqual({
        annotations: { 'ipam.antrea.io/ippools': 'antrea-v4', 'ipam.antrea.io/pod-ips': '10.10.0.5' },
        labels: {},
        warnings: [IPAM_WARNING],
      });
    });

    it('writes dual stack IPv4 first, pools without spaces', () => {
      const intent: Intent = { pools: ['a4', 'a6'] };
      expect(antrea.check(intent, POD, [a4, a6])).toEqual([]);
      expect(antrea.render(intent, POD, allocation([a4, a6], '10.10.0.5', 'fd00:a::5')).annotations).toEqual({
        'ipam.antrea.io/ippools': 'antrea-v4,antrea-v6',
        'ipam.antrea.io/pod-ips': '10.10.0.5,fd00:a::5',
      });
    });

    it('refuses a pool without an Antrea IPPool name', () => {
      const [p, ...more] = antrea.check({ pools: ['a4', 'bare4'] }, POD, [a4, bare4]);
      expect(more).toEqual([]);
      expect(p?.key).toBe('netpin.io/pool');
      expect(p?.message).toContain('Antrea');
      expect(p?.fix).toBe('Set spec.cni.antrea.pool on IPPool bare4 to the Antrea IPPool name');
    });

    it.each<[string, Intent]>([
      ['netpin.io/ip', { ip: { ipv4: v4('10.20.0.5') } }],
      ['netpin.io/ips', { ips: [{ ipv4: v4('10.20.0.5') }] }],
    ])('refuses %s in a pool without an Antrea IPPool name: Antrea would ignore pod-ips', (key, intent) => {
      const [p, ...more] = antrea.check(intent, POD, [bare4]);
      expect(more).toEqual([]);
      expect(p?.key).toBe(key);
      expect(p?.message).toContain('Antrea would ignore the address');
      expect(p?.fix).toBe('Set spec.cni.antrea.pool on IPPool bare4 to the Antrea IPPool name');
    });
  });

  describe('StatefulSets', () => {
    it('leaves pinning to Antrea: pool only, with warnings', () => {
      const intent: Intent = { pools: ['a4'] };
      expect(antrea.pinsAddresses(intent, STATEFULSET, [])).toBe(false);
      expect(antrea.check(intent, STATEFULSET, [a4])).toEqual([]);
      const r = antrea.render(intent, STATEFULSET, { pools: [a4] });
      expect(r.annotations).toEqual({ 'ipam.antrea.io/ippools': 'antrea-v4' });
      expect(r.warnings).toHaveLength(2);
      expect(r.warnings[0]).toBe(IPAM_WARNING);
      expect(r.warnings[1]).toContain('Antrea, not netpin, pins');
      expect(r.warnings[1]).toContain('dedicate the pool to StatefulSets');
    });

    it.each<[string, Intent]>([
      ['netpin.io/ip', { ip: { ipv4: v4('10.10.0.5') } }],
      ['netpin.io/ips', { ips: [{ ipv4: v4('10.10.0.5') }] }],
    ])('refuses %s, pointing at netpin.io/pool', (key, intent) => {
      expect(antrea.pinsAddresses(intent, STATEFULSET, [])).toBe(false);
      const [p, ...more] = antrea.check(intent, STATEFULSET, []);
      expect(more).toEqual([]);
      expect(p?.key).toBe(key);
      expect(p?.message).toContain('StatefulSet');
      expect(p?.fix).toContain('netpin.io/pool');
    });

    it('refuses more than one pool, v4 plus v6 included', () => {
      const [p, ...more] = antrea.check({ pools: ['a4', 'a6'] }, STATEFULSET, [a4, a6]);
      expect(more).toEqual([]);
      expect(p?.key).toBe('netpin.io/pool');
      expect(p?.message).toContain('annotation of multiple IP Pools is not supported');
      expect(p?.fix).toContain('one IPv4 pool');
    });
  });

  it('writes rates as Kubernetes bandwidth quantities, warning that they apply at sandbox creation', () => {
    const intent: Intent = { ingressRate: rate('1.5M', 1_500_000n), egressRate: rate('2G', 2_000_000_000n) };
    expect(antrea.check(intent, POD, [])).toEqual([]);
    const r = antrea.render(intent, POD, { pools: [] });
    expect(r.annotations).toEqual({
      'kubernetes.io/ingress-bandwidth': '1500k',
      'kubernetes.io/egress-bandwidth': '2G',
    });
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toContain('bandwidth plugin');
    expect(r.warnings[0]).toContain('restart');
  });

  it('refuses every netem key', () => {
    const problems = antrea.check({ latencyMs: 10, jitterMs: 1, lossPercent: 1, limitPackets: 10 }, POD, []);
    expect(problems.map((p) => p.key)).toEqual([
      'netpin.io/latency',
      'netpin.io/jitter',
      'netpin.io/loss',
      'netpin.io/limit',
    ]);
    for (const p of problems) {
      expect(p.message).toContain('Antrea');
      expect(p.fix).toContain('Kube-OVN');
    }
  });

  describe('egress', () => {
    const eg = compilePool({
      metadata: { name: 'eg' },
      spec: { cidr: '192.0.2.0/28', egress: { nodeSelector: { matchLabels: { egress: 'yes' } } } },
    });

    it('labels the pod for the Egress netpin keeps, from an egress pool', () => {
      const intent: Intent = { egress: { pools: ['eg'], mode: 'snat' } };
      expect(antrea.check(intent, DEPLOYMENT, [], [eg])).toEqual([]);
      const r = antrea.render(intent, DEPLOYMENT, { pools: [], egress: { ipv4: v4('192.0.2.9') } });
      expect(r.annotations).toEqual({});
      expect(r.labels).toEqual({ 'netpin.io/egress': '192.0.2.9' });
      expect(r.warnings.join(' ')).not.toContain('apply');
      expect(r.warnings.at(-1)).toContain('encap or hybrid');
    });

    it('refuses an egress address outside every egress pool: Antrea needs its ExternalIPPool', () => {
      const [p, ...more] = antrea.check({ egress: { ip: { ipv4: v4('198.51.100.9') }, mode: 'snat' } }, POD, [], []);
      expect(more).toEqual([]);
      expect(p?.key).toBe('netpin.io/egress-ip');
      expect(p?.fix).toContain('spec.egress');
    });

    it('refuses eip: Antrea Egress is SNAT only', () => {
      const [p, ...more] = antrea.check({ egress: { pools: ['eg'], mode: 'eip' } }, POD, [], [eg]);
      expect(more).toEqual([]);
      expect(p?.key).toBe('netpin.io/egress-mode');
      expect(p?.message).toContain('Antrea');
      expect(p?.fix).toContain('snat');
      expect(p?.fix).toContain('Kube-OVN');
    });

    it('refuses an egress address together with fixed addresses', () => {
      const [p, ...more] = antrea.check({ pools: ['a4'], egress: { pools: ['eg'], mode: 'snat' } }, POD, [a4], [eg]);
      expect(more).toEqual([]);
      expect(p?.key).toBe('netpin.io/egress-ip');
      expect(p?.message).toContain('encap or hybrid');
      expect(p?.fix).toContain('Choose one');
    });
  });
});
