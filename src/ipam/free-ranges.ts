/**
 * The free addresses of one pool family, as sorted disjoint inclusive intervals.
 *
 * Taking or returning a given address is a binary search plus at most one splice,
 * so the cost of an allocation does not grow as the pool fills up (a /16 at 99 %
 * costs what it costs at 1 %), and IPv6 pools of any size cost no more than their
 * fragmentation. First-fit churn works at the front, where intervals come and go
 * without a splice: the arrays keep spare slots before `head`.
 */
export class FreeRanges {
  // Parallel arrays of interval bounds (fewer objects than an array of pairs);
  // the live intervals are those from `head` on.
  private los: bigint[] = [];
  private his: bigint[] = [];
  private head = 0;
  private free = 0n;

  constructor(intervals: ReadonlyArray<{ first: bigint; last: bigint }> = []) {
    for (const r of [...intervals].sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0))) {
      this.addInterval(r.first, r.last);
    }
  }

  get size(): bigint {
    return this.free;
  }

  /** The lowest free address, without taking it. */
  first(): bigint | undefined {
    return this.head < this.los.length ? this.los[this.head] : undefined;
  }

  /** The n-th free address in order (0-based), or undefined past the end. */
  nth(n: bigint): bigint | undefined {
    for (let i = this.head; i < this.los.length; i++) {
      const lo = this.los[i]!;
      const width = this.his[i]! - lo + 1n;
      if (n < width) return lo + n;
      n -= width;
    }
    return undefined;
  }

  /** The widest free interval, the lowest of equals; undefined when nothing is free. */
  largest(): { first: bigint; last: bigint } | undefined {
    let best: { first: bigint; last: bigint } | undefined;
    for (let i = this.head; i < this.los.length; i++) {
      if (!best || this.his[i]! - this.los[i]! > best.last - best.first)
        best = { first: this.los[i]!, last: this.his[i]! };
    }
    return best;
  }

  has(addr: bigint): boolean {
    return this.find(addr) >= 0;
  }

  /** Marks one address used; false when it was not free. */
  take(addr: bigint): boolean {
    const i = this.find(addr);
    if (i < 0) return false;
    const lo = this.los[i]!;
    const hi = this.his[i]!;
    if (lo === hi) this.removeAt(i);
    else if (addr === lo) this.los[i] = lo + 1n;
    else if (addr === hi) this.his[i] = hi - 1n;
    else {
      this.his[i] = addr - 1n;
      this.insertAt(i + 1, addr + 1n, hi);
    }
    this.free -= 1n;
    return true;
  }

  /** Returns an address to the free set; false when it was already free. */
  put(addr: bigint): boolean {
    // Index of the first interval starting above addr.
    let lo = this.head;
    let hi = this.los.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.los[mid]! <= addr) lo = mid + 1;
      else hi = mid;
    }
    const prev = lo - 1;
    const hasPrev = prev >= this.head;
    if (hasPrev && this.his[prev]! >= addr) return false;
    const joinsPrev = hasPrev && this.his[prev]! + 1n === addr;
    const joinsNext = lo < this.los.length && this.los[lo]! - 1n === addr;
    if (joinsPrev && joinsNext) {
      this.his[prev] = this.his[lo]!;
      this.removeAt(lo);
    } else if (joinsPrev) {
      this.his[prev] = addr;
    } else if (joinsNext) {
      this.los[lo] = addr;
    } else {
      this.insertAt(lo, addr, addr);
    }
    this.free += 1n;
    return true;
  }

  private removeAt(i: number): void {
    if (i === this.head) {
      this.head++;
      return;
    }
    this.los.splice(i, 1);
    this.his.splice(i, 1);
  }

  /** Inserts an interval so that it becomes the one at index i. */
  private insertAt(i: number, lo: bigint, hi: bigint): void {
    if (i === this.head) {
      if (this.head === 0) {
        // No room at the front: make some, in proportion, so that front churn stays O(1) amortized.
        const pad = new Array<bigint>(Math.max(16, this.los.length >> 1)).fill(0n);
        this.los = pad.concat(this.los);
        this.his = pad.concat(this.his);
        this.head = pad.length;
      }
      this.head--;
      this.los[this.head] = lo;
      this.his[this.head] = hi;
      return;
    }
    this.los.splice(i, 0, lo);
    this.his.splice(i, 0, hi);
  }

  private addInterval(first: bigint, last: bigint): void {
    const n = this.los.length;
    if (n > this.head && this.his[n - 1]! + 1n >= first) {
      // Overlapping or adjacent ranges in the input merge.
      const prevHi = this.his[n - 1]!;
      if (last > prevHi) {
        this.free += last - prevHi;
        this.his[n - 1] = last;
      }
      return;
    }
    this.los.push(first);
    this.his.push(last);
    this.free += last - first + 1n;
  }

  private find(addr: bigint): number {
    let lo = this.head;
    let hi = this.los.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.his[mid]! < addr) lo = mid + 1;
      else if (this.los[mid]! > addr) hi = mid - 1;
      else return mid;
    }
    return -1;
  }
}
