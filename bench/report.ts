// The results as Markdown: the same tables docs/benchmarks.md shows, with the targets first.
import type { AdmissionReport, AdmissionRow, ReviewSize, ServerCase } from './admission.js';
import type { RunEnvironment } from './proc.js';
import { CASES, SIZES } from './admission.js';
import type { ClusterReport } from './cluster.js';
import type { LedgerReport } from './ledger.js';
import type { ProfileSummary } from './profile.js';
import type { ScaleLedger, ScalePhase, ScaleReport } from './scale.js';

export interface Target {
  part: 'admission' | 'memory' | 'ledger' | 'cluster' | 'scale';
  name: string;
  value: number;
  limit: number;
  unit: string;
  met: boolean;
}

export interface BenchResult {
  startedAt: string;
  command: string;
  wallSeconds: number;
  environment: RunEnvironment;
  partSeconds: Record<string, number>;
  admission?: AdmissionReport;
  ledger?: LedgerReport;
  cluster?: ClusterReport;
  scale?: ScaleReport;
  targets: Target[];
  errors: string[];
}

const CASE_NAMES: Record<ServerCase, string> = { bare: 'bare', rate: 'rate only', alloc: 'allocating' };

/** The review of one size, for names: "small review (2.5 KB)". */
function sizeLabel(a: AdmissionReport, size: ReviewSize): string {
  return `${size} review (${(a.bodyBytes[size] / 1024).toFixed(1)} KB)`;
}

/** Server CPU per request over the runs at these connection counts, against the bare handler's over the same. */
function cpuRatio(rows: AdmissionRow[], size: ReviewSize, c: ServerCase, connections: number[]): number {
  const perRequest = (x: ServerCase) => {
    const rs = rows.filter((r) => r.size === size && r.case === x && connections.includes(r.connections));
    return rs.reduce((n, r) => n + r.cpuSeconds, 0) / rs.reduce((n, r) => n + r.requests, 0);
  };
  return perRequest(c) / perRequest('bare');
}

/** The largest VmHWM of a server over every admission run. */
function peakOf(a: AdmissionReport, c: ServerCase): number | undefined {
  const peaks = a.rows.filter((r) => r.case === c && r.peakRssBytes !== undefined).map((r) => r.peakRssBytes!);
  return peaks.length ? Math.max(...peaks) : undefined;
}

function peakRatio(a: AdmissionReport, c: ServerCase): number {
  return (peakOf(a, c) ?? NaN) / (peakOf(a, 'bare') ?? NaN);
}

/** The issue's targets, checked against this run's figures. */
export function evaluateTargets(r: BenchResult): Target[] {
  const out: Target[] = [];
  const add = (part: Target['part'], name: string, value: number | undefined, limit: number, unit: string) => {
    if (value !== undefined && Number.isFinite(value))
      out.push({ part, name, value, limit, unit, met: value <= limit });
  };
  // Stated as "at least": kept as a Target by its unit, which the report reads.
  const atLeast = (part: Target['part'], name: string, value: number | undefined, limit: number) => {
    if (value !== undefined && Number.isFinite(value))
      out.push({ part, name, value, limit, unit: '≥ ×', met: value >= limit });
  };
  const a = r.admission;
  for (const size of a ? (Object.keys(SIZES) as ReviewSize[]) : []) {
    const row = (c: ServerCase, n: number) =>
      a!.rows.find((x) => x.size === size && x.case === c && x.connections === n);
    const label = sizeLabel(a!, size);
    for (const [c, limit] of [
      ['rate', 0.9],
      ['alloc', 0.85],
    ] as const) {
      for (const n of [16, 64])
        atLeast(
          'admission',
          `${label}, ${CASE_NAMES[c]}: req/s vs bare at ${n} connections`,
          row(c, n)?.rpsRatio,
          limit,
        );
    }
    const cpu = cpuRatio(a!.rows, size, 'rate', [16, 64]);
    add('admission', `${label}, rate only: CPU per request vs bare (16 and 64 connections)`, cpu, 1.15, '×');
    add('admission', `${label}, rate only: p99 vs bare at 64 connections`, row('rate', 64)?.p99Ratio, 1.1, '×');
    add('admission', `${label}, rate only: p99 at 1 connection`, row('rate', 1)?.latencyMs.p99, 1.5, 'ms');
    add('admission', `${label}, allocating: p99 at 1 connection`, row('alloc', 1)?.latencyMs.p99, 2, 'ms');
  }
  if (a) {
    const limit = a.memory.limit.notApplied ? 'no memory limit' : `${mb(a.memory.limit.limitBytes)} MB memory cgroup`;
    for (const c of ['rate', 'alloc'] as const) {
      add('memory', `${CASES[c].title}: peak RSS vs bare, all admission runs (${limit})`, peakRatio(a, c), 1.2, '×');
    }
  }
  for (const pattern of ['dense', 'fragmented'] as const) {
    const c = r.ledger?.cases.find((x) => x.impl === 'netpin' && x.pattern === pattern && x.fill === 0.99);
    add('ledger', `allocation at 99 % vs 1 % fill (${pattern}, mean)`, c?.ratioToLowFill, 2, '×');
  }
  for (const s of r.cluster?.summary ?? []) {
    add('cluster', `${s.scenario} (${s.pods} pods): time with netpin vs webhook only`, s.overWebhook, 1.15, '×');
    add(
      'cluster',
      `${s.scenario}: duplicate or unclaimed IPs, pods without IP`,
      s.duplicateIps + s.unclaimedIps + s.podsWithoutIp,
      0,
      '',
    );
  }
  const { empty, loaded } = scalePhases(r.scale);
  if (loaded && empty) {
    const scale = `${loaded.claims} IPClaims, ${loaded.pods} pinned pods`;
    add('scale', `${scale}: netpin start to ready`, loaded.readySeconds, 10, 's');
    add(
      'scale',
      `${scale}: netpin peak RSS (VmHWM: start, ready, reviews)`,
      (loaded.peakRssBytes ?? NaN) / 2 ** 20,
      300,
      'MB',
    );
    const p99 = loaded.latencyMs.p99 / empty.latencyMs.p99;
    add('scale', `${scale}: admission p99 vs an empty ledger (allocating, ${loaded.requests} reviews)`, p99, 1.2, '×');
  }
  return out;
}

function scalePhases(sc: ScaleReport | undefined): Partial<Record<ScaleLedger, ScalePhase>> {
  return Object.fromEntries((sc?.phases ?? []).map((x) => [x.ledger, x]));
}

const f = (x: number | undefined, digits = 2) => (x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits));
const mb = (b: number | undefined) => (b === undefined ? '–' : (b / 1024 / 1024).toFixed(0));

function table(head: string[], rows: Array<Array<string | number>>): string {
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

/** Self time by function and by area, and netpin's own functions inclusive; in µs per request where the CPU cost of one is known. */
function profileTables(
  title: string,
  p: ProfileSummary,
  perRequestUs?: number,
  unit = 'req',
  top = 10,
  own = true,
): string {
  const head = (what: string) => [what, '%', ...(perRequestUs ? [`µs/${unit}`] : [])];
  const rows = (xs: ProfileSummary['topFunctions'], n: number) =>
    xs
      .slice(0, n)
      .map((x) => [
        `\`${x.name.replace(/\|/g, '\\|')}\``,
        f(x.percent, 1),
        ...(perRequestUs ? [f((x.percent * perRequestUs) / 100, 1)] : []),
      ]);
  return [
    `**${title}**: ${f(p.busyMs / 1000, 1)} s busy, ${f(p.idlePercent, 0)} % idle${perRequestUs ? `; ${f(perRequestUs, 0)} µs CPU per ${unit === 'req' ? 'request' : unit} measured apart` : ''}.`,
    '',
    table(head('function (self time)'), rows(p.topFunctions, top)),
    '',
    table(head('area (self time)'), rows(p.byArea, 8)),
    ...(own ? ['', table(head('netpin function (inclusive)'), rows(p.ownInclusive, top))] : []),
  ].join('\n');
}

export function toMarkdown(r: BenchResult): string {
  const e = r.environment;
  const out: string[] = [
    `# netpin benchmarks, ${r.startedAt}`,
    '',
    `\`${r.command}\` on ${e.cores} × ${e.cpu}, ${e.memoryGiB} GiB, Node ${e.node}; commit ${e.commit}${e.dirty ? ' (with uncommitted changes)' : ''}.`,
    `Load average ${e.loadAverage.start.map((x) => x.toFixed(2)).join(' ')} at the start, ${e.loadAverage.end.map((x) => x.toFixed(2)).join(' ')} at the end. ` +
      `Wall time ${f(r.wallSeconds / 60, 1)} min (${Object.entries(r.partSeconds)
        .map(([k, v]) => `${k} ${f(v, 0)} s`)
        .join(', ')}).`,
    '',
  ];
  if (r.errors.length) out.push('**Errors**:', '', ...r.errors.map((x) => `- ${x.split('\n')[0]}`), '');

  out.push(
    '## Targets',
    '',
    table(
      ['part', 'target', 'measured', 'limit', 'met'],
      r.targets.map((t) => [
        // Four significant digits: a ratio of 0.7996 must not read as a met 0.80.
        t.part,
        t.name,
        `${Number(t.value.toPrecision(4))}${t.unit && t.unit !== '≥ ×' ? ` ${t.unit}` : ''}`,
        t.unit === '≥ ×' ? `≥ ${t.limit}` : `≤ ${t.limit}${t.unit ? ` ${t.unit}` : ''}`,
        t.met ? 'yes' : '**no**',
      ]),
    ),
    '',
  );

  const a = r.admission;
  if (a) {
    out.push(
      '## Admission',
      '',
      'POST /mutate, a Pod review of each size, a fresh uid per request. Ratios against the bare handler at the same size and ' +
        'connection count in this run. Latency from the request write to the last response byte, in the load generator; server CPU ' +
        "from /proc; peak RSS is the server's VmHWM. " +
        (a.cores.notApplied
          ? `The load generator and the servers shared every core (${a.cores.notApplied}).`
          : `At 16 and 64 connections the load generator ran on core ${a.cores.runner}, every server on core ` +
            `${a.cores.server}; at one connection, where they take turns, both on every core.`),
      '',
    );
    const head = [
      'server',
      'conns',
      'req/s',
      '× bare',
      '× bare by round',
      'p50 ms',
      'p99 ms',
      'p99 × bare',
      'server CPU µs/req',
      'CPU/req × bare',
      'server CPU %',
      'peak RSS MB',
    ];
    for (const size of Object.keys(SIZES) as ReviewSize[]) {
      const rows = a.rows.filter((x) => x.size === size);
      out.push(
        `### ${sizeLabel(a, size)}: ${SIZES[size].title}`,
        '',
        table(
          head,
          rows.map((x) => {
            const bare = rows.find((y) => y.case === 'bare' && y.connections === x.connections)!;
            const byRound = x.rounds.map((y, i) => f(y.rps / (bare.rounds[i]?.rps ?? NaN))).join(' / ');
            return [
              CASES[x.case].title,
              x.connections,
              f(x.rps, 0),
              f(x.rpsRatio),
              byRound,
              f(x.latencyMs.p50, 3),
              f(x.latencyMs.p99, 3),
              f(x.p99Ratio),
              f(x.cpuUsPerRequest, 0),
              f(x.cpuUsPerRequest / bare.cpuUsPerRequest),
              f(x.serverCpuPercent, 0),
              mb(x.peakRssBytes),
            ];
          }),
        ),
        '',
      );
    }
    const bareCpuUs = (size: ReviewSize) => {
      const rs = a.rows.filter((r) => r.size === size && r.case === 'bare' && r.connections !== 1);
      return (1e6 * rs.reduce((n, r) => n + r.cpuSeconds, 0)) / rs.reduce((n, r) => n + r.requests, 0);
    };
    out.push(
      "### netpin's own work, in-process",
      '',
      '`Admission.review` (what `netpin serve` runs for each request, on a memory ledger) over reviews of each size with a ' +
        'fresh uid, in the runner, no HTTP or TLS; beside it `JSON.parse` of the same body, which every server does. ' +
        "Bound: the throughput ratio netpin would reach if its own work were all it added to the bare handler's CPU per " +
        'request (16 and 64 connections): bare ÷ (bare + review).',
      '',
      table(
        ['size', 'case', 'review µs', 'JSON.parse µs', 'bare CPU µs/req', 'bound vs bare'],
        a.inProcess.map((x) => [
          x.size,
          CASES[x.case].title,
          f(x.reviewUs, 1),
          f(x.parseUs, 1),
          f(bareCpuUs(x.size), 0),
          f(bareCpuUs(x.size) / (bareCpuUs(x.size) + x.reviewUs)),
        ]),
      ),
      '',
    );
    const m = a.memory;
    out.push(
      '### Memory',
      '',
      m.limit.notApplied
        ? `The servers ran without a memory limit (${m.limit.notApplied}).`
        : `Every server ran in a memory cgroup of its own limited to ${mb(m.limit.limitBytes)} MB, the chart's default; ` +
            `there Node sized its heap to ${mb(m.limit.heapLimitBytes)} MB.`,
      '',
      // The allocating server is the rate-only one until its first request.
      table(
        ['server', `idle RSS MB (${m.idleSeconds} s after start)`, 'peak RSS MB (all runs)', 'peak × bare'],
        (['bare', 'rate', 'alloc'] as const).map((c) => [
          CASES[c].title,
          mb(m.idleRssBytes[c === 'alloc' ? 'rate' : c]),
          mb(peakOf(a, c)),
          f(peakRatio(a, c)),
        ]),
      ),
      '',
      'The allocating server keeps every claim it made for the life of the process (the memory ledger): its peak grows with the ' +
        'requests of the run.',
      '',
    );
    for (const p of a.profiles) {
      const measured = a.rows.find((x) => x.size === p.size && x.case === p.case && x.connections === p.connections);
      const title = `${CASES[p.case].title}, ${sizeLabel(a, p.size)}, ${p.connections} connections, ${p.seconds} s profiled`;
      // The bare server runs no netpin code per request: no table of netpin's functions for it.
      out.push(profileTables(title, p.summary, measured?.cpuUsPerRequest, 'req', 10, p.case !== 'bare'), '');
    }
  }

  const l = r.ledger;
  if (l) {
    out.push(
      '## Ledger',
      '',
      `One allocation (Allocator.allocate on a MemoryLedger, as admission calls it) and its release, at a constant fill of a ${l.pool} pool (${l.capacity} addresses). ` +
        'naive: a Set of held addresses and a first-free scan from the start, for contrast. Microseconds per claim+release pair.',
      '',
      table(
        ['impl', 'fill pattern', 'fill', 'held', 'pairs', 'mean µs', 'p50 µs', 'p99 µs', 'mean × 1 % fill'],
        l.cases.map((c) => [
          c.impl,
          c.pattern,
          `${c.fill * 100} %`,
          c.held,
          c.pairs,
          f(c.us.mean),
          f(c.us.p50),
          f(c.us.p99),
          f(c.ratioToLowFill),
        ]),
      ),
      '',
      table(
        ['impl', 'fill pattern', 'claims', 'heap bytes per claim'],
        l.memory.map((m) => [m.impl, m.pattern, m.claims, m.bytesPerClaim]),
      ),
      '',
    );
  }

  const c = r.cluster;
  if (c) {
    out.push(
      '## Control plane',
      '',
      `Kubernetes ${c.kubernetes} (etcd, kube-apiserver, kube-controller-manager on this machine), kube-controller-manager client QPS/burst ` +
        `${c.controllerQps === 'default' ? 'at its defaults (20/30)' : `${c.controllerQps.qps}/${c.controllerQps.burst}`}. ` +
        'Seconds from the first create until every pod exists (with its IP under netpin), mean over the rounds. ' +
        '"memory ledger": the pods of netpin mode admitted by a netpin with `--ledger memory` (the same pools from a file): ' +
        'all of admission and the same patches, without the ledger in the API server (no IPClaim write, no reconciler).',
      '',
      table(
        [
          'scenario',
          'pods',
          'baseline s',
          'webhook only s',
          'memory ledger s',
          'netpin s',
          'netpin × webhook only',
          'memory ledger × webhook only',
          'netpin × memory ledger',
          'netpin × baseline',
          'webhook only × baseline',
          'duplicate IPs',
          'unclaimed IPs',
          'pods without IP',
        ],
        c.summary.map((s) => [
          s.scenario,
          s.pods,
          f(s.baselineSeconds),
          f(s.webhookSeconds),
          f(s.memorySeconds),
          f(s.netpinSeconds),
          f(s.overWebhook),
          f(s.memoryOverWebhook),
          f(s.overMemory),
          f(s.ratio),
          f(s.webhookRatio),
          s.duplicateIps,
          s.unclaimedIps,
          s.podsWithoutIp,
        ]),
      ),
      '',
      'CPU milliseconds per pod, by process (machine: all processes, two cores):',
      '',
      table(
        ['scenario', 'mode', ...Object.keys(c.summary[0]?.cpuMsPerPod.baseline ?? {})],
        c.summary.flatMap((s) =>
          (Object.keys(s.cpuMsPerPod) as Array<keyof typeof s.cpuMsPerPod>).map((mode) => [
            s.scenario,
            mode,
            ...Object.values(s.cpuMsPerPod[mode]).map((v) => f(v, 1)),
          ]),
        ),
      ),
      '',
      table(
        [
          'scenario',
          'mode',
          'round',
          'pods',
          'seconds',
          'creates returned s',
          'claims',
          'teardown s',
          'netpin peak RSS MB',
        ],
        c.rounds.map((x) => [
          x.scenario,
          x.mode,
          x.round + 1,
          x.pods,
          f(x.seconds),
          f(x.createSeconds),
          x.claims,
          f(x.teardownSeconds),
          mb(x.netpinPeakRssBytes),
        ]),
      ),
      '',
    );
    const written = c.summary.filter((s) => s.claimWritesPerPod);
    if (written.length) {
      out.push(
        'IPClaim writes per pod under netpin (its netpin_claim_writes_total, any outcome, from the first create until the ' +
          "round's claims were released; patch: the reconciler naming the pod in a claim made before the pod had a name):",
        '',
        table(
          ['scenario', 'create', 'patch', 'delete', 'all'],
          written.map((s) => {
            const w = s.claimWritesPerPod!;
            return [s.scenario, f(w.create), f(w.patch), f(w.delete), f(w.create + w.patch + w.delete)];
          }),
        ),
        '',
      );
    }
    const p = c.profile;
    if (p?.apiserver) {
      const { webhook, netpin } = p.apiserver;
      out.push(
        `kube-apiserver's CPU during one more Deployments round in each mode (its /debug/pprof, ${webhook.seconds} s from the first create; outside the figures above). ` +
          'Milliseconds per pod of the samples with these frames on the stack; the categories overlap:',
        '',
        table(
          ['where', 'webhook only ms/pod', 'netpin ms/pod', 'difference'],
          webhook.msPerPod.map((x, i) => {
            const n = netpin.msPerPod[i]?.ms ?? NaN;
            return [x.what, f(x.ms), f(n), f(n - x.ms)];
          }),
        ),
        '',
      );
    }
    if (p) {
      const title =
        'netpin during one more Deployments round under netpin (V8 sampling profiler, outside the figures above)';
      out.push(profileTables(title, p.netpin, p.netpin.cpuUsPerPod, 'pod', 15), '');
      for (const x of p.netpin.focused ?? []) {
        const us = (x.percent * p.netpin.cpuUsPerPod) / 100;
        out.push(
          `${x.name}: ${f(x.percent, 1)} % of netpin's busy time in that round, ${f(us, 0)} µs per pod. A lower bound: the ` +
            'processing of each answer runs on a fresh stack (undici, client-node) with no KubeLedger frame under it.',
          '',
        );
      }
    }
  }

  const sc = r.scale;
  if (sc) {
    const { empty, loaded } = scalePhases(sc);
    const where = sc.memory.notApplied
      ? `without a memory limit (${sc.memory.notApplied})`
      : `in a ${mb(sc.memory.limitBytes)} MB memory cgroup (heap limit ${mb(sc.memory.heapLimitBytes)} MB)`;
    const rate = f(sc.fill.objects / sc.fill.seconds, 0);
    out.push(
      '## Scale of the ledger',
      '',
      `Kubernetes ${sc.kubernetes}. The loaded ledger: ${loaded?.claims ?? '–'} IPClaims in ${sc.pools} /16 IPPool(s), ` +
        `${loaded?.pods ?? '–'} of them held by pinned pods (${sc.namespaces} namespaces), the rest reservations of ${sc.statefulSets} ` +
        `StatefulSets with no replicas; created through the API in ${f(sc.fill.seconds, 1)} s (${sc.fill.objects} objects, ` +
        `${sc.fill.concurrency} at a time, ${rate}/s). A fresh netpin for each ledger, ${where}; allocating reviews posted straight to ` +
        "it, each one an IPClaim create. Then as many IPClaim creates posted straight to the API server at the reviews' " +
        'concurrency, with netpin watching: the latency each review waits on, the floor under its own.',
      '',
      table(
        [
          'ledger',
          'IPClaims',
          'pods',
          'start to ready s',
          'RSS ready MB',
          'RSS after reviews MB',
          'peak RSS MB',
          'reviews',
          'req/s',
          'p50 ms',
          'p99 ms',
          'p99 × empty',
          'API server create p50 ms',
          'API server create p99 ms',
          'API server p99 × empty',
        ],
        sc.phases.map((x) => [
          x.ledger,
          x.claims,
          x.pods,
          f(x.readySeconds),
          mb(x.rssReadyBytes),
          mb(x.rssAfterLoadBytes),
          mb(x.peakRssBytes),
          x.requests,
          f(x.rps, 0),
          f(x.latencyMs.p50),
          f(x.latencyMs.p99),
          f(x.latencyMs.p99 / (empty?.latencyMs.p99 ?? NaN)),
          f(x.apiserverCreateMs.p50),
          f(x.apiserverCreateMs.p99),
          f(x.apiserverCreateMs.p99 / (empty?.apiserverCreateMs?.p99 ?? NaN)),
        ]),
      ),
      '',
    );
    if (empty && loaded?.claims) {
      const perClaim = ((loaded.rssReadyBytes ?? NaN) - (empty.rssReadyBytes ?? NaN)) / loaded.claims;
      out.push(
        `RSS once ready grew by ${f(perClaim, 0)} bytes per IPClaim from the empty ledger to the loaded one ` +
          "(the pods' records included).",
        '',
      );
    }
    out.push(
      `The reconciler's rounds over ${sc.sweepWindowSeconds} s, every claim past its grace period and none to release ` +
        "(V8 sampling profiler in netpin). Busy: the samples with the round's functions (sweep, staleClaims, bind) on the stack and " +
        'the garbage collections among them, while the event loop serves nothing else; wall: from the first such sample to the last.',
      '',
      table(
        ['ledger', 'rounds seen', 'busy ms each', 'wall ms each', 'longest busy ms'],
        sc.phases.map((x) => [
          x.ledger,
          x.sweeps.length,
          x.sweeps.map((y) => f(y.busyMs, 1)).join(' / ') || '–',
          x.sweeps.map((y) => f(y.wallMs, 1)).join(' / ') || '–',
          f(x.sweeps.length ? Math.max(...x.sweeps.map((y) => y.busyMs)) : NaN, 1),
        ]),
      ),
      '',
    );
  }
  return out.join('\n');
}
