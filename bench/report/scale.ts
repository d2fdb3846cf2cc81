// The scale part of the report: netpin on an empty and a loaded ledger.
import type { ScaleReport } from '../scale.js';
import { f, mb, scalePhases, table } from './tables.js';

/** Start, memory and latency on each ledger. */
function phases(sc: ScaleReport): string[] {
  const out: string[] = [];
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
  return out;
}

/** The reconciler's rounds on each ledger. */
function sweeps(sc: ScaleReport): string[] {
  const out: string[] = [];
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
  return out;
}

export function scaleSection(sc: ScaleReport): string[] {
  return [...phases(sc), ...sweeps(sc)];
}
