import { describe, expect, it } from 'vitest';
import { formatQuantity, isWhole, parseQuantity, wholeValue } from '../../src/intent/quantity.js';

const value = (text: string) => {
  const q = parseQuantity(text);
  return q && `${q.num}/${q.den}`;
};

describe('parseQuantity', () => {
  it.each([
    ['10', '10/1'],
    ['10M', '10000000/1'],
    ['1500k', '1500000/1'],
    ['1.5M', '15000000/10'],
    ['1.', '1/1'],
    ['.5G', '5000000000/10'],
    ['+3k', '3000/1'],
    ['-2k', '-2000/1'],
    ['1Ki', '1024/1'],
    ['2Mi', '2097152/1'],
    ['1Gi', `${2 ** 30}/1`],
    ['1P', `${10n ** 15n}/1`],
    ['2E', `${2n * 10n ** 18n}/1`],
    ['1e3', '1000/1'],
    ['1E3', '1000/1'],
    ['5e-1', '5/10'],
    ['1500m', '1500/1000'],
    ['3u', '3/1000000'],
    ['7n', '7/1000000000'],
  ])('reads %s exactly as %s', (text, fraction) => {
    expect(value(text)).toBe(fraction);
  });

  it.each(['', '10Mbps', '10 M', 'M', '1.2.3', '1KI', '1ki', '0x10', '1e', '1e999', 'ten', '10MB', '--1'])(
    'refuses %j',
    (text) => {
      expect(parseQuantity(text)).toBeUndefined();
    },
  );
});

describe('isWhole and wholeValue', () => {
  it.each([
    ['1.5k', true, 1500n],
    ['1500m', false, 1n],
    ['2000m', true, 2n],
    ['0.5', false, 0n],
    ['1Mi', true, 1_048_576n],
  ])('%s is whole: %s', (text, whole, n) => {
    const q = parseQuantity(text)!;
    expect(isWhole(q)).toBe(whole);
    expect(wholeValue(q)).toBe(n);
  });
});

describe('formatQuantity', () => {
  it.each([
    [0n, '0'],
    [999n, '999'],
    [1000n, '1k'],
    [1024n, '1024'],
    [1_500_000n, '1500k'],
    [10_000_000n, '10M'],
    [10n ** 15n, '1P'],
    [2n * 10n ** 15n, '2P'],
    [10n ** 18n, '1000P'],
  ])('writes %s as %s', (n, text) => {
    expect(formatQuantity(n)).toBe(text);
    // What it writes reads back to the same number.
    expect(wholeValue(parseQuantity(text)!)).toBe(n);
  });
});
