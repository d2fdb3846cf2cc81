// The admission part of the report: req/s, latency, CPU and memory of each server, netpin's own
// work in-process, and the profiles.
import type { AdmissionReport, ReviewSize } from '../admission.js';
import { CASES, SIZES } from '../admission.js';
import { f, mb, peakOf, peakRatio, profileTables, sizeLabel, table } from './tables.js';

function intro(a: AdmissionReport): string[] {
  return [
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
  ];
}

/** One table per review size: every server at every connection count, against the bare one. */
function runs(a: AdmissionReport): string[] {
  const out: string[] = [];
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
  return out;
}

function inProcess(a: AdmissionReport): string[] {
  const out: string[] = [];
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
  return out;
}

function memory(a: AdmissionReport): string[] {
  const m = a.memory;
  return [
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
  ];
}

function profiles(a: AdmissionReport): string[] {
  const out: string[] = [];
  for (const p of a.profiles) {
    const measured = a.rows.find((x) => x.size === p.size && x.case === p.case && x.connections === p.connections);
    const title = `${CASES[p.case].title}, ${sizeLabel(a, p.size)}, ${p.connections} connections, ${p.seconds} s profiled`;
    // The bare server runs no netpin code per request: no table of netpin's functions for it.
    out.push(profileTables(title, p.summary, measured?.cpuUsPerRequest, 'req', 10, p.case !== 'bare'), '');
  }
  return out;
}

export function admissionSection(a: AdmissionReport): string[] {
  return [...intro(a), ...runs(a), ...inProcess(a), ...memory(a), ...profiles(a)];
}
