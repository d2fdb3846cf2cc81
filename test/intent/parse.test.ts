import { describe, expect, it } from 'vitest';
import { ALLOCATED_KEY, hasIntentKeys, isIntentKey, KEYS, nearestKey } from '../../src/intent/keys.js';
import { parseDual, parseIntent, parseRate } from '../../src/intent/parse.js';
import { needsAddress, type Intent } from '../../src/intent/types.js';
import { formatDual } from '../../src/net/address.js';

/** The intent with addresses as text, for readable expectations. */
function readable(intent: Intent): Record<string, unknown> {
  const out: Record<string, unknown> = { ...intent };
  if (intent.ip) out.ip = formatDual(intent.ip);
  if (intent.ips) out.ips = intent.ips.map(formatDual);
  if (intent.egress) out.egress = { ip: intent.egress.ip && formatDual(intent.egress.ip), mode: intent.egress.mode };
  return out;
}

const parsed = (a: Record<string, string>) => {
  const { intent, problems } = parseIntent(a);
  expect(problems).toEqual([]);
  return readable(intent);
};

/** The one problem parseIntent finds. */
const problem = (a: Record<string, string>) => {
  const { problems } = parseIntent(a);
  expect(problems).toHaveLength(1);
  return problems[0]!;
};

describe('parseIntent', () => {
  it('reads nothing from no annotations, and ignores keys outside netpin.io/ and netpin.io/allocated', () => {
    expect(parseIntent(undefined)).toEqual({ intent: {}, problems: [] });
    expect(
      parsed({ 'app.kubernetes.io/name': 'x', [ALLOCATED_KEY]: '10.0.0.1', 'kubernetes.io/egress-bandwidth': 'junk' }),
    ).toEqual({});
  });

  it('reads every key', () => {
    expect(
      parsed({
        'netpin.io/ip': ' 10.20.0.7 , fd00:20::7 ',
        'netpin.io/pool': 'web, web-v6',
        'netpin.io/egress-ip': '203.0.113.10',
        'netpin.io/egress-mode': 'eip',
        'netpin.io/ingress-rate': '10M',
        'netpin.io/egress-rate': '1.5G',
        'netpin.io/latency': '10ms',
        'netpin.io/jitter': '2.5',
        'netpin.io/loss': '0.5%',
        'netpin.io/limit': '1000',
      }),
    ).toEqual({
      ip: '10.20.0.7,fd00:20::7',
      pools: ['web', 'web-v6'],
      egress: { ip: '203.0.113.10', mode: 'eip' },
      ingressRate: { text: '10M', bitsPerSecond: 10_000_000n },
      egressRate: { text: '1.5G', bitsPerSecond: 1_500_000_000n },
      latencyMs: 10,
      jitterMs: 2.5,
      lossPercent: 0.5,
      limitPackets: 1000,
    });
  });

  it('defaults the egress mode to snat', () => {
    expect(parsed({ 'netpin.io/egress-ip': '203.0.113.10,2001:db8::10' })).toEqual({
      egress: { ip: '203.0.113.10,2001:db8::10', mode: 'snat' },
    });
  });

  describe('netpin.io/ips', () => {
    it.each([
      ['10.20.0.5,10.20.0.6', ['10.20.0.5', '10.20.0.6']],
      ['10.20.0.5;10.20.0.6', ['10.20.0.5', '10.20.0.6']],
      ['fd00::5, fd00::6', ['fd00::5', 'fd00::6']],
      ['10.20.0.5,fd00::5', ['10.20.0.5,fd00::5']],
      ['10.20.0.5,fd00::5;10.20.0.6,fd00::6', ['10.20.0.5,fd00::5', '10.20.0.6,fd00::6']],
      ['fd00::5,10.20.0.5;fd00::6,10.20.0.6', ['10.20.0.5,fd00::5', '10.20.0.6,fd00::6']],
    ])('reads %s as entries %j', (text, entries) => {
      expect(parsed({ 'netpin.io/ips': text }).ips).toEqual(entries);
    });

    it.each([
      ['10.20.0.5;', 'has an empty entry'],
      ['10.20.0.5,10.20.0.x', '"10.20.0.x" is not an IP address'],
      ['10.20.0.5,fd00::5,10.20.0.6', 'mixes IPv4 and IPv6 without ";" between entries'],
      ['10.20.0.5,fd00::5;10.20.0.6', 'every entry must have the same families'],
      ['10.20.0.5;10.20.0.5', '10.20.0.5 is listed twice'],
      ['10.20.0.5,10.20.0.6;10.20.0.7', 'has two IPv4 addresses'],
    ])('refuses %s', (text, message) => {
      const p = problem({ 'netpin.io/ips': text });
      expect(p.key).toBe('netpin.io/ips');
      expect(p.message).toContain(message);
      expect(p.fix).toContain('separate entries with ";"');
    });

    it('refuses netpin.io/ip and netpin.io/ips together', () => {
      expect(problem({ 'netpin.io/ip': '10.0.0.1', 'netpin.io/ips': '10.0.0.2' })).toMatchObject({
        key: 'netpin.io/ips',
        message: 'netpin.io/ip and netpin.io/ips are both set',
      });
    });
  });

  it.each<[string, Record<string, string>, string, string]>([
    [
      'an address that is not one',
      { 'netpin.io/ip': '10.0.0.256' },
      'netpin.io/ip',
      '"10.0.0.256" is not an IP address',
    ],
    ['two IPv4 addresses', { 'netpin.io/ip': '10.0.0.1,10.0.0.2' }, 'netpin.io/ip', 'has two IPv4 addresses'],
    ['three addresses', { 'netpin.io/ip': '10.0.0.1,fd00::1,10.0.0.2' }, 'netpin.io/ip', 'has 3 addresses'],
    ['a pool name with capitals', { 'netpin.io/pool': 'Web' }, 'netpin.io/pool', '"Web" is not an IPPool name'],
    ['an empty pool name', { 'netpin.io/pool': 'web,' }, 'netpin.io/pool', '"" is not an IPPool name'],
    ['three pools', { 'netpin.io/pool': 'a,b,c' }, 'netpin.io/pool', '3 pools are named'],
    ['a pool named twice', { 'netpin.io/pool': 'a, a' }, 'netpin.io/pool', 'pool "a" is named twice'],
    [
      'an unknown egress mode',
      { 'netpin.io/egress-ip': '203.0.113.10', 'netpin.io/egress-mode': 'nat' },
      'netpin.io/egress-mode',
      '"nat" is not an egress mode',
    ],
    [
      'an egress mode alone',
      { 'netpin.io/egress-mode': 'snat' },
      'netpin.io/egress-mode',
      'is set without netpin.io/egress-ip',
    ],
    ['a bad egress IP', { 'netpin.io/egress-ip': 'gateway' }, 'netpin.io/egress-ip', '"gateway" is not an IP address'],
    [
      'a rate with a unit',
      { 'netpin.io/egress-rate': '10Mbps' },
      'netpin.io/egress-rate',
      '"10Mbps" is not a Kubernetes quantity',
    ],
    [
      'a rate below 1k',
      { 'netpin.io/ingress-rate': '500' },
      'netpin.io/ingress-rate',
      '"500" (500 bit/s) is outside 1k..1P bits per second',
    ],
    ['a rate above 1P', { 'netpin.io/ingress-rate': '2P' }, 'netpin.io/ingress-rate', 'is outside 1k..1P'],
    [
      'a rate with a space before it',
      { 'netpin.io/ingress-rate': ' 10M' },
      'netpin.io/ingress-rate',
      '" 10M" has white space around it, which a Kubernetes quantity may not have',
    ],
    [
      'a rate with a line break after it',
      { 'netpin.io/egress-rate': '10M\n' },
      'netpin.io/egress-rate',
      '"10M\\n" has white space around it',
    ],
    [
      'a fractional rate',
      { 'netpin.io/egress-rate': '1500500m' },
      'netpin.io/egress-rate',
      'is not a whole number of bits per second',
    ],
    [
      'a latency with another unit',
      { 'netpin.io/latency': '1s' },
      'netpin.io/latency',
      '"1s" is not a duration in milliseconds',
    ],
    ['a negative jitter', { 'netpin.io/jitter': '-1' }, 'netpin.io/jitter', 'is not a duration in milliseconds'],
    ['a loss above 100', { 'netpin.io/loss': '101%' }, 'netpin.io/loss', 'is not a percentage from 0 to 100'],
    ['a zero limit', { 'netpin.io/limit': '0' }, 'netpin.io/limit', 'is not a whole number of packets'],
    ['a fractional limit', { 'netpin.io/limit': '1.5' }, 'netpin.io/limit', 'is not a whole number of packets'],
  ])('refuses %s', (_, annotations, key, message) => {
    const p = problem(annotations);
    expect(p.key).toBe(key);
    expect(p.message).toContain(message);
    expect(p.fix.length).toBeGreaterThan(10);
  });

  it('explains the rate unit in the fix', () => {
    expect(problem({ 'netpin.io/egress-rate': '10Mbps' }).fix).toBe(
      'write bits per second as a Kubernetes quantity between 1k and 1P, such as 500k, 10M or 1G (no "bps", no spaces)',
    );
  });

  it.each([
    ['netpin.io/pol', 'netpin.io/pool'],
    ['netpin.io/pools', 'netpin.io/pool'],
    ['netpin.io/egress-rat', 'netpin.io/egress-rate'],
    ['netpin.io/egressip', 'netpin.io/egress-ip'],
    ['netpin.io/latancy', 'netpin.io/latency'],
  ])('names the nearest valid key for the typo %s', (typo, nearest) => {
    const p = problem({ [typo]: 'x' });
    expect(p.key).toBe(typo);
    expect(p.message).toBe(`"${typo}" is not a netpin key`);
    expect(p.fix).toContain(`did you mean "${nearest}"?`);
    expect(nearestKey(typo)).toBe(nearest);
  });

  // Found by test/property: Number() rounded these, and 1e400 digits became Infinity, rendered as is.
  it.each([
    ['netpin.io/limit', '9007199254740993'],
    ['netpin.io/latency', '1' + '0'.repeat(400)],
    ['netpin.io/jitter', '99999999999999999ms'],
  ])('refuses %s %s, a number it could not keep exactly', (key, value) => {
    expect(problem({ 'netpin.io/latency': '5', [key]: value }).key).toBe(key);
  });

  it('reports every problem at once', () => {
    const { problems } = parseIntent({ 'netpin.io/pol': 'web', 'netpin.io/ip': 'x', 'netpin.io/loss': '200' });
    expect(problems.map((p) => p.key)).toEqual(['netpin.io/pol', 'netpin.io/ip', 'netpin.io/loss']);
  });
});

describe('keys', () => {
  it('knows the intent keys, and that netpin.io/allocated is none', () => {
    expect(Object.values(KEYS).every(isIntentKey)).toBe(true);
    expect(isIntentKey(ALLOCATED_KEY)).toBe(false);
    expect(hasIntentKeys(undefined)).toBe(false);
    expect(hasIntentKeys({ [ALLOCATED_KEY]: '10.0.0.1', 'other.io/x': 'y' })).toBe(false);
    // A typo is still a netpin key to look at, so that it can be refused.
    expect(hasIntentKeys({ 'netpin.io/pol': 'web' })).toBe(true);
  });
});

describe('parseDual and parseRate', () => {
  it('puts each address under its family', () => {
    const d = parseDual('fd00::1, 10.0.0.1');
    expect(typeof d !== 'string' && [d.ipv4?.toString(), d.ipv6?.toString()]).toEqual(['10.0.0.1', 'fd00::1']);
    expect(parseDual('fd00::1,fd00::2')).toBe(
      '"fd00::1,fd00::2" has two IPv6 addresses; at most one per family is allowed',
    );
  });

  it('accepts the bounds containerd accepts', () => {
    expect(parseRate('1k')).toEqual({ text: '1k', bitsPerSecond: 1000n });
    expect(parseRate('1P')).toEqual({ text: '1P', bitsPerSecond: 10n ** 15n });
    expect(parseRate('999')).toContain('outside 1k..1P');
    expect(parseRate('1000001G')).toContain('outside 1k..1P');
  });

  it('reads untrimmed, as containerd does: white space around the quantity fails the sandbox', () => {
    for (const text of [' 10M', '10M ', '\t10M', '10M\n', '10M\r\n', '\u00a010M'])
      expect(parseRate(text)).toBe(
        `${JSON.stringify(text)} has white space around it, which a Kubernetes quantity may not have`,
      );
    expect(parseRate('10 M')).toBe('"10 M" is not a Kubernetes quantity');
  });
});

describe('needsAddress', () => {
  it('is true for ip, ips and pool only', () => {
    expect(needsAddress(parseIntent({ 'netpin.io/pool': 'web' }).intent)).toBe(true);
    expect(needsAddress(parseIntent({ 'netpin.io/ips': '10.0.0.1' }).intent)).toBe(true);
    expect(needsAddress(parseIntent({ 'netpin.io/egress-ip': '10.0.0.1', 'netpin.io/egress-rate': '1M' }).intent)).toBe(
      false,
    );
  });
});
