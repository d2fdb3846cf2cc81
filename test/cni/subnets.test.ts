import { describe, expect, it } from 'vitest';
import { MAX_SUBNETS, subnetFor, subnetsOf, subnetText } from '../../src/cni/subnets.js';
import { compilePool, type IPPoolSpec } from '../../src/ipam/pool.js';
import { v4, v6 } from './fixtures.js';

const of = (spec: IPPoolSpec) => subnetsOf(compilePool({ metadata: { name: 'p' }, spec }));
const shown = (spec: IPPoolSpec) => of(spec).subnets.map((s) => `${subnetText(s)} via ${s.gateway.toString()}`);

describe('subnetsOf', () => {
  it('takes spec.cidr and its first address as the gateway, when the pool does not hand that out', () => {
    expect(shown({ cidr: '10.20.0.0/24', exclude: ['10.20.0.1'] })).toEqual(['10.20.0.0/24 via 10.20.0.1']);
    expect(of({ cidr: '10.20.0.0/24', exclude: ['10.20.0.1'] }).problems).toEqual([]);
    expect(shown({ cidr: 'fd00:20::/120', exclude: ['fd00:20::1'] })).toEqual(['fd00:20::/120 via fd00:20::1']);
  });

  it('refuses a default gateway the pool would hand out, naming spec.exclude', () => {
    expect(of({ cidr: '10.20.0.0/24' }).problems).toEqual([
      {
        key: 'spec.exclude',
        message:
          'the pool hands out 10.20.0.1, the gateway of its subnet 10.20.0.0/24, so a pod could be given its own gateway',
        fix: 'add 10.20.0.1 to spec.exclude of IPPool p',
      },
    ]);
  });

  it('refuses a pool of ranges alone: no prefix length, no gateway', () => {
    const { problems } = of({ ranges: ['10.30.0.10-10.30.0.19'] });
    expect(problems.map((p) => p.key)).toEqual(['spec.subnets']);
    expect(problems[0]!.message).toBe(
      'the pool has no spec.cidr and no spec.subnets, so netpin-ipam knows no prefix length or gateway for its addresses',
    );
  });

  it('reads spec.subnets: ranges in them, gateways outside what the pool hands out', () => {
    const spec: IPPoolSpec = {
      ranges: ['10.30.0.10-10.30.0.19', 'fd00:30::10-fd00:30::1f'],
      subnets: [
        { cidr: '10.30.0.0/24', gateway: '10.30.0.254' },
        { cidr: 'fd00:30::/64', gateway: 'fd00:30::1' },
      ],
    };
    expect(of(spec).problems).toEqual([]);
    expect(shown(spec)).toEqual(['10.30.0.0/24 via 10.30.0.254', 'fd00:30::/64 via fd00:30::1']);
    const { subnets } = of(spec);
    expect(subnetFor(subnets, v4('10.30.0.12'))?.prefixLength).toBe(24);
    expect(subnetFor(subnets, v6('fd00:30::12'))?.prefixLength).toBe(64);
    expect(subnetFor(subnets, v4('10.31.0.12'))).toBeUndefined();
  });

  it('refuses a range outside every subnet, naming it', () => {
    const { problems } = of({
      ranges: ['10.30.0.10-10.30.0.19', '10.31.0.5'],
      subnets: [{ cidr: '10.30.0.0/24', gateway: '10.30.0.1' }],
    });
    expect(problems).toEqual([
      {
        key: 'spec.subnets',
        message: '10.31.0.5 lies in no subnet of spec.subnets, so netpin-ipam has no prefix length and gateway for it',
        fix: 'add the subnet that holds 10.31.0.5 and its gateway to spec.subnets of IPPool p',
      },
    ]);
  });

  it.each<[string, unknown, string, string]>([
    ['no cidr', [{ gateway: '10.30.0.1' }], 'spec.subnets[0]', 'has no cidr'],
    [
      'an address for a cidr',
      [{ cidr: '10.30.0.0', gateway: '10.30.0.1' }],
      'spec.subnets[0]',
      '"10.30.0.0" is not a CIDR',
    ],
    [
      'host bits',
      [{ cidr: '10.30.0.5/24', gateway: '10.30.0.1' }],
      'spec.subnets[0]',
      '"10.30.0.5/24" has host bits set; the network is 10.30.0.0/24',
    ],
    ['no gateway', [{ cidr: '10.30.0.0/24' }], 'spec.subnets[0].gateway', 'a missing gateway is not an address'],
    [
      'a gateway outside',
      [{ cidr: '10.30.0.0/24', gateway: '10.31.0.1' }],
      'spec.subnets[0].gateway',
      '10.31.0.1 lies outside 10.30.0.0/24',
    ],
    [
      'a gateway of the other family',
      [{ cidr: '10.30.0.0/24', gateway: 'fd00::1' }],
      'spec.subnets[0].gateway',
      'fd00::1 lies outside 10.30.0.0/24',
    ],
    [
      'the network address',
      [{ cidr: '10.30.0.0/24', gateway: '10.30.0.0' }],
      'spec.subnets[0].gateway',
      '10.30.0.0 is the network address of 10.30.0.0/24',
    ],
    [
      'the broadcast address',
      [{ cidr: '10.30.0.0/24', gateway: '10.30.0.255' }],
      'spec.subnets[0].gateway',
      '10.30.0.255 is the broadcast address of 10.30.0.0/24',
    ],
    ['not a list', { cidr: '10.30.0.0/24' }, 'spec.subnets', `is not a list of 1 to ${MAX_SUBNETS} subnets`],
    ['an empty list', [], 'spec.subnets', `is not a list of 1 to ${MAX_SUBNETS} subnets`],
  ])('refuses %s in spec.subnets', (_, subnets, key, message) => {
    const spec = { ranges: ['10.30.0.10-10.30.0.19'], subnets } as IPPoolSpec;
    const [first] = of(spec).problems;
    expect(first?.key).toBe(key);
    expect(first?.message).toBe(message);
    expect(first?.fix).toContain('{ cidr: 10.20.0.0/24, gateway: 10.20.0.1 }');
  });

  it(`reads at most ${MAX_SUBNETS} subnets`, () => {
    const subnets = Array.from({ length: MAX_SUBNETS + 1 }, (_, i) => ({
      cidr: `10.${i}.0.0/24`,
      gateway: `10.${i}.0.1`,
    }));
    expect(of({ ranges: ['10.0.0.10'], subnets }).problems.map((p) => p.key)).toEqual(['spec.subnets']);
    expect(of({ ranges: ['10.0.0.10'], subnets: subnets.slice(0, MAX_SUBNETS) }).problems).toEqual([]);
  });
});
