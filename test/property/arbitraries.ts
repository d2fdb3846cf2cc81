// Hostile and ordinary values for every netpin.io/ key, shared by the property tests.
import fc from 'fast-check';
import { ALLOCATED_KEY, KEYS } from '../../src/intent/keys.js';

/** Addresses inside the pools of harness/reviews.ts POOLS, so that allocations and conflicts happen. */
const poolAddress = fc.oneof(
  fc.integer({ min: 0, max: 255 }).map((n) => `10.20.0.${n}`),
  fc.integer({ min: 0, max: 260 }).map((n) => `fd00:20::${n.toString(16)}`),
  fc.integer({ min: 8, max: 21 }).map((n) => `10.30.0.${n}`),
  fc.integer({ min: 0, max: 4 }).map((n) => `10.40.0.${n}`),
);

/** What people and tools write where one address belongs, right or wrong. */
const address = fc.oneof(
  { weight: 6, arbitrary: poolAddress },
  { weight: 1, arbitrary: fc.ipV4() },
  { weight: 1, arbitrary: fc.ipV6() },
  { weight: 1, arbitrary: fc.ipV4Extended() },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      'fe80::1%eth0',
      'fd00:20::5%1',
      'fd00:20::05',
      'FD00:20::5',
      '::ffff:10.20.0.5',
      '0:0:0:0:0:ffff:a14:5',
      '::',
      '0.0.0.0',
      '255.255.255.255',
    ),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '10.20.0.0/24',
      '10.20.0.5/32',
      'fd00:20::/120',
      '10.20.0.5-10.20.0.9',
      '10.1',
      '010.20.0.5',
      '10.20.0.256',
      '1e3.0.0.1',
    ),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '１０.２０.０.５',
      '10.20.0.５',
      '١٠.٢٠.٠.٥',
      '10.20.0.5\u200b',
      ' 10.20.0.5 ',
      '\t',
      '',
    ),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }) },
);

/** Lists with the separators the keys use, duplicates included. */
function listOf(item: fc.Arbitrary<string>, separators: string[]): fc.Arbitrary<string> {
  return fc
    .tuple(fc.array(item, { minLength: 1, maxLength: 4 }), fc.constantFrom(...separators), fc.boolean())
    .map(([items, sep, dup]) => {
      const all = dup ? [...items, items[0]!] : items;
      return all.join(sep);
    });
}

const poolName = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('web', 'web-v6', 'db', 'tiny', 'nope') },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      'Web',
      'web_v6',
      '-web',
      'web.',
      'wéb',
      '网',
      '',
      ' web ',
      'a'.repeat(254),
      'a'.repeat(253),
    ),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 10 }) },
);

const hugeNumber = fc.oneof(
  fc.bigInt({ min: 0n, max: 10n ** 40n }).map(String),
  fc.constantFrom(
    '1' + '0'.repeat(400),
    '9'.repeat(30),
    '1e30',
    '1e31',
    '1E-5',
    '1e+400',
    '0x10',
    'Infinity',
    'NaN',
    '-1',
    '+5',
    '1.5e3',
  ),
);

const rate = fc.oneof(
  fc
    .tuple(
      fc.integer({ min: 0, max: 5000 }),
      fc.constantFrom('', 'k', 'M', 'G', 'T', 'P', 'E', 'Ki', 'Mi', 'm', 'n', 'e3', 'e6', 'E9', 'bps', 'Mbps', ' M'),
    )
    .map(([n, s]) => `${n}${s}`),
  fc.tuple(fc.double({ min: 0, max: 1e4, noNaN: true }), fc.constantFrom('k', 'M', 'G')).map(([n, s]) => `${n}${s}`),
  hugeNumber,
  fc.string({ unit: 'grapheme', maxLength: 8 }),
);

const number = (unit: string) =>
  fc.oneof(
    fc.tuple(fc.integer({ min: 0, max: 1000 }), fc.constantFrom('', unit, ` ${unit}`)).map(([n, u]) => `${n}${u}`),
    fc.tuple(fc.double({ min: 0, max: 200, noNaN: true }), fc.constantFrom('', unit)).map(([n, u]) => `${n}${u}`),
    hugeNumber,
    fc.string({ unit: 'grapheme', maxLength: 6 }),
  );

/** A value for each netpin.io/ key. */
export const VALUES: Record<string, fc.Arbitrary<string>> = {
  [KEYS.ip]: fc.oneof(address, listOf(address, [',', ', ', ';'])),
  [KEYS.ips]: fc.oneof(listOf(address, [',', ';', '; ']), listOf(listOf(address, [',']), [';']), address),
  [KEYS.pool]: fc.oneof(poolName, listOf(poolName, [',', ', '])),
  [KEYS.egressIp]: fc.oneof(address, listOf(address, [','])),
  [KEYS.egressMode]: fc.oneof(
    fc.constantFrom('snat', 'eip', 'SNAT', ' eip', ''),
    fc.string({ unit: 'grapheme', maxLength: 5 }),
  ),
  [KEYS.ingressRate]: rate,
  [KEYS.egressRate]: rate,
  [KEYS.latency]: number('ms'),
  [KEYS.jitter]: number('ms'),
  [KEYS.loss]: number('%'),
  [KEYS.limit]: number(''),
};

/** Keys that look like netpin's but are not, and keys that are not netpin's at all. */
const strayKey = fc.oneof(
  fc.constantFrom(
    'netpin.io/IP',
    'netpin.io/pools',
    'netpin.io/',
    'netpin.io/ip ',
    'netpin.io/égress-ip',
    'netpin.io/网',
    'example.com/x',
  ),
  fc.string({ unit: 'grapheme', maxLength: 8 }).map((s) => `netpin.io/${s}`),
);

/** Annotations with any combination of keys, each with a hostile or ordinary value. */
export const annotations: fc.Arbitrary<Record<string, string>> = fc
  .tuple(
    fc.subarray(Object.keys(VALUES)),
    fc.array(fc.tuple(strayKey, fc.string({ maxLength: 6 })), { maxLength: 2 }),
    fc.oneof(
      { weight: 4, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.constantFrom('10.20.0.9', 'garbage', '10.20.0.9,fd00:20::9') },
    ),
  )
  .chain(([keys, stray, allocated]) =>
    fc.tuple(...keys.map((k) => VALUES[k]!.map((v) => [k, v] as const))).map((pairs) => ({
      ...Object.fromEntries(stray),
      ...(allocated !== undefined && { [ALLOCATED_KEY]: allocated }),
      ...Object.fromEntries(pairs),
    })),
  );
