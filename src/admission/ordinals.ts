// A StatefulSet's reserved ordinals: the pods quota they count against, their claims, and their release.
import { ownerKey, type Claim, type Owner } from '../ipam/claim.js';
import type { AllocationRequest, Plan } from '../ipam/allocator.js';
import type { PodQuota } from '../ipam/ledger.js';
import { SCALE_DOWN_RELEASE } from '../ipam/scale-down.js';
import type { EventNotice } from '../cluster/event-sink.js';
import type { WorkloadInfo, WorkloadKind } from '../cluster/view.js';
import type { Intent, Problem } from '../intent/types.js';
import { formatDual } from '../net/address.js';
import type { Admit } from './context.js';
import { allowed, type Verdict } from './respond.js';
import type { AdmissionRequest } from './review.js';
import { addressKey, type Workload } from './workload-counts.js';

/** The ordinals of the StatefulSet's range that hold a reservation already. */
function reservedInRange(w: Workload, admit: Admit): number {
  const { index } = admit;
  let n = 0;
  for (let k = 0; k < w.replicas; k++)
    if (
      index.claimsOf({ kind: 'StatefulSet', namespace: w.namespace, name: w.name, ordinal: w.ordinalsStart + k }).length
    )
      n++;
  return n;
}

/**
 * A StatefulSet's reservations against the namespace's pods quota: the ordinals its StatefulSets hold
 * reservations for, this one's included, may not outnumber the pods the namespace may run. Without
 * it, one StatefulSet of 10 000 replicas whose pods the quota never lets run holds 10 000 addresses.
 */
export function quotaProblems(w: Workload, intent: Intent, quota: PodQuota, admit: Admit): Problem[] {
  const others = admit.index.reservedOrdinals(w.namespace) - reservedInRange(w, admit);
  if (others + w.replicas <= quota.pods) return [];
  const room = Math.max(0, quota.pods - others);
  return [
    {
      key: addressKey(intent),
      message: `namespace ${w.namespace} may run ${quota.pods} pods (ResourceQuota ${quota.quota}), and its StatefulSets hold reservations for ${others} other ordinals: StatefulSet ${w.name} may reserve ${room} more, not ${w.replicas}`,
      fix: `lower spec.replicas to ${room}, give back reservations (delete StatefulSets, or scale them down: the ordinals above the new size are given back after ${SCALE_DOWN_RELEASE}, 1h by default), or ask for a larger pods quota`,
    },
  ];
}

export async function reserveOrdinals(
  w: Workload,
  intent: Intent,
  plan: Plan,
  admit: Admit,
  quota?: PodQuota,
  prior?: WorkloadInfo,
) {
  const owners: Owner[] = Array.from({ length: w.replicas }, (_, k) => ({
    kind: 'StatefulSet',
    namespace: w.namespace,
    name: w.name,
    ordinal: w.ordinalsStart + k,
  }));
  const namespaceLabels = admit.cluster.namespaceLabels(w.namespace);
  const requests: AllocationRequest[] = owners.map((owner, k) => ({
    intent,
    namespace: w.namespace,
    namespaceLabels,
    owner,
    entry: intent.ips ? k : undefined,
    dryRun: false,
    plan,
  }));
  // Ordinal k gets the k-th free address because the allocations start in ordinal order with no
  // await in between (the Ledger's ordering rule). A release would be such an await, so what the
  // intent no longer allows is given back first.
  const stale = requests.flatMap((r) => admit.allocator.staleClaims(r));
  const released = await Promise.all(stale.map((c) => admit.ledger.release(c)));
  // Judged again with no await before the claims: another reservation of this process may have come
  // between the quota's read and now.
  const over = quota ? quotaProblems(w, intent, quota, admit) : [];
  if (over.length) {
    await reclaim(
      stale.filter((_, i) => released[i]),
      admit,
    );
    return { problems: over };
  }
  const results = await Promise.allSettled(requests.map((r) => admit.allocator.allocate(r)));
  const done = results.flatMap((r) => (r.status === 'fulfilled' && r.value.ok ? [r.value] : []));
  const failed = results.findIndex((r) => r.status === 'rejected' || !r.value.ok);
  if (failed >= 0) {
    // Claims this request made would only wait for the reconciler; give them back now.
    for (const r of done) for (const c of r.fresh) await admit.ledger.release(c);
    // The update is refused, so the running ordinals keep their addresses: claim back what was given up.
    await reclaim(
      stale.filter((_, i) => released[i]),
      admit,
    );
    const r = results[failed]!;
    if (r.status === 'rejected') throw r.reason;
    const problems = r.value.ok ? [] : r.value.problems;
    return {
      problems: problems.map((p): Problem => ({
        ...p,
        message: `${w.name}-${w.ordinalsStart + failed}: ${p.message}`,
      })),
    };
  }
  // Ordinals scaled back up keep what they held since their scale-down: renewed, so that a release the
  // leader decided while they were outside the range fails instead of freeing them now.
  const back = (k: number) =>
    prior !== undefined &&
    (k + w.ordinalsStart < prior.ordinalsStart || k + w.ordinalsStart >= prior.ordinalsStart + prior.replicas);
  await Promise.all(
    done.flatMap((r, k) =>
      back(k) && r.fresh.length === 0 ? r.claims.map((c) => admit.ledger.renew(c).catch(() => false)) : [],
    ),
  );
  const summary = done.map((r, k) => `${w.name}-${w.ordinalsStart + k}=${formatDual(r.allocation.addresses)}`);
  const shown = summary.length > 6 ? [...summary.slice(0, 3), '…', ...summary.slice(-2)] : summary;
  return { problems: undefined, reserved: done.some((r) => r.fresh.length > 0) ? shown.join(' ') : undefined };
}

/** Claims again, for the same owners, what a refused reservation gave up first; an address taken meanwhile stays lost to it. */
async function reclaim(claims: readonly Claim[], admit: Admit): Promise<void> {
  for (const c of claims) {
    const pool = admit.index.pool(c.pool);
    if (pool) await admit.ledger.claim(pool, c.ip, c.owner).catch(() => undefined);
  }
}

/** On the StatefulSet; one being created does not exist yet, so its event waits for it and its uid. */
export function recordReservation(req: AdmissionRequest, w: Workload, note: string, admit: Admit): void {
  // UPDATE and scale: the StatefulSet (or its Scale, which carries its uid) as stored.
  const regarding = {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    namespace: w.namespace,
    name: w.name,
    uid: req.oldObject?.metadata?.uid,
  };
  const event: EventNotice = { regarding, type: 'Normal', reason: 'Reserved', action: 'Reserve', note };
  if (req.operation === 'CREATE') admit.events?.recordWhenCreated(event);
  else admit.events?.record(event);
}

export async function releaseWorkload(req: AdmissionRequest, admit: Admit): Promise<Verdict> {
  if (!admit.releaseOnDelete || req.dryRun) return allowed();
  const namespace = req.namespace ?? 'default';
  const name = req.name ?? req.oldObject?.metadata?.name ?? '';
  admit.cluster.rememberWorkload?.(req.kind.kind as WorkloadKind, namespace, name, undefined);
  if (req.kind.kind !== 'StatefulSet') return allowed();
  const prefix = ownerKey({ kind: 'StatefulSet', namespace, name, ordinal: 0 }).replace(/\/0$/, '/');
  for (const claim of [...admit.index.allClaims()]) {
    if (ownerKey(claim.owner).startsWith(prefix)) await admit.ledger.release(claim);
  }
  return allowed();
}
