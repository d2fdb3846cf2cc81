// The node part's figures per case and phase: the mean of each way's runs, and netpin's over host-local's.
import { NODE_CASES, round2, type NodeRun, type NodeSummaryRow, type Phase, type PhaseResult } from './types.js';

const PHASES: readonly Phase[] = ['creation', 'recreation', 'deletion'];
const WAYS = ['hostLocal', 'webhook', 'netpinExact', 'netpinLarge'] as const;
type Way = (typeof WAYS)[number];

function wayOf(r: NodeRun): Way {
  if (r.mode === 'host-local') return 'hostLocal';
  if (r.mode === 'webhook') return 'webhook';
  return r.pool === 'exact' ? 'netpinExact' : 'netpinLarge';
}

/** CPU seconds of the named processes, the machine's total left out. */
const ownCpu = (p: PhaseResult) =>
  Object.entries(p.cpu)
    .filter(([name]) => name !== 'machine')
    .reduce((n, [, v]) => n + v, 0);

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

export function summarizeNode(runs: NodeRun[]): NodeSummaryRow[] {
  const rows: NodeSummaryRow[] = [];
  for (const kase of NODE_CASES) {
    const ofCase = runs.filter((r) => r.case === kase);
    if (ofCase.length === 0) continue;
    for (const phase of PHASES) {
      const results = (way: Way): PhaseResult[] =>
        ofCase.filter((r) => wayOf(r) === way).flatMap((r) => r.phases.filter((p) => p.phase === phase));
      const all = WAYS.flatMap(results);
      if (all.length === 0) continue;
      const per = (f: (p: PhaseResult) => number) =>
        Object.fromEntries(WAYS.map((w) => [w, round2(mean(results(w).map(f)))])) as Record<Way, number>;
      const seconds = per((p) => p.seconds);
      const netpin = [...results('netpinExact'), ...results('netpinLarge')];
      rows.push({
        case: kase,
        pods: ofCase[0]!.pods,
        phase,
        seconds,
        ratio: {
          webhook: round2(seconds.webhook / seconds.hostLocal),
          netpinExact: round2(seconds.netpinExact / seconds.hostLocal),
          netpinLarge: round2(seconds.netpinLarge / seconds.hostLocal),
        },
        ...(phase !== 'deletion' ? { p50: per((p) => p.podMs?.p50 ?? NaN), p99: per((p) => p.podMs?.p99 ?? NaN) } : {}),
        writesPerPod: per((p) => p.apiWrites / Math.max(1, p.pods)),
        cpuMsPerPod: per((p) => (1000 * ownCpu(p)) / Math.max(1, p.pods)),
        apiserverMsPerPod: per(
          (p) => (1000 * ((p.cpu['kube-apiserver'] ?? 0) + (p.cpu.etcd ?? 0))) / Math.max(1, p.pods),
        ),
        sandboxFailures: all.reduce((n, p) => n + p.sandboxFailures, 0),
        refusals: all.reduce((n, p) => n + p.refusals, 0),
        duplicates: all.reduce((n, p) => n + p.duplicates + (p.ipMismatches ?? 0), 0),
        leaks: all.reduce((n, p) => n + (p.leaks ?? 0), 0),
        ...(phase === 'deletion' && netpin.length
          ? { netpinReleaseSeconds: Math.max(...netpin.map((p) => p.releaseSeconds ?? 0)) }
          : {}),
      });
    }
  }
  return rows;
}
