import { describe, expect, it } from 'vitest';
import { formatRange, toBigInt } from '../../src/net/address.js';
import {
  compilePool,
  describePool,
  poolAdmitsNamespace,
  poolContains,
  poolOverlap,
  PoolSpecError,
  type IPPoolSpec,
} from '../../src/ipam/pool.js';
import { pool, v4, v6 } from '../cni/fixtures.js';

const compile = (spec: IPPoolSpec, name = 'p') => compilePool({ metadata: { name }, spec });
const ranges = (spec: IPPoolSpec) => {
  const p = compile(spec);
  return p.families.flatMap((f) => p.ranges[f].map(formatRange));
};

describe('compilePool', () => {
  it('reads a CIDR less its exclusions, with the capacity of what is left', () => {
    const p = compile({ cidr: '10.20.0.0/24', exclude: ['10.20.0.1', '10.20.0.100-10.20.0.109'] });
    expect(p.families).toEqual(['ipv4']);
    expect(p.ranges.ipv4.map(formatRange)).toEqual(['10.20.0.2-10.20.0.99', '10.20.0.110-10.20.0.254']);
    expect(p.capacity).toEqual({ ipv4: 243n, ipv6: 0n });
  });

  it('merges overlapping and adjacent ranges, in address order, per family', () => {
    expect(
      ranges({ ranges: ['10.0.0.20-10.0.0.30', 'fd00::/126', '10.0.0.5-10.0.0.19', '10.0.0.25', '10.0.1.0/30'] }),
    ).toEqual(['10.0.0.5-10.0.0.30', '10.0.1.1-10.0.1.2', 'fd00::1-fd00::3']);
    const dual = compile({ cidr: '10.0.0.0/30', ranges: ['fd00::1-fd00::2'] });
    expect(dual.families).toEqual(['ipv4', 'ipv6']);
    expect(dual.capacity).toEqual({ ipv4: 2n, ipv6: 2n });
  });

  it('keeps exclusions of a CIDR literal: an excluded network is not dropped twice', () => {
    // exclude takes its CIDRs whole (the network address is an address like any other there).
    expect(ranges({ cidr: '10.0.0.0/28', exclude: ['10.0.0.0/29'] })).toEqual(['10.0.0.8-10.0.0.14']);
    expect(ranges({ cidr: '10.0.0.0/28', exclude: ['10.0.0.3', '10.0.0.4', '10.0.0.14'] })).toEqual([
      '10.0.0.1-10.0.0.2',
      '10.0.0.5-10.0.0.13',
    ]);
  });

  it('keeps a family it was given even when exclusions empty it', () => {
    const p = compile({ cidr: '10.0.0.0/30', exclude: ['10.0.0.0/30'] });
    expect(p.families).toEqual(['ipv4']);
    expect(p.capacity.ipv4).toBe(0n);
    expect(describePool(p)).toBe('p (no usable address)');
  });

  it('keeps the selector and the CNI names', () => {
    const p = compile({
      cidr: '10.0.0.0/24',
      namespaceSelector: { matchLabels: { team: 'web' } },
      cni: { calico: { pool: 'c' } },
    });
    expect(p.namespaceSelector).toEqual({ matchLabels: { team: 'web' } });
    expect(p.cni).toEqual({ calico: { pool: 'c' } });
    expect(compile({ cidr: '10.0.0.0/24' }).cni).toEqual({});
  });

  it.each<[string, unknown, string]>([
    ['no cidr or ranges', {}, 'IPPool p: set spec.cidr or spec.ranges'],
    ['a cidr that is not a string', { cidr: 10 }, 'IPPool p: spec.cidr must be a string'],
    ['ranges that are not a list', { ranges: '10.0.0.1' }, 'IPPool p: spec.ranges must be a list of strings'],
    ['a malformed CIDR', { cidr: '10.0.0.0/40' }, 'IPPool p: spec.cidr/ranges: "10.0.0.0/40" is not a CIDR'],
    [
      'host bits',
      { cidr: '10.0.0.1/24' },
      'IPPool p: spec.cidr/ranges: "10.0.0.1/24" has host bits set; the network is 10.0.0.0/24',
    ],
    [
      'a bad exclusion',
      { cidr: '10.0.0.0/24', exclude: ['10.0.0.x'] },
      'IPPool p: spec.exclude: "10.0.0.x" is not an address, a range or a CIDR',
    ],
    [
      'exclusions that are not a list',
      { cidr: '10.0.0.0/24', exclude: '10.0.0.1' },
      'IPPool p: spec.exclude must be a list of strings',
    ],
    // A pools file has no CRD schema: YAML turns an unquoted entry into a number.
    ['a range that is not a string', { ranges: ['10.0.0.1', 5] }, 'IPPool p: spec.ranges must be a list of strings'],
    [
      'an exclusion that is not a string',
      { cidr: '10.0.0.0/24', exclude: ['10.0.0.1', 7] },
      'IPPool p: spec.exclude must be a list of strings',
    ],
    ['an egress that is null', { cidr: '10.0.0.0/24', egress: null }, 'IPPool p: spec.egress must be an object'],
    ['an egress that is a string', { cidr: '10.0.0.0/24', egress: 'yes' }, 'IPPool p: spec.egress must be an object'],
    ['an egress that is a list', { cidr: '10.0.0.0/24', egress: [] }, 'IPPool p: spec.egress must be an object'],
  ])('refuses %s', (_, spec, message) => {
    expect(() => compile(spec as IPPoolSpec)).toThrow(new PoolSpecError(message));
  });

  it('refuses a pool without a name', () => {
    expect(() => compilePool({ metadata: { name: '' }, spec: { cidr: '10.0.0.0/24' } })).toThrow(
      new PoolSpecError('IPPool has no metadata.name'),
    );
  });

  it('makes an egress pool of one with spec.egress, and keeps its gateway nodes', () => {
    const nodeSelector = { matchLabels: { 'netpin.io/gateway': 'true' } };
    expect(compile({ cidr: '10.30.0.0/28', egress: { nodeSelector } }).egress).toEqual({ nodeSelector });
    expect(compile({ cidr: '10.30.0.0/28', egress: {} }).egress).toEqual({});
    expect(compile({ cidr: '10.30.0.0/28' })).not.toHaveProperty('egress');
  });

  it('cuts each range only by the exclusions inside it, wherever they lie among the ranges', () => {
    // Exclusions below, between and above the ranges, and one per range.
    expect(
      ranges({
        ranges: ['10.0.0.10-10.0.0.20', '10.0.0.30-10.0.0.40'],
        exclude: ['10.0.0.1-10.0.0.3', '10.0.0.15', '10.0.0.25', '10.0.0.35', '10.0.0.50'],
      }),
    ).toEqual(['10.0.0.10-10.0.0.14', '10.0.0.16-10.0.0.20', '10.0.0.30-10.0.0.34', '10.0.0.36-10.0.0.40']);
    // One exclusion across the gap between two ranges takes the end of one and the start of the other.
    expect(
      ranges({ ranges: ['10.0.0.10-10.0.0.20', '10.0.0.30-10.0.0.40'], exclude: ['10.0.0.18-10.0.0.32'] }),
    ).toEqual(['10.0.0.10-10.0.0.17', '10.0.0.33-10.0.0.40']);
  });

  it('applies an exclusion to its own family only, even where the numbers coincide', () => {
    // 10.0.0.5 and ::a00:5 are the same number, 0x0a000005, in two families.
    const p = compile({ ranges: ['10.0.0.1-10.0.0.9', '::a00:1-::a00:9'], exclude: ['10.0.0.5', '::a00:7'] });
    expect(p.ranges.ipv4.map(formatRange)).toEqual(['10.0.0.1-10.0.0.4', '10.0.0.6-10.0.0.9']);
    expect(p.ranges.ipv6.map(formatRange)).toEqual(['::a00:1-::a00:6', '::a00:8-::a00:9']);
    expect(p.capacity).toEqual({ ipv4: 8n, ipv6: 8n });
  });
});

describe('poolContains', () => {
  const p = compile({ cidr: '10.20.0.0/24', ranges: ['fd00::/120'], exclude: ['10.20.0.1'] });
  it.each([
    ['10.20.0.2', true],
    ['10.20.0.254', true],
    ['10.20.0.1', false],
    ['10.20.0.0', false],
    ['10.20.0.255', false],
    ['10.20.1.2', false],
    ['fd00::ff', true],
    ['fd00::100', false],
  ])('%s: %s', (addr, inside) => {
    expect(poolContains(p, addr.includes(':') ? v6(addr) : v4(addr))).toBe(inside);
  });
});

describe('poolAdmitsNamespace', () => {
  it('admits every namespace without a selector, and follows the selector otherwise', () => {
    expect(poolAdmitsNamespace(pool('open', '10.0.0.0/24'), {})).toBe(true);
    const web = compile({ cidr: '10.0.0.0/24', namespaceSelector: { matchLabels: { team: 'web' } } });
    expect(poolAdmitsNamespace(web, { team: 'web', 'kubernetes.io/metadata.name': 'shop' })).toBe(true);
    expect(poolAdmitsNamespace(web, { team: 'db' })).toBe(false);
    expect(poolAdmitsNamespace(compile({ cidr: '10.0.0.0/24', namespaceSelector: {} }), {})).toBe(true);
  });
});

describe('poolOverlap', () => {
  it('finds a shared range in either family, and nothing for disjoint pools', () => {
    const a = compile({ ranges: ['10.0.0.10-10.0.0.20', 'fd00::10-fd00::20'] }, 'a');
    expect(poolOverlap(a, compile({ ranges: ['10.0.0.15-10.0.0.30'] }, 'b'))).toEqual({
      family: 'ipv4',
      first: toBigInt(v4('10.0.0.15')),
      last: toBigInt(v4('10.0.0.20')),
    });
    const six = poolOverlap(a, compile({ ranges: ['fd00::20-fd00::30'] }, 'c'));
    expect(six && formatRange(six)).toBe('fd00::20');
    expect(poolOverlap(a, compile({ ranges: ['10.0.0.21-10.0.0.30', 'fd00::21'] }, 'd'))).toBeUndefined();
    // An exclusion removes the overlap.
    expect(poolOverlap(a, compile({ cidr: '10.0.0.0/24', exclude: ['10.0.0.10-10.0.0.20'] }, 'e'))).toBeUndefined();
  });
});
