// The rows of the admission report: each server's runs over the rounds pooled, against the bare one's.
import { summarize } from '../load.js';
import type { Run } from './servers.js';
import type { AdmissionRow, ReviewSize, ServerCase } from './types.js';

/** The runs of one server at one size and connection count, over every round, as one. */
function pooled(runs: Run[]) {
  const all = new Float64Array(runs.reduce((n, r) => n + r.samples.length, 0));
  let at = 0;
  for (const r of runs) {
    all.set(r.samples, at);
    at += r.samples.length;
  }
  const requests = runs.reduce((n, r) => n + r.requests, 0);
  const seconds = runs.reduce((n, r) => n + r.seconds, 0);
  const cpu = runs.reduce((n, r) => n + r.cpuSeconds, 0);
  return {
    rps: requests / seconds,
    cpuUsPerRequest: (1e6 * cpu) / requests,
    serverCpuPercent: (100 * cpu) / seconds,
    cpuSeconds: cpu,
    latencyMs: summarize(all),
    requests,
    errors: runs.reduce((n, r) => n + r.errors, 0),
    peakRssBytes: runs.map((r) => r.peakRss ?? 0).reduce((a, b) => Math.max(a, b), 0) || undefined,
    rounds: runs.map((r) => ({ rps: r.rps, p50: r.latencyMs.p50, p99: r.latencyMs.p99 })),
  };
}

/** Runs by `size/case/connections`, each server's row at each size and connection count. */
export function toRows(
  raw: Map<string, Run[]>,
  sizes: ReviewSize[],
  cases: ServerCase[],
  connectionCounts: number[],
): AdmissionRow[] {
  const rows: AdmissionRow[] = [];
  for (const size of sizes) {
    for (const connections of connectionCounts) {
      const merged = (c: ServerCase) => pooled(raw.get(`${size}/${c}/${connections}`)!);
      const bare = merged('bare');
      for (const c of cases) {
        const m = c === 'bare' ? bare : merged(c);
        rows.push({
          size,
          case: c,
          connections,
          ...m,
          rpsRatio: m.rps / bare.rps,
          p50Ratio: m.latencyMs.p50 / bare.latencyMs.p50,
          p99Ratio: m.latencyMs.p99 / bare.latencyMs.p99,
        });
      }
    }
  }
  return rows;
}
