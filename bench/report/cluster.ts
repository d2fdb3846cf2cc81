// The ledger and control-plane parts of the report.
import type { ClusterReport } from '../cluster.js';
import type { LedgerReport } from '../ledger.js';
import { f, mb, profileTables, table } from './tables.js';

export function ledgerSection(l: LedgerReport): string[] {
  return [
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
  ];
}

/** Time to every pod in each mode, and the ratios between modes. */
function summary(c: ClusterReport): string[] {
  return [
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
  ];
}

function cpu(c: ClusterReport): string[] {
  return [
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
  ];
}

function rounds(c: ClusterReport): string[] {
  return [
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
  ];
}

function claimWrites(c: ClusterReport): string[] {
  const out: string[] = [];
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
  return out;
}

function profiles(c: ClusterReport): string[] {
  const out: string[] = [];
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
  return out;
}

export function clusterSection(c: ClusterReport): string[] {
  return [...summary(c), ...cpu(c), ...rounds(c), ...claimWrites(c), ...profiles(c)];
}
