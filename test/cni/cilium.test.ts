import { describe, expect, it } from 'vitest';
import { cilium } from '../../src/cni/cilium.js';
import type { Intent } from '../../src/intent/types.js';
import { compilePool } from '../../src/ipam/pool.js';
import { pool, POD, rate, STATEFULSET, v4, v6 } from './fixtures.js';

const c4 = pool('c4', '10.30.0.0/24', { cilium: { pool: 'blue-v4' } });
const c6 = pool('c6', 'fd00:c::/120', { cilium: { pool: 'blue-v6' } });
const dual = compilePool({
  metadata: { name: 'cdual' },
  spec: { ranges: ['10.40.0.0/24', 'fd00:40::/120'], cni: { cilium: { pool: 'blue' } } },
});
const bare4 = pool('bare4', '10.20.0.0/24');
const NO_KEEP =
  'Cilium does not keep a pod IP across restarts, StatefulSet pods included: pool addresses come in node-local blocks.';

describe('cilium', () => {
  it('renders nothing for an empty intent', () => {
    expect(cilium.pinsAddresses({}, POD)).toBe(false);
    expect(cilium.check({}, POD, [])).toEqual([]);
    expect(cilium.render({}, POD, { pools: [] })).toEqual({ annotations: {}, labels: {}, warnings: [] });
  });

  it.each<[string, Intent]>([
    ['netpin.io/ip', { ip: { ipv4: v4('10.30.0.5') } }],
    ['netpin.io/ips', { ips: [{ ipv4: v4('10.30.0.5') }] }],
  ])('refuses %s: no fixed primary IP', (key, intent) => {
    expect(cilium.pinsAddresses(intent, POD)).toBe(false);
    const [p, ...more] = cilium.check(intent, POD, []);
    expect(more).toEqual([]);
    expect(p?.key).toBe(key);
    expect(p?.message).toBe('Cilium has no fixed pod IP annotation for the primary network (cilium#17026)');
    expect(p?.fix).toContain('netpin.io/pool');
    expect(p?.fix).toContain('Kube-OVN or Calico');
  });

  describe('pools', () => {
    it('selects one pool through ip-pool, never pinning', () => {
      const intent: Intent = { pools: ['cdual'] };
      expect(cilium.pinsAddresses(intent, POD)).toBe(false);
      expect(cilium.check(intent, POD, [dual])).toEqual([]);
      expect(cilium.render(intent, POD, { pools: [dual] })).toEqual({
        annotations: { 'ipam.cilium.io/ip-pool': 'blue' },
        labels: {},
        warnings: [NO_KEEP],
      });
    });

    it('selects one pool per family through ipv4-pool and ipv6-pool', () => {
      const intent: Intent = { pools: ['c6', 'c4'] };
      expect(cilium.check(intent, STATEFULSET, [c6, c4])).toEqual([]);
      expect(cilium.render(intent, STATEFULSET, { pools: [c6, c4] })).toEqual({
        annotations: { 'ipam.cilium.io/ipv6-pool': 'blue-v6', 'ipam.cilium.io/ipv4-pool': 'blue-v4' },
        labels: {},
        warnings: [NO_KEEP],
      });
    });

    it('refuses a pool without a CiliumPodIPPool name', () => {
      const [p, ...more] = cilium.check({ pools: ['bare4'] }, POD, [bare4]);
      expect(more).toEqual([]);
      expect(p?.key).toBe('netpin.io/pool');
      expect(p?.message).toContain('Cilium');
      expect(p?.fix).toBe('Set spec.cni.cilium.pool on IPPool bare4 to the CiliumPodIPPool name');
    });
  });

  describe('rates', () => {
    it('writes Kubernetes bandwidth quantities, warning about the bandwidth manager and ingress support', () => {
      const intent: Intent = { ingressRate: rate('10M', 10_000_000n), egressRate: rate('100M', 100_000_000n) };
      expect(cilium.check(intent, POD, [])).toEqual([]);
      const r = cilium.render(intent, POD, { pools: [] });
      expect(r.annotations).toEqual({
        'kubernetes.io/ingress-bandwidth': '10M',
        'kubernetes.io/egress-bandwidth': '100M',
      });
      expect(r.warnings).toHaveLength(2);
      expect(r.warnings[0]).toContain('bandwidth manager');
      expect(r.warnings[0]).toContain('same node');
      expect(r.warnings[1]).toContain('Check that your Cilium release limits ingress bandwidth');
    });

    it('warns only about the bandwidth manager for an egress rate', () => {
      const r = cilium.render({ egressRate: rate('1k', 1_000n) }, POD, { pools: [] });
      expect(r.annotations).toEqual({ 'kubernetes.io/egress-bandwidth': '1k' });
      expect(r.warnings).toHaveLength(1);
    });
  });

  it('refuses every netem key', () => {
    const problems = cilium.check({ latencyMs: 10, jitterMs: 1, lossPercent: 1, limitPackets: 10 }, POD, []);
    expect(problems.map((p) => p.key)).toEqual([
      'netpin.io/latency',
      'netpin.io/jitter',
      'netpin.io/loss',
      'netpin.io/limit',
    ]);
    for (const p of problems) {
      expect(p.message).toContain('Cilium');
      expect(p.fix).toContain('Kube-OVN');
    }
  });

  describe('egress', () => {
    const gw = { nodeSelector: { matchLabels: { egress: 'yes' } } };
    const eg = compilePool({ metadata: { name: 'eg' }, spec: { ranges: ['192.0.2.9', '2001:db8::9'], egress: gw } });
    const bare = compilePool({ metadata: { name: 'bare' }, spec: { cidr: '192.0.2.16/28', egress: {} } });

    it('labels the pod for the CiliumEgressGatewayPolicy netpin keeps', () => {
      const intent: Intent = { egress: { pools: ['eg'], mode: 'snat' } };
      expect(cilium.check(intent, POD, [], [eg])).toEqual([]);
      const r = cilium.render(intent, POD, { pools: [], egress: { ipv4: v4('192.0.2.9') } });
      expect(r.annotations).toEqual({});
      expect(r.labels).toEqual({ 'netpin.io/egress': '192.0.2.9' });
      expect(r.warnings).toHaveLength(1);
      expect(r.warnings[0]).toContain('gateway node');
    });

    it('refuses an egress pool without gateway nodes, naming spec.egress.nodeSelector', () => {
      const [p, ...more] = cilium.check({ egress: { pools: ['bare'], mode: 'snat' } }, POD, [], [bare]);
      expect(more).toEqual([]);
      expect(p?.key).toBe('netpin.io/egress-pool');
      expect(p?.fix).toContain('spec.egress.nodeSelector on IPPool bare');
      expect(cilium.check({ egress: { ip: { ipv4: v4('198.51.100.1') }, mode: 'snat' } }, POD, [], [])[0]?.key).toBe(
        'netpin.io/egress-ip',
      );
    });

    it('warns about IPv6 egress IPs and cilium#48660', () => {
      const r = cilium.render({ egress: { pools: ['eg'], mode: 'snat' } }, POD, {
        pools: [],
        egress: { ipv4: v4('192.0.2.9'), ipv6: v6('2001:db8::9') },
      });
      expect(r.labels).toEqual({ 'netpin.io/egress': '192.0.2.9_2001-db8--9' });
      expect(r.warnings.at(-1)).toContain('cilium#48660');
    });

    it('refuses eip: the egress gateway is SNAT only', () => {
      const [p, ...more] = cilium.check({ egress: { pools: ['eg'], mode: 'eip' } }, POD, [], [eg]);
      expect(more).toEqual([]);
      expect(p?.key).toBe('netpin.io/egress-mode');
      expect(p?.message).toContain('Cilium');
      expect(p?.fix).toContain('snat');
      expect(p?.fix).toContain('Kube-OVN');
    });
  });
});
