// docs/reliability.md from one `npm run chaos` run: what each scenario held and lost, its figures,
// and how to reproduce them.
import type { Report } from '../harness/reliability/scenarios.js';
import type { RunEnvironment } from './proc.js';

export interface ChaosResult {
  startedAt: string;
  command: string;
  size: 'light' | 'full';
  wallSeconds: number;
  environment: RunEnvironment;
  reports: Report[];
  /** Node's heap limit under cgroup v1 memory limits, from `v8.getHeapStatistics()` in the cgroup. */
  heap: Array<{ limit: string; heapSizeLimitMiB: number; constrainedMemoryMiB: number }>;
  heapNote?: string;
  errors: string[];
}

function table(head: string[], rows: Array<Array<string | number>>): string {
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

const esc = (x: string | number) => String(x).replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** What one scenario held and lost, with its figures and notes. */
function scenarioSection(x: Report): string[] {
  const out: string[] = [];
  out.push(`## ${x.id}. ${x.title}`, '');
  out.push('What held:', '', ...x.held.map((h) => `- ${h}`), '');
  out.push(x.lost.length ? 'What was lost:' : 'What was lost: nothing.', '');
  if (x.lost.length) out.push(...x.lost.map((l) => `- ${esc(l)}`), '');
  out.push(
    table(
      ['figure', 'value'],
      Object.entries(x.figures).map(([k, v]) => [esc(k), esc(v)]),
    ),
    '',
  );
  if (x.notes.length) out.push(...x.notes.map((n) => `${n}`), '');
  return out;
}

function heapSection(r: ChaosResult): string[] {
  const out: string[] = [];
  out.push(
    "## Node's heap under a memory limit",
    '',
    "Whether Node 24 sizes its heap from the container's memory limit: `v8.getHeapStatistics().heap_size_limit` and",
    '`process.constrainedMemory()` of `node_modules/node/bin/node` started inside a cgroup v1 memory cgroup made for the',
    'purpose (nested in the one this run is in, removed after):',
    '',
    table(
      ['memory limit', 'heap_size_limit', 'constrainedMemory()'],
      r.heap.map((h) => [h.limit, `${h.heapSizeLimitMiB} MiB`, `${h.constrainedMemoryMiB} MiB`]),
    ),
    '',
  );
  if (r.heapNote) out.push(r.heapNote, '');
  return out;
}

export function toMarkdown(r: ChaosResult): string {
  const e = r.environment;
  const lostTotal = r.reports.reduce((n, x) => n + x.lost.length, 0);
  const out: string[] = [
    '# Reliability',
    '',
    'What netpin holds under faults, measured on a real etcd, kube-apiserver and kube-controller-manager on one',
    'machine, every address on loopback; the target of every scenario is that nothing is lost. This file is',
    `written by \`npm run chaos\`; the figures below are from the run of ${r.startedAt}.`,
    '',
    '## How to reproduce',
    '',
    '```sh',
    'npm run chaos                          # every scenario at full size, then writes this file (13 to 16 minutes on two cores)',
    'npm run chaos -- --parts 1,3           # some scenarios only (1 2 3 4 5 6; 7 is measured in 1)',
    'npm run chaos -- --size light          # the sizes the test command runs',
    "npm run chaos -- --property-scale 23   # property cases: 23 × the test command's 4 420",
    'npx vitest run --project e2e test/e2e/reliability.test.ts   # the light scenarios alone, as in npm test',
    '```',
    '',
    '`npm run chaos` builds, then runs `dist/bench/chaos.js`: scenarios 1, 2, 3 and 5 (with 7 inside 1) from',
    '`harness/reliability/`, the same code `test/e2e/reliability.test.ts` runs at its light size in',
    '`npm test`; scenario 4 is `test/e2e/outage.test.ts` run by vitest; scenario 6 is `test/property/` run by vitest',
    'with `NETPIN_PROPERTY_SCALE`. It writes `bench/results/chaos-<time>.json` (git-ignored) and this file, and',
    'exits non-zero when anything was lost or a part failed. Every loop ends by count or by time.',
    '',
    "The webhooks are registered once, at a loopback stand-in for the chart's Service: a TCP proxy that gives",
    'each new connection to the next replica in turn, as kube-proxy spreads connections over endpoints. A killed',
    "replica leaves the rotation one second after its death (the endpoints controller's lag), so connections made",
    'to it in that second fail as they would in a cluster. Pods are created through the API server, so every',
    'replica admits some; reviews are also posted straight to a replica where a scenario needs one replica to',
    'answer. No kubelet runs: pods stay Pending, except in scenario 2, where a stand-in writes their status.',
    '',
    `Run: \`${r.command}\`, ${r.size} size, on ${e.cores} × ${e.cpu}, ${e.memoryGiB} GiB, Node ${e.node}; commit ${e.commit}${e.dirty ? ' (with uncommitted changes)' : ''}. ` +
      `Load average ${e.loadAverage.start.map((x) => x.toFixed(2)).join(' ')} at the start, ${e.loadAverage.end.map((x) => x.toFixed(2)).join(' ')} at the end; wall time ${(r.wallSeconds / 60).toFixed(1)} min.`,
    '',
    '## Summary',
    '',
    table(
      ['scenario', 'size', 'seconds', 'lost'],
      r.reports.map((x) => [
        `${x.id}. ${x.title}`,
        x.size,
        x.seconds,
        x.lost.length === 0 ? 'nothing' : `**${x.lost.length}**`,
      ]),
    ),
    '',
    lostTotal === 0 && r.errors.length === 0
      ? 'Nothing was lost in any scenario.'
      : `**${lostTotal} violations and ${r.errors.length} failed parts: see below.**`,
    '',
  ];
  if (r.errors.length) out.push('**Errors**:', '', ...r.errors.map((x) => `- ${esc(x.split('\n')[0] ?? x)}`), '');
  for (const x of r.reports) out.push(...scenarioSection(x));
  out.push(...heapSection(r));
  return out.join('\n');
}
