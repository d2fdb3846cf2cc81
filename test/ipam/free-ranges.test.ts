import { describe, expect, it } from 'vitest';
import { FreeRanges } from '../../src/ipam/free-ranges.js';

const r = (first: number, last: number) => ({ first: BigInt(first), last: BigInt(last) });

/** Every free address in order, walked through nth(). */
function contents(f: FreeRanges): number[] {
  const out: number[] = [];
  for (let i = 0n; ; i++) {
    const a = f.nth(i);
    if (a === undefined) return out;
    out.push(Number(a));
  }
}

/** The widest run of consecutive addresses in a sorted list, the lowest of equals, as largest() reports it. */
function widestRun(sorted: number[]): { first: bigint; last: bigint } | undefined {
  let best: [number, number] | undefined;
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    if (!best || sorted[j]! - sorted[i]! > best[1] - best[0]) best = [sorted[i]!, sorted[j]!];
    i = j + 1;
  }
  return best && { first: BigInt(best[0]), last: BigInt(best[1]) };
}

describe('FreeRanges', () => {
  it('merges overlapping, adjacent and unsorted input intervals', () => {
    const f = new FreeRanges([r(20, 22), r(1, 3), r(4, 5), r(2, 4), r(10, 10), r(21, 21)]);
    expect(contents(f)).toEqual([1, 2, 3, 4, 5, 10, 20, 21, 22]);
    expect(f.size).toBe(9n);
    expect(f.first()).toBe(1n);
    expect(f.largest()).toEqual(r(1, 5));
  });

  it('keeps adjacent input intervals as one run', () => {
    const f = new FreeRanges([r(1, 3), r(4, 5), r(7, 7)]);
    expect(f.largest()).toEqual(r(1, 5));
    expect(f.size).toBe(6n);
  });

  describe('largest', () => {
    it('is the widest free interval, the lowest of equals', () => {
      expect(new FreeRanges([r(1, 2), r(10, 14), r(20, 22)]).largest()).toEqual(r(10, 14));
      expect(new FreeRanges([r(1, 2), r(10, 12), r(20, 22)]).largest()).toEqual(r(10, 12));
      expect(new FreeRanges([r(1, 1), r(5, 5)]).largest()).toEqual(r(1, 1));
      // The width counts, not where the interval lies: a narrow high interval is not the widest.
      expect(new FreeRanges([r(10, 13), r(1000, 1001)]).largest()).toEqual(r(10, 13));
    });

    it('follows takes and puts, and is nothing once every address is taken', () => {
      const f = new FreeRanges([r(1, 4), r(10, 12)]);
      expect(f.take(2n)).toBe(true);
      expect(f.largest()).toEqual(r(10, 12));
      expect(f.put(2n)).toBe(true);
      expect(f.largest()).toEqual(r(1, 4));
      for (const a of [1n, 2n, 3n, 4n, 10n, 11n, 12n]) expect(f.take(a)).toBe(true);
      expect(f.largest()).toBeUndefined();
      expect(new FreeRanges().largest()).toBeUndefined();
    });
  });

  it('is empty without intervals', () => {
    const f = new FreeRanges();
    expect(f.size).toBe(0n);
    expect(f.first()).toBeUndefined();
    expect(f.nth(0n)).toBeUndefined();
    expect(f.take(1n)).toBe(false);
  });

  it('finds the n-th free address across intervals, and nothing past the end', () => {
    const f = new FreeRanges([r(10, 12), r(20, 21), r(30, 30)]);
    expect([0n, 2n, 3n, 4n, 5n].map((n) => f.nth(n))).toEqual([10n, 12n, 20n, 21n, 30n]);
    expect(f.nth(6n)).toBeUndefined();
  });

  describe('take', () => {
    it('takes the lowest, the highest and a middle address, splitting the interval', () => {
      const f = new FreeRanges([r(10, 14)]);
      expect(f.take(10n)).toBe(true);
      expect(f.take(14n)).toBe(true);
      expect(f.take(12n)).toBe(true);
      expect(contents(f)).toEqual([11, 13]);
      expect(f.size).toBe(2n);
      expect(f.first()).toBe(11n);
    });

    it('leaves nothing free once an interval is taken from its top down', () => {
      const f = new FreeRanges([r(5, 7)]);
      for (const a of [7n, 6n, 5n]) expect(f.take(a)).toBe(true);
      expect(f.size).toBe(0n);
      expect(f.first()).toBeUndefined();
      expect(f.largest()).toBeUndefined();
      expect(contents(f)).toEqual([]);
      // And it fills up again as one run.
      for (const a of [6n, 5n, 7n]) expect(f.put(a)).toBe(true);
      expect(f.largest()).toEqual(r(5, 7));
    });

    it('removes a one-address interval', () => {
      const f = new FreeRanges([r(1, 1), r(5, 6)]);
      expect(f.take(1n)).toBe(true);
      expect(f.first()).toBe(5n);
      expect(contents(f)).toEqual([5, 6]);
    });

    it('refuses an address that is not free, leaving the set as it was', () => {
      const f = new FreeRanges([r(1, 3), r(7, 9)]);
      for (const a of [0n, 4n, 6n, 10n]) expect(f.take(a)).toBe(false);
      expect(f.take(2n)).toBe(true);
      expect(f.take(2n)).toBe(false);
      expect(contents(f)).toEqual([1, 3, 7, 8, 9]);
      expect(f.size).toBe(5n);
    });
  });

  describe('put', () => {
    it('makes one run of an address and the intervals it touches', () => {
      // Joined below: 1-4 is now the widest.
      const below = new FreeRanges([r(1, 3), r(10, 12)]);
      expect(below.put(4n)).toBe(true);
      expect(below.largest()).toEqual(r(1, 4));
      // Joined above: 9-12 is now the widest.
      const above = new FreeRanges([r(1, 3), r(10, 12)]);
      expect(above.put(9n)).toBe(true);
      expect(above.largest()).toEqual(r(9, 12));
      // Bridging both: one run of 1-7.
      const both = new FreeRanges([r(1, 3), r(5, 7), r(20, 25)]);
      expect(both.put(4n)).toBe(true);
      expect(both.largest()).toEqual(r(1, 7));
      // Touching neither: a run of its own.
      const alone = new FreeRanges([r(1, 3), r(10, 12)]);
      expect(alone.put(6n)).toBe(true);
      expect(alone.largest()).toEqual(r(1, 3));
      expect(contents(alone)).toEqual([1, 2, 3, 6, 10, 11, 12]);
    });

    it('joins the interval below, the one above, or both', () => {
      const f = new FreeRanges([r(1, 2), r(6, 7)]);
      expect(f.put(3n)).toBe(true); // joins 1-2
      expect(f.put(5n)).toBe(true); // joins 6-7
      expect(contents(f)).toEqual([1, 2, 3, 5, 6, 7]);
      expect(f.put(4n)).toBe(true); // bridges both
      expect(contents(f)).toEqual([1, 2, 3, 4, 5, 6, 7]);
      expect(f.size).toBe(7n);
      // The merged interval splits again cleanly.
      expect(f.take(4n)).toBe(true);
      expect(contents(f)).toEqual([1, 2, 3, 5, 6, 7]);
    });

    it('adds an isolated address before, between and after the intervals', () => {
      const f = new FreeRanges([r(10, 11), r(20, 21)]);
      expect(f.put(5n)).toBe(true);
      expect(f.put(15n)).toBe(true);
      expect(f.put(30n)).toBe(true);
      expect(contents(f)).toEqual([5, 10, 11, 15, 20, 21, 30]);
      expect(f.first()).toBe(5n);
      expect(f.size).toBe(7n);
    });

    it('refuses an address that is already free', () => {
      const f = new FreeRanges([r(1, 3)]);
      expect(f.put(1n)).toBe(false);
      expect(f.put(3n)).toBe(false);
      expect(f.size).toBe(3n);
    });
  });

  it('handles IPv6-sized numbers', () => {
    const base = 0xfd00n << 112n;
    const f = new FreeRanges([{ first: base, last: base + (1n << 64n) - 1n }]);
    expect(f.size).toBe(1n << 64n);
    expect(f.take(base)).toBe(true);
    expect(f.first()).toBe(base + 1n);
    expect(f.nth((1n << 64n) - 2n)).toBe(base + (1n << 64n) - 1n);
    expect(f.put(base)).toBe(true);
    expect(f.size).toBe(1n << 64n);
  });

  it('agrees with a Set-based model over thousands of random takes and puts', () => {
    // A fixed-seed generator, so that a failure replays.
    let seed = 0x9e3779b9;
    const rand = (n: number) => {
      seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
      return seed % n;
    };
    const base = 1n << 100n;
    const universe = 300;
    const initial = [r(0, 40), r(45, 45), r(50, 120), r(200, 260)];
    const model = new Set<number>();
    for (const { first, last } of initial) for (let a = Number(first); a <= Number(last); a++) model.add(a);
    const f = new FreeRanges(initial.map(({ first, last }) => ({ first: base + first, last: base + last })));

    for (let step = 0; step < 4000; step++) {
      const a = rand(universe + 10) - 5;
      if (rand(2) === 0) {
        expect(f.take(base + BigInt(a))).toBe(model.delete(a));
      } else {
        const wasFree = model.has(a);
        model.add(a);
        expect(f.put(base + BigInt(a))).toBe(!wasFree);
      }
      const sorted = [...model].sort((x, y) => x - y);
      expect(f.size).toBe(BigInt(sorted.length));
      expect(f.first()).toBe(sorted.length ? base + BigInt(sorted[0]!) : undefined);
      const k = rand(sorted.length + 2);
      expect(f.nth(BigInt(k))).toBe(k < sorted.length ? base + BigInt(sorted[k]!) : undefined);
      const probe = rand(universe + 10) - 5;
      expect(f.has(base + BigInt(probe))).toBe(model.has(probe));
      const widest = widestRun(sorted);
      expect(f.largest()).toEqual(widest && { first: base + widest.first, last: base + widest.last });
    }
    expect(contents(f).length).toBe(model.size);
  });

  it('agrees with the model under first-fit churn, which moves the front back and forth', () => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
      return seed % n;
    };
    const universe = 2000;
    const f = new FreeRanges([{ first: 0n, last: BigInt(universe - 1) }]);
    const model = new Set<number>(Array.from({ length: universe }, (_, i) => i));
    const held: number[] = [];
    for (let step = 0; step < 6000; step++) {
      const op = rand(3);
      if (op < 2 && model.size > 0) {
        // Allocation takes the lowest free address, as claimNext does.
        const lowest = Math.min(...model);
        expect(f.first()).toBe(BigInt(lowest));
        expect(f.take(BigInt(lowest))).toBe(true);
        model.delete(lowest);
        held.push(lowest);
      } else if (held.length > 0) {
        const a = held.splice(rand(held.length), 1)[0]!;
        expect(f.put(BigInt(a))).toBe(true);
        model.add(a);
      }
      expect(f.size).toBe(BigInt(model.size));
      if (step % 10 === 0) expect(f.largest()).toEqual(widestRun([...model].sort((x, y) => x - y)));
    }
    const sorted = [...model].sort((x, y) => x - y);
    expect(contents(f)).toEqual(sorted);
    expect(f.largest()).toEqual(widestRun(sorted));
  });
});
