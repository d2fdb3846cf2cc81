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
  'Cilium does not keep a pod IP across restarts, StatefulSet pods included: pool addresses come in node-local blocks. Addresses that stay come from an IPPool with spec.cni.cilium.pinned: true.';

describe('cilium', () => {
  it('renders nothing for an empty intent', () => {
    expect(cilium.pinsAddresses({}, POD, [])).toBe(false);
    expect(cilium.check({}, POD, [])).toEqual([]);
    expect(cilium.render({}, POD, { pools: [] })).toEqual({ annotations: {}, labels: {}, warnings: [] });
  });

  describe('fixed addresses', () => {
    const pin = compilePool({
      metadata: { name: 'pin' },
      spec: { ranges: ['10.50.0.0/24', 'fd00:50::/120'], cni: { cilium: { pinned: true } } },
    });
    const MOVES =
      'Cilium hands a pinned address to a node as a block of one: a pod that moves to another node waits in ContainerCreating until the old node has given the block back (docs/cni-contract.md, Cilium).';

    it.each<[string, Intent]>([
      ['netpin.io/ip', { ip: { ipv4: v4('10.20.0.5') } }],
      ['netpin.io/ips', { ips: [{ ipv4: v4('10.20.0.5') }, { ipv4: v4('10.20.0.6') }] }],
    ])('refuses %s in a pool netpin does not pin, naming the pool and the fix', (key, intent) => {
      expect(cilium.pinsAddresses(intent, POD, [bare4])).toBe(false);
      const problems = cilium.check(intent, POD, [bare4]);
      expect(problems.map((p) => p.key)).toEqual(intent.ips ? [key, key] : [key]);
      expect(problems[0]?.message).toContain('Cilium has no fixed pod IP annotation (cilium#17026)');
      expect(problems[0]?.message).toContain('IPPool bare4 is not pinned');
      expect(problems[0]?.fix).toContain('set spec.cni.cilium.pinned: true on IPPool bare4');
    });

    it('refuses an address outside every pool: Cilium may give it to another pod', () => {
      const [p, ...more] = cilium.check({ ip: { ipv4: v4('192.0.2.7') } }, POD, []);
      expect(more).toEqual([]);
      expect(p?.message).toContain('it lies in no IPPool');
      expect(p?.fix).toBe(
        'create an IPPool over 192.0.2.7 with spec.cni.cilium.pinned: true, or choose an address of one',
      );
    });

    it('pins an address of a pinned pool through the CiliumPodIPPool named after it, by its family key', () => {
      const intent: Intent = { ip: { ipv4: v4('10.50.0.5') } };
      expect(cilium.pinsAddresses(intent, POD, [pin])).toBe(true);
      expect(cilium.check(intent, POD, [pin])).toEqual([]);
      expect(cilium.render(intent, POD, { pools: [pin], addresses: { ipv4: v4('10.50.0.5') } })).toEqual({
        annotations: { 'ipam.cilium.io/ipv4-pool': 'netpin-10.50.0.5' },
        labels: {},
        warnings: [MOVES],
      });
    });

    it('pins each family through its own pool key for dual-stack', () => {
      const addresses = { ipv4: v4('10.50.0.5'), ipv6: v6('fd00:50::5') };
      expect(cilium.render({ ip: addresses }, POD, { pools: [pin], addresses }).annotations).toEqual({
        'ipam.cilium.io/ipv4-pool': 'netpin-10.50.0.5',
        'ipam.cilium.io/ipv6-pool': 'netpin-fd00-50--5',
      });
    });

    it("pins a StatefulSet's pool addresses, so each ordinal keeps its own", () => {
      const intent: Intent = { pools: ['pin'] };
      expect(cilium.pinsAddresses(intent, STATEFULSET, [pin])).toBe(true);
      expect(cilium.check(intent, STATEFULSET, [pin])).toEqual([]);
      const r = cilium.render(intent, STATEFULSET, { pools: [pin], addresses: { ipv4: v4('10.50.0.1') } });
      expect(r.annotations).toEqual({ 'ipam.cilium.io/ipv4-pool': 'netpin-10.50.0.1' });
    });

    it("refuses pools of both kinds in one intent: a pod's families are all pinned or all Cilium's", () => {
      const problems = cilium.check({ pools: ['pin', 'c6'] }, POD, [pin, c6]);
      expect(problems).toHaveLength(1);
      expect(problems[0]?.message).toContain('IPPool pin is pinned by netpin and IPPool c6 is assigned by Cilium');
      expect(cilium.pinsAddresses({ pools: ['pin', 'c6'] }, POD, [pin, c6])).toBe(false);
    });
  });

  describe('pinned IPPools', () => {
    const pin = compilePool({
      metadata: { name: 'pin' },
      spec: { cidr: '10.50.0.0/24', cni: { cilium: { pinned: true } } },
    });
    const ciliumPool = (name: string, cidrs: string[], labels?: Record<string, string>) => ({
      metadata: { name, ...(labels ? { labels } : {}) },
      spec: { ipv4: { cidrs, maskSize: 27 } },
    });

    it('refuses a range that overlaps a CiliumPodIPPool Cilium assigns from, naming it and what is shared', () => {
      const { problems } = cilium.checkPool(pin, [ciliumPool('default', ['10.0.0.0/8'])]);
      expect(problems).toEqual([
        {
          key: 'spec.cidr',
          message:
            '10.50.0.1-10.50.0.254 lies in CiliumPodIPPool default, which Cilium assigns from by itself, so an address netpin pins could be given to another pod too',
          fix: 'move the range out of CiliumPodIPPool default, or add 10.50.0.1-10.50.0.254 to spec.exclude',
        },
      ]);
    });

    it("lets netpin's own single-address pools and pools elsewhere be", () => {
      const own = ciliumPool('netpin-10.50.0.5', ['10.50.0.5/32'], { 'app.kubernetes.io/managed-by': 'netpin' });
      const elsewhere = ciliumPool('blue', ['10.60.0.0/16']);
      expect(cilium.checkPool(pin, [own, elsewhere])).toEqual({ problems: [], warnings: [] });
    });

    it('refuses a pool both pinned and naming a CiliumPodIPPool', () => {
      const both = compilePool({
        metadata: { name: 'both' },
        spec: { cidr: '10.50.0.0/24', cni: { cilium: { pinned: true, pool: 'blue' } } },
      });
      const { problems } = cilium.checkPool(both, []);
      expect(problems.map((p) => p.key)).toEqual(['spec.cni.cilium']);
    });

    it("warns, naming the range to check, when Cilium's pools cannot be read", () => {
      const { problems, warnings } = cilium.checkPool(pin, 'forbidden');
      expect(problems).toEqual([]);
      expect(warnings).toEqual([
        "netpin could not read Cilium's CiliumPodIPPools (forbidden): check that none that Cilium assigns from overlaps 10.50.0.1-10.50.0.254.",
      ]);
    });

    it('checks nothing for a pool Cilium assigns from', () => {
      expect(cilium.checkPool(c4, [ciliumPool('default', ['10.0.0.0/8'])])).toEqual({ problems: [], warnings: [] });
    });
  });

  describe('pools', () => {
    it('selects one pool through ip-pool, never pinning', () => {
      const intent: Intent = { pools: ['cdual'] };
      expect(cilium.pinsAddresses(intent, POD, [dual])).toBe(false);
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
      expect(p?.fix).toBe(
        'Set spec.cni.cilium.pool on IPPool bare4 to the CiliumPodIPPool Cilium assigns from, or spec.cni.cilium.pinned: true to have netpin pin each address',
      );
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
