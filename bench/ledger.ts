// Part 2: the cost of one allocation as a /16 pool fills (1 %, 50 %, 99 %), and the memory of a claim.
//
// The measurements run in a child process started with --expose-gc, so that each case starts from
// a collected heap and the heap deltas mean something; the runner only starts it and reads its JSON.
// Run alone: node --expose-gc dist/bench/ledger.js --child
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseIntent } from '../src/intent/parse.js';
import { fromBigInt, type Address } from '../src/net/address.js';
import { Allocator } from '../src/ipam/allocator.js';
import type { Owner } from '../src/ipam/claim.js';
import { MemoryLedger } from '../src/ipam/memory-ledger.js';
import { compilePool, type Pool } from '../src/ipam/pool.js';
import { summarize, type Latency } from './load.js';

export const FILLS = [0.01, 0.5, 0.99] as const;
/**
 * dense: filled in order, as first-free allocation leaves a pool that only grew.
 * fragmented: the same number of addresses held at random places, as after much churn:
 * the most free intervals the free list can have, its worst case.
 */
export const PATTERNS = ['dense', 'fragmented'] as const;
export type Pattern = (typeof PATTERNS)[number];
export type Impl = 'netpin' | 'naive';

export interface LedgerCase {
  impl: Impl;
  pattern: Pattern;
  fill: number;
  held: number;
  pairs: number;
  /** Microseconds per claim+release pair. */
  us: Latency;
  /** Mean cost at this fill over the mean cost at 1 % fill, same implementation and pattern. */
  ratioToLowFill: number;
}

export interface LedgerMemory {
  impl: Impl;
  pattern: Pattern;
  claims: number;
  bytesPerClaim: number;
}

export interface LedgerReport {
  pool: string;
  capacity: number;
  cases: LedgerCase[];
  memory: LedgerMemory[];
}

const CIDR = '10.0.0.0/16';
const NAMESPACE = 'bench';
const WARMUP_PAIRS = 1_000;
const MAX_PAIRS = 20_000;
const MAX_MS = 1_500;

/** The ledger and allocator of `netpin serve --ledger memory`, as admission calls them. */
class NetpinSubject {
  readonly ledger: MemoryLedger;
  private readonly allocator: Allocator;
  private readonly intent = parseIntent({ 'netpin.io/pool': 'p' }).intent;
  private seq = 0;

  constructor(readonly pool: Pool) {
    this.ledger = new MemoryLedger([pool]);
    this.allocator = new Allocator(this.ledger);
  }

  private owner(): Owner {
    // A pod not yet named, as a Deployment's are: held by the request uid.
    return { kind: 'Pod', namespace: NAMESPACE, name: '', uid: `u${this.seq++}` };
  }

  async fillDense(n: number): Promise<void> {
    for (let i = 0; i < n; i++) await this.ledger.claimNext(this.pool, 'ipv4', this.owner());
  }

  async fillAt(addresses: Address[]): Promise<void> {
    for (const a of addresses) await this.ledger.claim(this.pool, a, this.owner());
  }

  /** One allocation the way admission makes it, then its release: the fill stays where it is. */
  async pair(): Promise<void> {
    const r = await this.allocator.allocate({
      intent: this.intent,
      namespace: NAMESPACE,
      namespaceLabels: {},
      owner: this.owner(),
      dryRun: false,
    });
    if (!r.ok) throw new Error(`allocation failed: ${JSON.stringify(r.problems)}`);
    for (const c of r.claims) await this.ledger.release(c);
  }
}

/** For contrast, what a first attempt would do: a Set of held addresses, first free by a scan from the start. */
class NaiveSubject {
  private readonly used = new Set<number>();
  constructor(
    private readonly first: number,
    private readonly last: number,
  ) {}

  claimNext(): number {
    for (let a = this.first; a <= this.last; a++) {
      if (!this.used.has(a)) {
        this.used.add(a);
        return a;
      }
    }
    throw new Error('pool exhausted');
  }

  async fillDense(n: number): Promise<void> {
    for (let i = 0; i < n; i++) this.claimNext();
  }

  async fillAt(offsets: number[]): Promise<void> {
    for (const o of offsets) this.used.add(this.first + o);
  }

  async pair(): Promise<void> {
    this.used.delete(this.claimNext());
  }
}

/** A fixed-seed generator: the fragmented fill is the same in every run. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` distinct offsets in [0, capacity), in random order. */
function randomOffsets(n: number, capacity: number): number[] {
  const next = random(0x5eed);
  const all = Array.from({ length: capacity }, (_, i) => i);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(next() * (capacity - i));
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  return all.slice(0, n);
}

const gc = (): void => {
  const g = (globalThis as { gc?: () => void }).gc;
  if (!g) throw new Error('run with node --expose-gc');
  g();
  g();
};

async function makeSubject(
  impl: Impl,
  pattern: Pattern,
  held: number,
  pool: Pool,
): Promise<NetpinSubject | NaiveSubject> {
  const range = pool.ranges.ipv4[0]!;
  const subject =
    impl === 'netpin' ? new NetpinSubject(pool) : new NaiveSubject(Number(range.first), Number(range.last));
  if (pattern === 'dense') await subject.fillDense(held);
  else {
    const offsets = randomOffsets(held, Number(pool.capacity.ipv4));
    if (subject instanceof NetpinSubject)
      await subject.fillAt(offsets.map((o) => fromBigInt(range.first + BigInt(o), 'ipv4')));
    else await subject.fillAt(offsets);
  }
  return subject;
}

async function timePairs(subject: NetpinSubject | NaiveSubject): Promise<{ pairs: number; us: Latency }> {
  for (let i = 0; i < WARMUP_PAIRS; i++) await subject.pair();
  const samples = new Float64Array(MAX_PAIRS);
  const deadline = process.hrtime.bigint() + BigInt(MAX_MS) * 1_000_000n;
  let n = 0;
  while (n < MAX_PAIRS) {
    const t0 = process.hrtime.bigint();
    await subject.pair();
    const t1 = process.hrtime.bigint();
    samples[n++] = Number(t1 - t0) / 1000;
    if (t1 > deadline) break;
  }
  return { pairs: n, us: summarize(samples.subarray(0, n)) };
}

/** Heap after full collections with and without the claims; a function of its own, so that nothing else it made stays reachable. */
async function heapPerClaim(impl: Impl, pattern: Pattern, held: number, pool: Pool): Promise<number> {
  gc();
  const before = process.memoryUsage().heapUsed;
  const subject = await makeSubject(impl, pattern, held, pool);
  gc();
  const after = process.memoryUsage().heapUsed;
  // Read after the measurement, so that the subject is live through it.
  return subject ? Math.round((after - before) / held) : NaN;
}

async function child(): Promise<LedgerReport> {
  const pool = compilePool({ metadata: { name: 'p' }, spec: { cidr: CIDR } });
  const capacity = Number(pool.capacity.ipv4);
  const cases: LedgerCase[] = [];

  // One unmeasured pass first, so that the first measured case does not pay for the JIT.
  await timePairs(await makeSubject('netpin', 'dense', Math.round(capacity * FILLS[0]), pool));
  for (const impl of ['netpin', 'naive'] as Impl[]) {
    for (const pattern of PATTERNS) {
      let low = NaN;
      for (const fill of FILLS) {
        const held = Math.round(capacity * fill);
        gc();
        const subject = await makeSubject(impl, pattern, held, pool);
        gc();
        const t = await timePairs(subject);
        if (fill === FILLS[0]) low = t.us.mean;
        cases.push({ impl, pattern, fill, held, ...t, ratioToLowFill: t.us.mean / low });
      }
    }
  }

  const memory: LedgerMemory[] = [];
  const held = Math.round(capacity * FILLS[2]);
  for (const impl of ['netpin', 'naive'] as Impl[]) {
    for (const pattern of PATTERNS)
      memory.push({ impl, pattern, claims: held, bytesPerClaim: await heapPerClaim(impl, pattern, held, pool) });
  }
  return { pool: CIDR, capacity, cases, memory };
}

/** Runs the ledger benchmark in a child with --expose-gc and returns its report. */
export async function benchLedger(): Promise<LedgerReport> {
  const self = fileURLToPath(import.meta.url);
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', self, '--child'], {
    maxBuffer: 16 * 1024 * 1024,
    timeout: 300_000,
  });
  return JSON.parse(stdout) as LedgerReport;
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes('--child')) {
  process.stdout.write(JSON.stringify(await child()));
}
