import { describe, expect, it } from 'vitest';
import { calico } from '../../src/cni/calico.js';
import type { Intent } from '../../src/intent/types.js';
import { allocation, DEPLOYMENT, pool, POD, rate, v4, v6 } from './fixtures.js';

const blue4 = pool('blue4', '10.0.0.0/24', { calico: { pool: 'blue-v4' } });
const blue6 = pool('blue6', 'fd00::/120');

describe('calico', () => {
  it('renders nothing for an empty intent', () => {
    expect(calico.pinsAddresses({}, POD, [])).toBe(false);
    expect(calico.check({}, POD, [])).toEqual([]);
    expect(calico.render({}, POD, { pools: [] })).toEqual({ annotations: {}, labels: {}, warnings: [] });
  });

  it.each<[string, Intent, string[]]>([
    ['ip', { ip: { ipv4: v4('10.0.0.5') } }, []],
    ['ips', { ips: [{ ipv4: v4('10.0.0.5') }, { ipv4: v4('10.0.0.6') }] }, []],
    ['pool', { pools: ['blue4'] }, ['blue4']],
  ])('pins %s through ipAddrs, with no pool annotation', (_, intent, names) => {
    const pools = [blue4].filter((p) => names.includes(p.name));
    expect(calico.pinsAddresses(intent, DEPLOYMENT, [])).toBe(true);
    expect(calico.check(intent, DEPLOYMENT, pools)).toEqual([]);
    expect(calico.render(intent, DEPLOYMENT, allocation([blue4], '10.0.0.5'))).toEqual({
      annotations: { 'cni.projectcalico.org/ipAddrs': '["10.0.0.5"]' },
      labels: {},
      warnings: [],
    });
  });

  it('writes dual stack IPv4 first', () => {
    const intent: Intent = { pools: ['blue6', 'blue4'] };
    expect(calico.render(intent, POD, allocation([blue4, blue6], '10.0.0.5', 'fd00::5')).annotations).toEqual({
      'cni.projectcalico.org/ipAddrs': '["10.0.0.5","fd00::5"]',
    });
  });

  it('writes rates as Kubernetes bandwidth quantities, warning about v3.30', () => {
    const intent: Intent = { ingressRate: rate('10M', 10_000_000n), egressRate: rate('500k', 500_000n) };
    expect(calico.check(intent, POD, [])).toEqual([]);
    const r = calico.render(intent, POD, { pools: [] });
    expect(r.annotations).toEqual({
      'kubernetes.io/ingress-bandwidth': '10M',
      'kubernetes.io/egress-bandwidth': '500k',
    });
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toContain('v3.30');
    expect(r.warnings[0]).toContain('Kubernetes datastore');
  });

  it('refuses an egress IP, pointing at natOutgoingAddress and egress gateways', () => {
    const [p, ...more] = calico.check({ egress: { ip: { ipv4: v4('192.0.2.9') }, mode: 'snat' } }, POD, []);
    expect(more).toEqual([]);
    expect(p?.key).toBe('netpin.io/egress-ip');
    expect(p?.message).toContain('Calico');
    expect(p?.message).toContain('floatingIPs');
    expect(p?.fix).toContain('natOutgoingAddress');
    expect(p?.fix).toContain('Calico Enterprise egress gateways');
  });

  it('refuses egress-mode eip as well', () => {
    const problems = calico.check({ egress: { ip: { ipv4: v4('192.0.2.9') }, mode: 'eip' } }, POD, []);
    expect(problems.map((p) => p.key)).toEqual(['netpin.io/egress-ip', 'netpin.io/egress-mode']);
    expect(problems[1]?.message).toContain('inbound DNAT');
    expect(problems[1]?.fix).toContain('Kube-OVN');
  });

  it('refuses every netem key', () => {
    const problems = calico.check({ latencyMs: 10, jitterMs: 1, lossPercent: 1, limitPackets: 10 }, POD, []);
    expect(problems.map((p) => p.key)).toEqual([
      'netpin.io/latency',
      'netpin.io/jitter',
      'netpin.io/loss',
      'netpin.io/limit',
    ]);
    for (const p of problems) {
      expect(p.message).toContain('Calico');
      expect(p.fix).toContain('Kube-OVN');
    }
  });

  it('also pins a v6-only address', () => {
    expect(
      calico.render({ ip: { ipv6: v6('fd00::5') } }, POD, allocation([blue6], undefined, 'fd00::5')).annotations,
    ).toEqual({
      'cni.projectcalico.org/ipAddrs': '["fd00::5"]',
    });
  });

  describe('pool backing', () => {
    const netpinPool = pool('web', '10.20.0.0/26');
    const calicoPool = (name: string, cidr: string, spec: Record<string, unknown> = {}) => ({
      metadata: { name },
      spec: { cidr, ...spec },
    });
    const manual = calicoPool('pinned', '10.20.0.0/24', { nodeSelector: '!all()' });

    it('accepts a pool inside a Calico IPPool that never assigns by itself', () => {
      expect(calico.checkPool(netpinPool, [manual])).toEqual({ problems: [], warnings: [] });
      expect(
        calico.checkPool(netpinPool, [calicoPool('v330', '10.20.0.0/16', { assignmentMode: 'Manual' })]).problems,
      ).toEqual([]);
    });

    it.each<[string, unknown[], string, string]>([
      [
        'outside every Calico IPPool',
        [calicoPool('other', '10.99.0.0/24')],
        'lies in no Calico IPPool',
        'create a Calico IPPool over 10.20.0.1-10.20.0.62',
      ],
      [
        'inside an auto-assigning Calico IPPool',
        [calicoPool('default', '10.20.0.0/16')],
        'which Calico assigns from by itself',
        'set assignmentMode: Manual',
      ],
      [
        'inside a disabled Calico IPPool',
        [calicoPool('off', '10.20.0.0/24', { disabled: true, nodeSelector: '!all()' })],
        'Calico refuses ipAddrs from a disabled pool',
        'set disabled: false',
      ],
      [
        'inside a Calico IPPool closed to workloads',
        [calicoPool('tunnel', '10.20.0.0/24', { nodeSelector: '!all()', allowedUses: ['Tunnel'] })],
        'leaves out Workload',
        'add Workload',
      ],
      [
        'only half inside a Calico IPPool',
        [calicoPool('half', '10.20.0.0/27', { nodeSelector: '!all()' })],
        'lies in no Calico IPPool',
        'create a Calico IPPool',
      ],
    ])('refuses a pool %s', (_, native, message, fix) => {
      const { problems, warnings } = calico.checkPool(netpinPool, native);
      expect(warnings).toEqual([]);
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatchObject({ key: 'spec.cidr' });
      expect(problems[0]!.message).toContain(message);
      expect(problems[0]!.fix).toContain(fix);
    });

    it('holds a pool to the Calico IPPool it names in spec.cni.calico.pool', () => {
      const namedPool = pool('web', '10.20.0.0/26', { calico: { pool: 'other' } });
      expect(calico.checkPool(namedPool, [manual]).problems[0]).toMatchObject({
        key: 'spec.cni.calico.pool',
        message: 'names Calico IPPool other, which does not exist',
      });
      const right = pool('web', '10.20.0.0/26', { calico: { pool: 'pinned' } });
      expect(calico.checkPool(right, [manual, calicoPool('auto', '10.20.0.0/16')]).problems).toEqual([]);
    });

    it("admits with a warning saying what to check when Calico's pools cannot be read", () => {
      const { problems, warnings } = calico.checkPool(
        netpinPool,
        'the cluster serves no ippools.crd.projectcalico.org',
      );
      expect(problems).toEqual([]);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain(
        "netpin could not read Calico's IPPools (the cluster serves no ippools.crd.projectcalico.org)",
      );
      expect(warnings[0]).toContain('covers 10.20.0.1-10.20.0.62');
      expect(warnings[0]).toContain('assignmentMode: Manual');
    });
  });
});
