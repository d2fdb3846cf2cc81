// Issue 20, attack 2: what parseIntent does with a hostile request is bounded by netpin's keys, not by
// the request: values are repeated cut, keys past the ones netpin has are not read, lists are capped.
import { describe, expect, it } from 'vitest';
import { KEYS, KNOWN_KEY_COUNT, nearestKey } from '../../src/intent/keys.js';
import { parseIntent, parseRate } from '../../src/intent/parse.js';

const MiB = 1 << 20;
const unknownKeys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`netpin.io/x-${i}`, 'v']));

describe('a value netpin refuses is repeated cut', () => {
  // Each refusal that quotes the value, with a megabyte that breaks it.
  it.each([
    [KEYS.ip, 'x'.repeat(MiB)],
    [KEYS.ip, `${'1'.repeat(MiB)},10.0.0.1`],
    [KEYS.ip, `10.0.0.1,10.0.0.2${' '.repeat(MiB)}`],
    [KEYS.ip, `10.0.0.1,10.0.0.2,${'1'.repeat(MiB)}`],
    [KEYS.ips, `10.0.0.1;${'x'.repeat(MiB)}`],
    [KEYS.ips, `10.0.0.1,${'x'.repeat(MiB)}`],
    [KEYS.ips, `10.0.0.1;;${'1'.repeat(MiB)}`],
    [KEYS.ips, `10.0.0.1,fd00::1,10.0.0.2${'0'.repeat(MiB)}`],
    [KEYS.ips, `10.0.0.1,fd00::1,${'10.0.0.2,'.repeat(9_000)}10.0.0.3`],
    [KEYS.pool, `${'a'.repeat(MiB)}!`],
    [KEYS.pool, `${'a'.repeat(200)},${'a'.repeat(200)}`],
    [KEYS.egressIp, 'x'.repeat(MiB)],
    [KEYS.egressMode, 'x'.repeat(MiB)],
    [KEYS.egressRate, 'x'.repeat(MiB)],
    [KEYS.egressRate, ` ${'1'.repeat(MiB)}`],
    [KEYS.ingressRate, '1'.repeat(MiB)],
    [KEYS.ingressRate, `0.${'0'.repeat(MiB)}1`],
    [KEYS.latency, 'x'.repeat(MiB)],
    [KEYS.jitter, 'x'.repeat(MiB)],
    [KEYS.loss, 'x'.repeat(MiB)],
    [KEYS.limit, 'x'.repeat(MiB)],
  ])('%s', (key, value) => {
    const { problems } = parseIntent({ [key]: value, ...(key === KEYS.egressMode && { [KEYS.egressPool]: 'out' }) });
    expect(problems.map((p) => p.key)).toEqual([key]);
    expect(problems[0]!.message.length).toBeLessThan(300);
    expect(problems[0]!.message).toMatch(/… \(\d+ characters\)|more than|longer than/);
  });

  it('and so is a key netpin does not know', () => {
    const key = `netpin.io/${'x'.repeat(MiB)}`;
    const [p, ...more] = parseIntent({ [key]: 'v' }).problems;
    expect(more).toEqual([]);
    expect(p!.message).toBe(`"${key.slice(0, 64)}"… (${key.length} characters) is not a netpin key`);
  });

  it('a rate longer than any is refused before it is read as a number', () => {
    expect(parseRate('1'.repeat(65))).toBe(
      `"${'1'.repeat(64)}"… (65 characters) is longer than any rate netpin accepts (64 characters at most)`,
    );
    // The longest sane spelling is still read.
    expect(parseRate(`1000000000000.${'0'.repeat(50)}`)).toMatchObject({ bitsPerSecond: 10n ** 12n });
  });
});

describe('parsing stops past the keys netpin has', () => {
  it(`reads ${KNOWN_KEY_COUNT} netpin.io/ keys, each its own problem`, () => {
    const { problems } = parseIntent(unknownKeys(KNOWN_KEY_COUNT));
    expect(problems).toHaveLength(KNOWN_KEY_COUNT);
  });

  it('past them, says how many there are, once, and reads no value', () => {
    for (const n of [KNOWN_KEY_COUNT + 1, 200_000]) {
      const { intent, problems } = parseIntent({ ...unknownKeys(n), [KEYS.pool]: 'web' });
      expect(intent).toEqual({});
      expect(problems).toEqual([
        {
          key: 'netpin.io/x-0',
          message: `is one of ${n + 1} netpin.io/ annotations, and netpin has only ${KNOWN_KEY_COUNT} keys; netpin read no further`,
          fix: expect.stringContaining(`The keys are ${KEYS.ip}, ${KEYS.ips}`),
        },
      ]);
    }
  });

  it('counts the keys netpin records among those it has: a pod of its own is never over', () => {
    const own = { 'netpin.io/allocated': '10.0.0.5', 'netpin.io/egress-allocated': '203.0.113.1' };
    const all = Object.fromEntries(Object.values(KEYS).map((k) => [k, 'x']));
    expect(parseIntent({ ...all, ...own }).problems.length).toBeGreaterThan(1);
  });

  it('compares a key by its first characters only: a megabyte of key costs no edit distance', () => {
    const started = performance.now();
    expect(nearestKey(`netpin.io/egress-pol${'x'.repeat(4 * MiB)}`)).toBe(KEYS.egressPool);
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});

describe('a list of addresses', () => {
  const list = (n: number, separator: string) =>
    Array.from({ length: n }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`).join(separator);

  it('may have 10 000 entries, as many as a StatefulSet reserves', () => {
    expect(parseIntent({ [KEYS.ips]: list(10_000, ';') }).intent.ips).toHaveLength(10_000);
  });

  it.each([';', ','])('is refused past them, before its addresses are read (%j)', (separator) => {
    expect(parseIntent({ [KEYS.ips]: list(10_001, separator) }).problems).toEqual([
      {
        key: KEYS.ips,
        message: 'more than 10000 entries are listed, more than the replicas netpin pins',
        fix: expect.any(String),
      },
    ]);
  });
});
