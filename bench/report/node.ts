// The node part of the report: Spiderpool's protocol on the real node, in Spiderpool's shape first.
import type { NodeReport } from '../node.js';
import type { NodeSummaryRow, Phase } from '../node/types.js';
import { f, table } from './tables.js';

const CASE_TITLES = {
  deployment: '1 Deployment × N',
  deployments: 'N/10 Deployments × 10',
  statefulset: 'StatefulSet of N/2',
};
const WAYS = [
  ['hostLocal', 'host-local alone'],
  ['webhook', 'allow-only webhook'],
  ['netpinExact', 'netpin, pool = pods'],
  ['netpinLarge', 'netpin, pool = 4 × pods'],
] as const;

const seconds = (s: number) => (Number.isFinite(s) ? `${f(s, 1)} s` : '–');

export function nodeSection(r: NodeReport): string[] {
  const cases = [...new Set(r.summary.map((s) => s.case))];
  const row = (kase: string, phase: Phase): NodeSummaryRow | undefined =>
    r.summary.find((s) => s.case === kase && s.phase === phase);
  const out = [
    '## Pods Running on the real node',
    '',
    `N = ${r.pods} (kubelet maxPods ${r.maxPods}); Kubernetes ${r.kubernetes}; one node, bridge → IPAM → bandwidth, the pause image; ` +
      `netpin as a ${r.netpinAs}, claim grace ${r.claimGraceSeconds} s. CPU ${r.cpuModel}; load average ` +
      `${r.loadAverage.start.map((x) => x.toFixed(2)).join(' ')} at the start, ${r.loadAverage.end.map((x) => x.toFixed(2)).join(' ')} at the end. ` +
      `${r.runs.length} runs.${r.stoppedEarly ? ` **Stopped early**: ${r.stoppedEarly}.` : ''}`,
    '',
    'Creation / re-creation / deletion, seconds until every pod is Running (or gone), mean over rounds:',
    '',
    table(
      ['case', 'pods', ...WAYS.map(([, t]) => t)],
      cases.map((kase) => {
        const phases = (['creation', 'recreation', 'deletion'] as const).map((p) => row(kase, p));
        return [
          CASE_TITLES[kase],
          phases[0]?.pods ?? '–',
          ...WAYS.map(([w]) => phases.map((p) => seconds(p?.seconds[w] ?? NaN)).join(' / ')),
        ];
      }),
    ),
    '',
    'Against host-local alone in the same run, and per pod from its first watch event to Running (p50 / p99, ms):',
    '',
    table(
      ['case', 'phase', 'webhook ×', 'netpin exact ×', 'netpin large ×', ...WAYS.map(([, t]) => t)],
      r.summary.map((s) => [
        CASE_TITLES[s.case],
        s.phase,
        f(s.ratio.webhook),
        f(s.ratio.netpinExact),
        f(s.ratio.netpinLarge),
        ...WAYS.map(([w]) => (s.p50 ? `${f(s.p50[w], 0)} / ${f(s.p99?.[w], 0)}` : '–')),
      ]),
    ),
    '',
    'API server writes per pod, and CPU ms per pod of the processes the bench names (of kube-apiserver and etcd in brackets); ' +
      'sandbox failures and refusals over all ways; duplicates and leaks, which must be 0; the longest time netpin took to ' +
      'release every claim after the last pod went:',
    '',
    table(
      [
        'case',
        'phase',
        ...WAYS.map(([, t]) => `${t}: writes / CPU ms`),
        'sandbox failures',
        'refusals',
        'duplicates',
        'leaks',
        'netpin release',
      ],
      r.summary.map((s) => [
        CASE_TITLES[s.case],
        s.phase,
        ...WAYS.map(
          ([w]) => `${f(s.writesPerPod[w], 1)} / ${f(s.cpuMsPerPod[w], 0)} (${f(s.apiserverMsPerPod[w], 0)})`,
        ),
        s.sandboxFailures,
        s.refusals,
        s.duplicates,
        s.leaks,
        s.netpinReleaseSeconds === undefined ? '–' : seconds(s.netpinReleaseSeconds),
      ]),
    ),
    '',
    'Per run: the API server writes by resource, and CPU seconds by process, in each phase:',
    '',
    table(
      ['run', 'phase', 's', 'writes by resource', 'CPU s by process'],
      r.runs.flatMap((run) =>
        run.phases.map((p) => [
          `${run.case} ${run.mode}${run.pool ? ` ${run.pool}` : ''} r${run.round + 1}`,
          p.phase,
          f(p.seconds, 1),
          Object.entries(p.writesByResource)
            .sort((a, b) => b[1] - a[1])
            .slice(0, 6)
            .map(([k, v]) => `${k} ${v}`)
            .join(', '),
          Object.entries(p.cpu)
            .filter(([, v]) => v >= 0.05)
            .map(([k, v]) => `${k} ${f(v, 1)}`)
            .join(', '),
        ]),
      ),
    ),
    '',
  ];
  return out;
}
