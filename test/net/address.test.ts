import { describe, expect, it } from 'vitest';
import {
  familyOf,
  formatRange,
  fromBigInt,
  parseAddress,
  parseRange,
  rangeWithin,
  toBigInt,
  type AddressRange,
} from '../../src/net/address.js';
import { v4, v6 } from '../cni/fixtures.js';

describe('addresses as integers', () => {
  it.each(['0.0.0.0', '10.20.0.7', '255.255.255.255', '::', 'fd00:20::7', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'])(
    'round-trips %s',
    (text) => {
      const addr = text.includes(':') ? v6(text) : v4(text);
      expect(fromBigInt(toBigInt(addr), familyOf(addr)).toString()).toBe(text);
    },
  );

  it('orders addresses numerically', () => {
    expect(toBigInt(v4('10.0.0.255')) + 1n).toBe(toBigInt(v4('10.0.1.0')));
    expect(toBigInt(v4('10.20.0.7'))).toBe(0x0a140007n);
    expect(toBigInt(v6('::1:0'))).toBe(0x10000n);
  });
});

describe('parseAddress', () => {
  it.each([
    ['10.0.0.5', '10.0.0.5'],
    [' 10.0.0.5 ', '10.0.0.5'],
    ['FD00:0:0:0:0:0:0:5', 'fd00::5'],
  ])('parses %j as %s', (text, canonical) => {
    expect(parseAddress(text)?.toString()).toBe(canonical);
  });

  it.each(['10.1', '010.0.0.1', '0x0a.0.0.1', '10.0.0.256', '::ffff:10.0.0.1', 'fe80::1%eth0', 'fd00::/64', '', 'web'])(
    'refuses %j, as Kubernetes and the CNIs do',
    (text) => {
      expect(parseAddress(text)).toBeUndefined();
    },
  );

  // inet_aton's forms, which ipaddr.js reads and Kubernetes (netip.ParseAddr) does not: one address, many spellings.
  it.each([
    '169082889', // 10.20.0.9 as one number
    '0xa140009',
    '0',
    '4294967295',
    '012',
    '10.20.9', // the last part is 16 bits
    '10.1312777', // 24 bits
    '0x0a.0x14.0.9',
    '10.20.0.09',
    '64:ff9b::010.20.0.9', // an IPv6 address's IPv4 tail, likewise
    '64:ff9b::0x0a.20.0.9',
    '64:ff9b::10.20.9',
  ])('refuses %j: IPv4 is four decimal parts without leading zeros', (text) => {
    expect(parseAddress(text)).toBeUndefined();
  });

  it.each([
    ['0.0.0.0', '0.0.0.0'],
    ['10.20.0.9', '10.20.0.9'],
    ['64:ff9b::10.20.0.9', '64:ff9b::a14:9'],
  ])('still reads %j', (text, canonical) => {
    expect(parseAddress(text)?.toString()).toBe(canonical);
  });
});

describe('parseRange', () => {
  const text = (t: string, drop = true) => {
    const r = parseRange(t, drop);
    return typeof r === 'string' ? r : `${r.family} ${formatRange(r)}`;
  };

  it('drops the network and broadcast addresses of an IPv4 pool CIDR, and only there', () => {
    expect(text('10.20.0.0/24')).toBe('ipv4 10.20.0.1-10.20.0.254');
    expect(text('10.20.0.0/24', false)).toBe('ipv4 10.20.0.0-10.20.0.255');
    expect(text('10.20.0.0/31')).toBe('ipv4 10.20.0.0-10.20.0.1');
    expect(text('10.20.0.9/32')).toBe('ipv4 10.20.0.9');
  });

  it('drops the subnet-router anycast (all-zeros) address of an IPv6 pool CIDR wider than /127, and only there', () => {
    expect(text('fd00:20::/120')).toBe('ipv6 fd00:20::1-fd00:20::ff');
    expect(text('fd00:20::/120', false)).toBe('ipv6 fd00:20::-fd00:20::ff');
    expect(text('fd00:20::-fd00:20::ff')).toBe('ipv6 fd00:20::-fd00:20::ff');
  });

  it('reads first-last ranges and single addresses', () => {
    expect(text('10.30.0.10-10.30.0.19')).toBe('ipv4 10.30.0.10-10.30.0.19');
    expect(text(' 10.30.0.10 - 10.30.0.10 ')).toBe('ipv4 10.30.0.10');
    expect(text('fd00::1-fd00::5')).toBe('ipv6 fd00::1-fd00::5');
    expect(text('10.20.0.1')).toBe('ipv4 10.20.0.1');
  });

  it.each([
    ['10.20.0.5/24', '"10.20.0.5/24" has host bits set; the network is 10.20.0.0/24'],
    ['fd00::1/64', '"fd00::1/64" has host bits set; the network is fd00::/64'],
    ['10.20.0.0/33', '"10.20.0.0/33" is not a CIDR'],
    ['10.20.0/24', '"10.20.0/24" is not a CIDR'],
    ['banana/24', '"banana/24" is not a CIDR'],
    ['10.0.0.9-10.0.0.1', '"10.0.0.9-10.0.0.1" ends before it starts'],
    ['10.0.0.1-fd00::1', '"10.0.0.1-fd00::1" mixes IPv4 and IPv6'],
    ['10.0.0.1-', '"10.0.0.1-" is not a range of two addresses'],
    ['nope', '"nope" is not an address, a range or a CIDR'],
  ])('says what is wrong with %s', (input, message) => {
    expect(parseRange(input, true)).toBe(message);
  });
});

describe('rangeWithin', () => {
  const range = (text: string) => parseRange(text, false) as AddressRange;

  it.each([
    ['10.0.0.10-10.0.0.20', '10.0.0.0/24', true],
    ['10.0.0.0/24', '10.0.0.0/24', true],
    ['10.0.0.5', '10.0.0.5', true],
    ['10.0.0.250-10.0.1.5', '10.0.0.0/24', false],
    ['10.0.0.0/23', '10.0.0.0/24', false],
    ['fd00::5', 'fd00::/64', true],
    ['::a00:5', '10.0.0.0/24', false],
  ])('%s within %s: %s', (inner, outer, within) => {
    expect(rangeWithin(range(inner), range(outer))).toBe(within);
  });
});
