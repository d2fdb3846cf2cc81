// netpin's own work per review, in the runner's process: no HTTP, no TLS, no other process.
import { Admission } from '../../src/admission/handler.js';
import { dialectFor } from '../../src/cni/index.js';
import { StaticClusterView } from '../../src/cluster/view.js';
import { parsePools } from '../../src/config/pools-file.js';
import { Allocator } from '../../src/ipam/allocator.js';
import { MemoryLedger } from '../../src/ipam/memory-ledger.js';
import { POOLS_YAML, reviewBody } from '../review.js';
import { CASES, SIZES, type InProcessRow, type ReviewSize } from './types.js';

const IN_PROCESS_REVIEWS = 20_000;
const IN_PROCESS_REPEATS = 5;

/**
 * What netpin's admission costs on its own: `Admission.review` (the same code `netpin serve` runs, on a
 * memory ledger) over reviews parsed beforehand, each with a fresh uid, against parsing those bodies.
 * Stable where the HTTPS figures drift, it bounds the ratio netpin can reach against the bare handler,
 * whose per-request work is what is left.
 */
export async function inProcess(size: ReviewSize, c: InProcessRow['case']): Promise<InProcessRow> {
  const pools = parsePools(POOLS_YAML);
  const cluster = new StaticClusterView();
  for (const [name, labels] of pools.namespaces) cluster.setNamespace(name, labels);
  const admission = new Admission({
    dialect: dialectFor('calico'),
    allocator: new Allocator(new MemoryLedger(pools.pools)),
    cluster,
    releaseOnDelete: true,
  });
  const body = reviewBody(SIZES[size].pod(CASES[c].annotations));
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  let seq = 0;
  const reviewUs: number[] = [];
  const parseUs: number[] = [];
  // The first repeat warms the JIT and is not counted.
  for (let r = 0; r <= IN_PROCESS_REPEATS; r++) {
    const texts = Array.from({ length: IN_PROCESS_REVIEWS }, () => body(seq++));
    // Parsed one at a time, so that each review dies young as it does in a server.
    let parsed = 0;
    let reviewed = 0;
    for (const text of texts) {
      const t0 = performance.now();
      const review = JSON.parse(text) as unknown;
      const t1 = performance.now();
      await admission.review('mutate', review);
      parsed += t1 - t0;
      reviewed += performance.now() - t1;
    }
    if (r > 0) {
      parseUs.push((1000 * parsed) / IN_PROCESS_REVIEWS);
      reviewUs.push((1000 * reviewed) / IN_PROCESS_REVIEWS);
    }
  }
  return { size, case: c, reviewUs: median(reviewUs), parseUs: median(parseUs) };
}
