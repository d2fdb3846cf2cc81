import { describe, expect, it } from 'vitest';
import { netpinIpam } from '../../src/cni/netpin-ipam.js';
import type { Intent } from '../../src/intent/types.js';
import { compilePool } from '../../src/ipam/pool.js';
import { allocation, POD, rate, STATEFULSET, v4 } from './fixtures.js';

const web = compilePool({ metadata: { name: 'web' }, spec: { cidr: '10.20.0.0/24', exclude: ['10.20.0.1'] } });
const dual = compilePool({
  metadata: { name: 'dual' },
  spec: {
    ranges: ['10.30.0.10-10.30.0.19', 'fd00:30::10-fd00:30::1f'],
    subnets: [
      { cidr: '10.30.0.0/24', gateway: '10.30.0.1' },
      { cidr: 'fd00:30::/64', gateway: 'fd00:30::1' },
    ],
  },
});
// Hands out its own first address: no gateway netpin-ipam could give.
const open = compilePool({ metadata: { name: 'open' }, spec: { cidr: '10.40.0.0/24' } });
const out = compilePool({ metadata: { name: 'out' }, spec: { cidr: '203.0.113.0/28', egress: {} } });

describe('netpin-ipam', () => {
  it('pins every address netpin gives, and renders nothing for an empty intent', () => {
    expect(netpinIpam.pinsAddresses({ pools: ['web'] }, POD, [])).toBe(true);
    expect(netpinIpam.pinsAddresses({ ip: { ipv4: v4('10.20.0.7') } }, STATEFULSET, [])).toBe(true);
    expect(netpinIpam.pinsAddresses({}, POD, [])).toBe(false);
    expect(netpinIpam.render({}, POD, { pools: [] })).toEqual({ annotations: {}, labels: {}, warnings: [] });
  });

  it('writes each address with the prefix length and gateway of its pool, IPv4 first', () => {
    const r = netpinIpam.render({ pools: ['dual'] }, POD, allocation([dual], '10.30.0.12', 'fd00:30::12'));
    expect(JSON.parse(r.annotations['netpin.io/ipam']!)).toEqual([
      { address: '10.30.0.12/24', gateway: '10.30.0.1' },
      { address: 'fd00:30::12/64', gateway: 'fd00:30::1' },
    ]);
    expect(r.warnings).toEqual([]);
  });

  it('accepts a fixed address in a pool that gives its subnet, and pools that do', () => {
    expect(netpinIpam.check({ ip: { ipv4: v4('10.20.0.7') } }, POD, [web])).toEqual([]);
    expect(netpinIpam.check({ pools: ['dual'] }, POD, [dual])).toEqual([]);
  });

  it('refuses a fixed address in no IPPool: it would have no prefix length or gateway', () => {
    const [p, ...more] = netpinIpam.check({ ips: [{ ipv4: v4('10.99.0.7') }] }, STATEFULSET, []);
    expect(more).toEqual([]);
    expect(p).toEqual({
      key: 'netpin.io/ips',
      message:
        '10.99.0.7 lies in no IPPool, and netpin-ipam takes the prefix length and gateway of an address from the IPPool that holds it',
      fix: 'create an IPPool over 10.99.0.7 (its spec.cidr, or spec.subnets, gives the subnet and gateway), or use netpin.io/pool',
    });
  });

  it('refuses a pool that gives no gateway, naming the pool, its field and the fix', () => {
    const [p, ...more] = netpinIpam.check({ pools: ['open'] }, POD, [open]);
    expect(more).toEqual([]);
    expect(p?.key).toBe('netpin.io/pool');
    expect(p?.message).toBe(
      'netpin-ipam cannot place the addresses of IPPool open (spec.exclude): the pool hands out 10.40.0.1, the gateway of its subnet 10.40.0.0/24, so a pod could be given its own gateway',
    );
    expect(p?.fix).toBe('add 10.40.0.1 to spec.exclude of IPPool open');
  });

  it.each<[string, Intent, string[]]>([
    ['an egress pool', { egress: { pools: ['out'], mode: 'snat' } }, ['netpin.io/egress-pool']],
    ['an egress address', { egress: { ip: { ipv4: v4('203.0.113.5') }, mode: 'eip' } }, ['netpin.io/egress-ip']],
    ['latency', { latencyMs: 10 }, ['netpin.io/latency']],
    ['loss', { lossPercent: 1 }, ['netpin.io/loss']],
  ])('refuses %s: the plugin chain cannot do it', (_, intent, keys) => {
    const problems = netpinIpam.check(intent, POD, [], [out]);
    expect(problems.map((p) => p.key)).toEqual(keys);
    for (const p of problems) expect(p.fix).not.toBe('');
  });

  it('writes the rates for the chained bandwidth plugin, and says it must be there', () => {
    const intent: Intent = { ingressRate: rate('10M', 10_000_000n), egressRate: rate('1G', 1_000_000_000n) };
    const r = netpinIpam.render(intent, POD, { pools: [] });
    expect(r.annotations).toEqual({
      'kubernetes.io/ingress-bandwidth': '10M',
      'kubernetes.io/egress-bandwidth': '1G',
    });
    expect(r.warnings.join(' ')).toContain('bandwidth plugin');
  });

  it('checks an IPPool at apply for what the plugin needs, and leaves egress pools alone', () => {
    expect(netpinIpam.checkPool(web, undefined)).toEqual({ problems: [], warnings: [] });
    expect(netpinIpam.checkPool(open, undefined).problems.map((p) => p.key)).toEqual(['spec.exclude']);
    expect(netpinIpam.checkPool(out, undefined)).toEqual({ problems: [], warnings: [] });
  });

  it('treats netpin.io/allocated as the address the CNI gives, and netpin.io/ipam as placement', () => {
    expect(netpinIpam.addressKeys).toEqual(['netpin.io/allocated']);
    expect(netpinIpam.placementKeys).toEqual(['netpin.io/ipam']);
  });
});
