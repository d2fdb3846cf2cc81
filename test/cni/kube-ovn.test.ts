import { describe, expect, it } from 'vitest';
import { kubeOvn } from '../../src/cni/kube-ovn.js';
import { compilePool } from '../../src/ipam/pool.js';
import type { Intent } from '../../src/intent/types.js';
import { allocation, DEPLOYMENT, pool, POD, rate, STATEFULSET, v4, v6 } from './fixtures.js';

const ovn4 = pool('ovn4', '10.16.0.0/24', { kubeOvn: { subnet: 'ovn-default' } });
const ovn6 = pool('ovn6', 'fd00:10:16::/120', { kubeOvn: { subnet: 'ovn-default' } });
const blue6 = pool('blue6', 'fd00:20::/120', { kubeOvn: { subnet: 'blue' } });
const plain4 = pool('plain4', '10.0.0.0/24');
const EGRESS_WARNING = /default VPC.*--enable-eip-snat.*ovn-external-gw-config/;
/** Egress pools holding the egress addresses of these tests: Kube-OVN takes one from an egress pool only. */
const out4 = compilePool({
  metadata: { name: 'out4' },
  spec: { cidr: '192.0.2.0/28', exclude: ['192.0.2.1'], egress: {} },
});
const out6 = compilePool({ metadata: { name: 'out6' }, spec: { cidr: '2001:db8::/124', egress: {} } });
const OUT = [out4, out6];

describe('kube-ovn', () => {
  it('renders nothing for an empty intent', () => {
    expect(kubeOvn.pinsAddresses({}, POD, [])).toBe(false);
    expect(kubeOvn.check({}, POD, [])).toEqual([]);
    expect(kubeOvn.render({}, POD, { pools: [] })).toEqual({ annotations: {}, labels: {}, warnings: [] });
  });

  describe('addresses', () => {
    it.each<[string, Intent]>([
      ['ip', { ip: { ipv4: v4('10.0.0.5') } }],
      ['ips', { ips: [{ ipv4: v4('10.0.0.5') }] }],
      ['pools', { pools: ['plain4'] }],
    ])('pins %s through ip_address', (_, intent) => {
      expect(kubeOvn.pinsAddresses(intent, STATEFULSET, [])).toBe(true);
      expect(kubeOvn.check(intent, STATEFULSET, intent.pools ? [plain4] : [])).toEqual([]);
      expect(kubeOvn.render(intent, STATEFULSET, allocation([plain4], '10.0.0.5'))).toEqual({
        annotations: { 'ovn.kubernetes.io/ip_address': '10.0.0.5' },
        labels: {},
        warnings: [],
      });
    });

    it("writes dual stack IPv4 first, with the pools' Subnet as logical_switch", () => {
      const intent: Intent = { pools: ['ovn6', 'ovn4'] };
      expect(kubeOvn.check(intent, POD, [ovn6, ovn4])).toEqual([]);
      expect(kubeOvn.render(intent, POD, allocation([ovn4, ovn6], '10.16.0.5', 'fd00:10:16::5')).annotations).toEqual({
        'ovn.kubernetes.io/ip_address': '10.16.0.5,fd00:10:16::5',
        'ovn.kubernetes.io/logical_switch': 'ovn-default',
      });
    });

    it('refuses pools that name different Subnets', () => {
      const [p, ...more] = kubeOvn.check({ pools: ['ovn4', 'blue6'] }, POD, [ovn4, blue6]);
      expect(more).toEqual([]);
      expect(p?.key).toBe('netpin.io/pool');
      expect(p?.message).toContain('ovn-default and blue');
      expect(p?.fix).toContain('spec.cni.kubeOvn.subnet');
    });

    it('refuses fixed IPs in pools of different Subnets, naming the key that led there', () => {
      const [p, ...more] = kubeOvn.check({ ip: { ipv4: v4('10.16.0.5'), ipv6: v6('fd00:20::5') } }, POD, [ovn4, blue6]);
      expect(more).toEqual([]);
      expect(p?.key).toBe('netpin.io/ip');
      expect(p?.message).toContain('ovn-default and blue');
    });

    it('refuses a pool without a Subnet beside one with a Subnet: logical_switch would send both addresses there', () => {
      const bare6 = pool('bare6', 'fd00:30::/120');
      const [p, ...more] = kubeOvn.check({ pools: ['ovn4', 'bare6'] }, POD, [ovn4, bare6]);
      expect(more).toEqual([]);
      expect(p?.key).toBe('netpin.io/pool');
      expect(p?.message).toBe(
        "IPPool bare6 names no Subnet while the pod's other pool names ovn-default, so Kube-OVN would look for every address of the pod in Subnet ovn-default",
      );
      expect(p?.fix).toContain('Set spec.cni.kubeOvn.subnet on IPPool bare6');
    });

    it("writes no logical_switch when no pool names a Subnet: the namespace's Subnet applies", () => {
      const bare6 = pool('bare6', 'fd00:30::/120');
      expect(kubeOvn.check({ pools: ['plain4', 'bare6'] }, POD, [plain4, bare6])).toEqual([]);
      expect(
        kubeOvn.render({ pools: ['plain4', 'bare6'] }, POD, allocation([plain4, bare6], '10.0.0.5', 'fd00:30::5'))
          .annotations,
      ).toEqual({
        'ovn.kubernetes.io/ip_address': '10.0.0.5,fd00:30::5',
      });
    });
  });

  describe('write-back', () => {
    const ip = 'ovn.kubernetes.io/ip_address';

    it('keeps what netpin rendered, family by family, and adds at most one address of another family', () => {
      expect(kubeOvn.isWriteBack(ip, '10.16.0.5', '10.16.0.5', '10.16.0.5')).toBe(true);
      expect(kubeOvn.isWriteBack(ip, '10.16.0.5', undefined, '10.16.0.5')).toBe(true);
      expect(kubeOvn.isWriteBack(ip, '10.16.0.5,fd00::5', '10.16.0.5,fd00::5', 'fd00::5,10.16.0.5')).toBe(true);
      // Addresses added to what netpin gave: a second of the family, or two more.
      expect(kubeOvn.isWriteBack(ip, '10.16.0.5', '10.16.0.5', '10.16.0.5,10.16.0.6')).toBe(false);
      expect(kubeOvn.isWriteBack(ip, '10.16.0.5', '10.16.0.5', '10.16.0.5,fd00::9,10.16.0.6')).toBe(false);
      expect(kubeOvn.isWriteBack(ip, '10.16.0.5,fd00::5', '10.16.0.5,fd00::5', '10.16.0.5,fd00::6')).toBe(false);
      // A family netpin rendered left out, or the value not addresses at all.
      expect(kubeOvn.isWriteBack(ip, '10.16.0.5,fd00::5', '10.16.0.5,fd00::5', '10.16.0.5')).toBe(false);
      expect(kubeOvn.isWriteBack(ip, '10.16.0.5', '10.16.0.5', '10.16.0.5,x')).toBe(false);
      expect(kubeOvn.isWriteBack(ip, undefined, undefined, '10.16.0.0/24')).toBe(false);
    });

    it('takes a write where netpin rendered nothing only once, with at most one address per family', () => {
      expect(kubeOvn.isWriteBack(ip, undefined, undefined, '10.16.0.9,fd00::9')).toBe(true);
      expect(kubeOvn.isWriteBack(ip, undefined, undefined, '10.16.0.9,10.16.0.10')).toBe(false);
      expect(kubeOvn.isWriteBack(ip, undefined, '10.16.0.9', '10.16.0.9,fd00::9')).toBe(false);
      // After netpin's value, the pod's address cannot be written again.
      expect(kubeOvn.isWriteBack(ip, '10.16.0.5', '10.16.0.5,fd00::9', '10.16.0.5,fd00::8')).toBe(false);
    });

    it("judges each attachment's keys as the primary network's", () => {
      const att = 'net1.shop.ovn.kubernetes.io/ip_address';
      expect(kubeOvn.isWriteBack(att, undefined, undefined, '10.16.0.9')).toBe(true);
      expect(kubeOvn.isWriteBack(att, undefined, undefined, '10.16.0.9,10.16.0.10')).toBe(false);
      expect(kubeOvn.isWriteBack(att, undefined, '10.16.0.9', '10.16.0.10')).toBe(false);
      expect(kubeOvn.isWriteBack('net1.shop.ovn.kubernetes.io/logical_switch', undefined, undefined, 'net1')).toBe(
        true,
      );
      for (const key of ['snat', 'eip', 'ip_pool'])
        expect(kubeOvn.isWriteBack(`net1.shop.ovn.kubernetes.io/${key}`, undefined, undefined, '10.16.0.9')).toBe(
          false,
        );
    });

    it('lets Kube-OVN record the other family and the Subnet it used, and nothing else', () => {
      const ip = 'ovn.kubernetes.io/ip_address';
      const ls = 'ovn.kubernetes.io/logical_switch';
      expect(kubeOvn.isWriteBack(ip, '10.16.0.5', '10.16.0.5', '10.16.0.5,fd00:10:16::9')).toBe(true);
      expect(kubeOvn.isWriteBack(ip, '10.16.0.5', '10.16.0.5', '10.16.0.6')).toBe(false);
      expect(kubeOvn.isWriteBack(ip, '10.16.0.5', '10.16.0.5', undefined)).toBe(false);
      // An unpinned pod: Kube-OVN records the address it picked, once.
      expect(kubeOvn.isWriteBack(ip, undefined, undefined, '10.16.0.9')).toBe(true);
      expect(kubeOvn.isWriteBack(ip, undefined, '10.16.0.9', '10.16.0.10')).toBe(false);
      expect(kubeOvn.isWriteBack(ls, undefined, undefined, 'ovn-default')).toBe(true);
      expect(kubeOvn.isWriteBack(ls, 'blue', 'blue', 'ovn-default')).toBe(false);
      expect(kubeOvn.isWriteBack('ovn.kubernetes.io/ip_pool', undefined, undefined, 'x')).toBe(false);
      for (const key of ['snat', 'eip'])
        expect(kubeOvn.isWriteBack(`ovn.kubernetes.io/${key}`, undefined, undefined, '192.0.2.9')).toBe(false);
    });
  });

  describe('rates', () => {
    it('writes whole Mbps and no kubernetes.io bandwidth keys', () => {
      const intent: Intent = { ingressRate: rate('10M', 10_000_000n), egressRate: rate('1G', 1_000_000_000n) };
      expect(kubeOvn.check(intent, POD, [])).toEqual([]);
      expect(kubeOvn.render(intent, POD, { pools: [] })).toEqual({
        annotations: { 'ovn.kubernetes.io/ingress_rate': '10', 'ovn.kubernetes.io/egress_rate': '1000' },
        labels: {},
        warnings: [],
      });
    });

    it.each([
      ['netpin.io/ingress-rate', { ingressRate: rate('1500k', 1_500_000n) }, 'Write 1M or 2M'],
      ['netpin.io/egress-rate', { egressRate: rate('500k', 500_000n) }, 'Write 1M in'],
    ])('refuses %s that is not whole Mbps, never rounding', (key, intent, fix) => {
      const [p, ...more] = kubeOvn.check(intent, POD, []);
      expect(more).toEqual([]);
      expect(p?.key).toBe(key);
      expect(p?.message).toContain('Kube-OVN');
      expect(p?.message).toContain('whole Mbps');
      expect(p?.fix).toContain(fix);
    });
  });

  describe('netem', () => {
    it('writes latency and jitter in ms, loss as given, limit in packets', () => {
      const intent: Intent = {
        latencyMs: 100,
        jitterMs: 10,
        lossPercent: 0.5,
        limitPackets: 1000,
        egressRate: rate('5M', 5_000_000n),
      };
      expect(kubeOvn.check(intent, POD, [])).toEqual([]);
      expect(kubeOvn.render(intent, POD, { pools: [] }).annotations).toEqual({
        'ovn.kubernetes.io/egress_rate': '5',
        'ovn.kubernetes.io/latency': '100',
        'ovn.kubernetes.io/jitter': '10',
        'ovn.kubernetes.io/loss': '0.5',
        'ovn.kubernetes.io/limit': '1000',
      });
      expect(kubeOvn.render({ lossPercent: 20 }, POD, { pools: [] }).annotations).toEqual({
        'ovn.kubernetes.io/loss': '20',
      });
    });

    it.each<[string, Intent, string]>([
      ['netpin.io/latency', { latencyMs: 1.5 }, 'Write 1 or 2 in'],
      ['netpin.io/jitter', { latencyMs: 10, jitterMs: 0.5 }, 'Write 1 in'],
      ['netpin.io/limit', { limitPackets: 2.5 }, 'Write 2 or 3 in'],
    ])('refuses a fraction in %s, which Kube-OVN would silently drop', (key, intent, fix) => {
      const [p, ...more] = kubeOvn.check(intent, POD, []);
      expect(more).toEqual([]);
      expect(p?.key).toBe(key);
      expect(p?.message).toContain('silently drops');
      expect(p?.fix).toContain(fix);
    });

    it('refuses jitter without latency', () => {
      const [p, ...more] = kubeOvn.check({ jitterMs: 5 }, POD, []);
      expect(more).toEqual([]);
      expect(p?.key).toBe('netpin.io/jitter');
      expect(p?.fix).toContain('netpin.io/latency');
    });

    it('refuses an ingress rate with netem, pointing at egress-rate', () => {
      const [p, ...more] = kubeOvn.check(
        { ingressRate: rate('10M', 10_000_000n), latencyMs: 10, lossPercent: 1 },
        POD,
        [],
      );
      expect(more).toEqual([]);
      expect(p?.key).toBe('netpin.io/ingress-rate');
      expect(p?.message).toContain('netpin.io/latency, netpin.io/loss');
      expect(p?.fix).toContain('netpin.io/egress-rate');
    });
  });

  describe('egress', () => {
    it.each([
      ['snat', 'ovn.kubernetes.io/snat'],
      ['eip', 'ovn.kubernetes.io/eip'],
    ] as const)('writes mode %s as %s, with the prerequisites warning', (mode, key) => {
      const intent: Intent = { egress: { ip: { ipv4: v4('192.0.2.9') }, mode } };
      expect(kubeOvn.check(intent, POD, [], [out4])).toEqual([]);
      const r = kubeOvn.render(intent, POD, { pools: [], egress: intent.egress!.ip });
      expect(r.annotations).toEqual({ [key]: '192.0.2.9' });
      expect(r.labels).toEqual({});
      expect(r.warnings).toHaveLength(1);
      expect(r.warnings[0]).toMatch(EGRESS_WARNING);
    });

    it('writes an IPv6 egress IP next to a dual-stack pod IP', () => {
      const intent: Intent = {
        ip: { ipv4: v4('10.16.0.5'), ipv6: v6('fd00:10:16::5') },
        egress: { ip: { ipv6: v6('2001:db8::9') }, mode: 'snat' },
      };
      expect(kubeOvn.check(intent, POD, [], [out6])).toEqual([]);
      const r = kubeOvn.render(intent, POD, {
        ...allocation([ovn4, ovn6], '10.16.0.5', 'fd00:10:16::5'),
        egress: intent.egress!.ip,
      });
      expect(r.annotations).toEqual({
        'ovn.kubernetes.io/ip_address': '10.16.0.5,fd00:10:16::5',
        'ovn.kubernetes.io/logical_switch': 'ovn-default',
        'ovn.kubernetes.io/snat': '2001:db8::9',
      });
      expect(r.warnings).toHaveLength(1);
    });

    it('refuses a dual-stack egress IP', () => {
      const [p, ...more] = kubeOvn.check(
        { egress: { ip: { ipv4: v4('192.0.2.9'), ipv6: v6('2001:db8::9') }, mode: 'snat' } },
        POD,
        [],
        OUT,
      );
      expect(more).toEqual([]);
      expect(p?.key).toBe('netpin.io/egress-ip');
      expect(p?.message).toContain('one IP');
      expect(p?.fix).toContain('one family');
    });

    it.each<[string, Intent]>([
      ['netpin.io/ip', { ip: { ipv4: v4('10.16.0.5') } }],
      ['netpin.io/ips', { ips: [{ ipv4: v4('10.16.0.5'), ipv6: v6('fd00:10:16::5') }, { ipv4: v4('10.16.0.6') }] }],
    ])('refuses an egress IP of a family %s lacks', (_, addresses) => {
      const [p, ...more] = kubeOvn.check(
        { ...addresses, egress: { ip: { ipv6: v6('2001:db8::9') }, mode: 'snat' } },
        POD,
        [],
        [out6],
      );
      expect(more).toEqual([]);
      expect(p?.key).toBe('netpin.io/egress-ip');
      expect(p?.message).toContain('no ipv6 address');
      expect(p?.fix).toContain('Add an ipv6 address');
    });

    it('warns when the allocated pod IPs lack the egress IP family', () => {
      const intent: Intent = { pools: ['ovn4'], egress: { ip: { ipv6: v6('2001:db8::9') }, mode: 'snat' } };
      const r = kubeOvn.render(intent, POD, { ...allocation([ovn4], '10.16.0.5'), egress: intent.egress!.ip });
      expect(r.warnings).toHaveLength(2);
      expect(r.warnings[1]).toContain('no ipv6 address');
    });

    it('gives each StatefulSet ordinal its own EIP from an egress pool, and refuses two families', () => {
      const eg4 = compilePool({ metadata: { name: 'eg4' }, spec: { cidr: '203.0.113.0/28', egress: {} } });
      const eg6 = compilePool({ metadata: { name: 'eg6' }, spec: { cidr: '2001:db8::/124', egress: {} } });
      expect(kubeOvn.check({ egress: { pools: ['eg4'], mode: 'eip' } }, STATEFULSET, [], [eg4])).toEqual([]);
      expect(kubeOvn.check({ egress: { pools: ['eg4'], mode: 'eip' } }, DEPLOYMENT, [], [eg4])[0]?.key).toBe(
        'netpin.io/egress-mode',
      );
      const [p] = kubeOvn.check({ egress: { pools: ['eg4', 'eg6'], mode: 'snat' } }, POD, [], [eg4, eg6]);
      expect(p?.key).toBe('netpin.io/egress-pool');
    });

    it('refuses an EIP on several replicas, pointing at snat', () => {
      const eip: Intent = { egress: { ip: { ipv4: v4('192.0.2.9') }, mode: 'eip' } };
      const [p, ...more] = kubeOvn.check(eip, DEPLOYMENT, [], [out4]);
      expect(more).toEqual([]);
      expect(p?.key).toBe('netpin.io/egress-mode');
      expect(p?.message).toContain('Deployment has 3 replicas');
      expect(p?.fix).toContain('snat');
      expect(
        kubeOvn.check({ egress: { ip: { ipv4: v4('192.0.2.9') }, mode: 'snat' } }, DEPLOYMENT, [], [out4]),
      ).toEqual([]);
    });

    // Outside every egress pool, no claim holds the address: another team's egress address, or a gateway.
    it.each([
      ['outside every pool', '198.51.100.9', []],
      ['excluded from its egress pool, as a gateway', '192.0.2.1', [out4]],
      ['of another egress pool than the ones the namespace may use', '192.0.2.9', [out6]],
    ] as const)('refuses an egress IP %s, as Antrea and Cilium do', (_, ip, pools) => {
      for (const mode of ['snat', 'eip'] as const) {
        const [p, ...more] = kubeOvn.check({ egress: { ip: { ipv4: v4(ip) }, mode } }, POD, [], pools);
        expect(more).toEqual([]);
        expect(p?.key).toBe('netpin.io/egress-ip');
        expect(p?.message).toBe(
          `${ip} is no address of an egress pool this namespace may use, and Kube-OVN would send the pod's outbound traffic from it: ` +
            'netpin gives an egress address only from an IPPool with spec.egress whose namespaceSelector selects the namespace, where its ledger holds the address for one owner',
        );
        expect(p?.fix).toBe(
          'choose an address of an IPPool with spec.egress that selects this namespace, or have one given with netpin.io/egress-pool',
        );
      }
    });
  });

  describe('placement keys', () => {
    it('count snat, eip and the per-attachment forms of each key, which only netpin may write', () => {
      for (const key of ['ip_address', 'ip_pool', 'logical_switch', 'snat', 'eip']) {
        expect(kubeOvn.placementKeys).toContain(`ovn.kubernetes.io/${key}`);
        expect(kubeOvn.placementKeys).toContain(`*.ovn.kubernetes.io/${key}`);
      }
    });
  });
});
