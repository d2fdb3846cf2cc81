// The figures of each scenario: mean seconds per mode and their ratios, CPU per pod, claim writes.
import { byOp, MODES, round2, type ClusterRound, type ClusterSummary, type Mode, type Scenario } from './types.js';

/** Mean CPU milliseconds per pod of each process, by mode. */
function cpuMsPerPod(of: (mode: Mode) => ClusterRound[]): Record<Mode, Record<string, number>> {
  return Object.fromEntries(
    MODES.map((mode) => {
      const rs = of(mode);
      const pods = rs.reduce((n, r) => n + r.pods, 0);
      const names = Object.keys(rs[0]?.cpu ?? {});
      return [
        mode,
        Object.fromEntries(
          names.map((name) => [name, round2((1000 * rs.reduce((n, r) => n + (r.cpu[name] ?? 0), 0)) / pods)]),
        ),
      ];
    }),
  ) as Record<Mode, Record<string, number>>;
}

export function summarize(rounds: ClusterRound[], scenario: Scenario): ClusterSummary {
  const of = (mode: Mode) => rounds.filter((r) => r.scenario === scenario && r.mode === mode);
  const mean = (rs: ClusterRound[]) => rs.reduce((n, r) => n + r.seconds, 0) / rs.length;
  const sum = (f: (r: ClusterRound) => number) => of('netpin').reduce((n, r) => n + f(r), 0);
  const written = of('netpin').filter((r) => r.claimWrites);
  const writtenPods = written.reduce((n, r) => n + r.pods, 0);
  return {
    scenario,
    pods: of('netpin')[0]?.pods ?? 0,
    baselineSeconds: round2(mean(of('baseline'))),
    webhookSeconds: round2(mean(of('webhook'))),
    memorySeconds: round2(mean(of('memory'))),
    netpinSeconds: round2(mean(of('netpin'))),
    ratio: mean(of('netpin')) / mean(of('baseline')),
    webhookRatio: mean(of('webhook')) / mean(of('baseline')),
    overWebhook: mean(of('netpin')) / mean(of('webhook')),
    memoryOverWebhook: mean(of('memory')) / mean(of('webhook')),
    overMemory: mean(of('netpin')) / mean(of('memory')),
    ...(writtenPods
      ? {
          claimWritesPerPod: byOp((op) => round2(written.reduce((n, r) => n + r.claimWrites![op], 0) / writtenPods)),
        }
      : {}),
    cpuMsPerPod: cpuMsPerPod(of),
    duplicateIps: sum((r) => r.duplicateIps),
    unclaimedIps: sum((r) => r.unclaimedIps),
    podsWithoutIp: sum((r) => r.podsWithoutIp),
  };
}
