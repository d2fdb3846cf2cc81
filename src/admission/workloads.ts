import type { WorkloadShape } from '../cni/dialect.js';
import { workloadInfo, type WorkloadInfo, type WorkloadKind } from '../cluster/view.js';
import { hasIntentKeys, KEYS } from '../intent/keys.js';
import { type Intent, type Problem } from '../intent/types.js';
import { formatDual } from '../net/address.js';
import type { AllocationRequest, Plan } from '../ipam/allocator.js';
import { ownerKey, type Owner } from '../ipam/claim.js';
import type { EventNotice } from '../cluster/event-sink.js';
import { renderProblems, type AdmissionDeps } from './context.js';
import { preflight } from './pods.js';
import { allowed, denied, type Verdict } from './respond.js';
import type { AdmissionRequest } from './review.js';

/**
 * The most ordinals one StatefulSet may have reserved. Each is an IPClaim in the API server and an
 * allocation started at once in this process: spec.replicas may be up to 2^31 - 1, and 2 billion
 * allocations exhaust the heap long before any pool. Ten thousand pinned pods in one StatefulSet is
 * already far past what a cluster runs.
 */
const MAX_RESERVED_ORDINALS = 10_000;

interface Workload extends WorkloadInfo {
  kind: WorkloadKind;
  namespace: string;
  name: string;
}

/**
 * Deployment and StatefulSet CREATE/UPDATE: refuse at `kubectl apply` what their
 * pods could never get. With `reserve`, a StatefulSet's ordinals are claimed in
 * order, so that ordinal k holds the k-th free address (or entry k of the list).
 */
export async function admitWorkload(req: AdmissionRequest, deps: AdmissionDeps, reserve: boolean): Promise<Verdict> {
  if (req.operation === 'DELETE') return reserve ? releaseWorkload(req, deps) : allowed();
  if (req.operation !== 'CREATE' && req.operation !== 'UPDATE') return allowed();
  const obj = req.object!;
  const kind = req.kind.kind as WorkloadKind;
  const w: Workload = {
    kind,
    namespace: req.namespace ?? obj.metadata?.namespace ?? 'default',
    name: obj.metadata?.name ?? req.name ?? '',
    ...workloadInfo(kind, obj.spec),
  };
  const warnings: string[] = [];
  if (hasIntentKeys(obj.metadata?.annotations)) {
    warnings.push(
      `netpin: the netpin.io/ annotations on the ${w.kind}'s own metadata are ignored; put them under spec.template.metadata.annotations`,
    );
  }
  if (reserve && !req.dryRun) deps.cluster.rememberWorkload?.(w.kind, w.namespace, w.name, w);
  return admit(w, req, deps, reserve, warnings);
}

/**
 * The scale subresource of a Deployment or StatefulSet: `kubectl scale` and the
 * HorizontalPodAutoscaler never pass through the workload's own UPDATE, and the Scale
 * object has no template, so the intent comes from the workload as the cluster knows it.
 */
export async function admitScale(req: AdmissionRequest, deps: AdmissionDeps, reserve: boolean): Promise<Verdict> {
  if (req.operation !== 'UPDATE') return allowed();
  const namespace = req.namespace ?? 'default';
  const name = req.name ?? req.object?.metadata?.name ?? '';
  const kind: WorkloadKind = req.resource?.resource === 'statefulsets' ? 'StatefulSet' : 'Deployment';
  const info =
    kind === 'StatefulSet' ? deps.cluster.statefulSet(namespace, name) : await deps.cluster.deployment(namespace, name);
  const replicas = req.object?.spec?.replicas;
  if (!info || typeof replicas !== 'number') return allowed();
  const w: Workload = { ...info, replicas, kind, namespace, name };
  if (reserve && !req.dryRun) deps.cluster.rememberWorkload?.(kind, namespace, name, w);
  return admit(w, req, deps, reserve, []);
}

async function admit(
  w: Workload,
  req: AdmissionRequest,
  deps: AdmissionDeps,
  reserve: boolean,
  warnings: string[],
): Promise<Verdict> {
  const shape: WorkloadShape = { kind: w.kind, replicas: w.replicas, statefulSet: w.kind === 'StatefulSet' };
  // Every check a pod of this template would get at CREATE, so that the controller never loops on refusals.
  const { checked, problems } = await preflight(w.templateAnnotations, shape, w.namespace, deps);
  if (checked) problems.push(...replicaProblems(w, checked.intent));
  if (
    checked &&
    w.kind === 'StatefulSet' &&
    w.replicas > MAX_RESERVED_ORDINALS &&
    deps.dialect.pinsAddresses(checked.intent, shape)
  ) {
    problems.push({
      key: checked.intent.ips ? KEYS.ips : checked.intent.ip ? KEYS.ip : KEYS.pool,
      message: `StatefulSet ${w.name} has ${w.replicas} replicas, and netpin reserves an address for ${MAX_RESERVED_ORDINALS} ordinals at most`,
      fix: `lower spec.replicas to ${MAX_RESERVED_ORDINALS} or fewer, or split the StatefulSet`,
    });
  }
  if (problems.length) return denied(renderProblems(problems, deps.dialect), warnings);
  if (!checked) return allowed(warnings);

  const { intent, plan } = checked;
  if (w.kind === 'StatefulSet' && reserve && !req.dryRun && deps.dialect.pinsAddresses(intent, shape)) {
    const r = await reserveOrdinals(w, intent, plan, deps);
    if (r.problems) return denied(renderProblems(r.problems, deps.dialect), warnings);
    if (r.reserved) {
      warnings.push(`netpin: reserved ${r.reserved}`);
      recordReservation(req, w, `Reserved ${r.reserved} from IPPool ${plan.pools.map((p) => p.name).join(', ')}`, deps);
    }
  }
  return allowed(warnings);
}

/** Fixed addresses against the replicas, and the pods a rolling update adds on top of them. */
function replicaProblems(w: Workload, intent: Intent): Problem[] {
  const problems: Problem[] = [];
  if (intent.ip && w.replicas > 1) {
    problems.push({
      key: KEYS.ip,
      message: `one fixed address cannot serve ${w.replicas} replicas: every replica after the first would wait in ContainerCreating`,
      fix:
        w.kind === 'StatefulSet'
          ? 'list one address per ordinal in netpin.io/ips, or use netpin.io/pool'
          : 'use netpin.io/pool or netpin.io/ips, or set replicas: 1',
    });
  }
  if (intent.ips && intent.ips.length < w.replicas) {
    problems.push({
      key: KEYS.ips,
      message:
        w.kind === 'StatefulSet'
          ? `has ${intent.ips.length} entries, but ordinals ${w.ordinalsStart}..${w.ordinalsStart + w.replicas - 1} need ${w.replicas} (entry 1 goes to ordinal ${w.ordinalsStart})`
          : `has ${intent.ips.length} entries for ${w.replicas} replicas`,
      fix: `list at least ${w.replicas} entries, or lower replicas to ${intent.ips.length}`,
    });
  }
  if (problems.length || w.maxSurge === undefined) return problems;
  // A rolling update starts new pods before the old ones stop; the old ones hold their addresses,
  // so without a spare address a new pod is refused, never becomes ready, and the rollout hangs.
  const surge = surgeOf(w.maxSurge, w.replicas);
  const fix = 'set spec.strategy.type: Recreate, or spec.strategy.rollingUpdate.maxSurge: 0 with maxUnavailable: 1';
  if (intent.ip && surge > 0) {
    problems.push({
      key: KEYS.ip,
      message: `a rolling update (maxSurge ${w.maxSurge}) would start the new pod while the old one holds ${formatDual(intent.ip)}, so the new pod would be refused and the rollout would never finish`,
      fix,
    });
  } else if (intent.ips && intent.ips.length < w.replicas + surge) {
    problems.push({
      key: KEYS.ips,
      message: `has ${intent.ips.length} entries for ${w.replicas} replicas, and a rolling update (maxSurge ${w.maxSurge}) adds ${surge} more pods while the old ones hold their addresses, so the rollout would never finish`,
      fix: `${fix}, or list ${w.replicas + surge} entries`,
    });
  }
  return problems;
}

/** How many pods a rolling update may add above replicas: maxSurge as a count or a percentage rounded up, as the Deployment controller reads it. */
function surgeOf(maxSurge: number | string, replicas: number): number {
  if (typeof maxSurge === 'number') return maxSurge;
  const m = /^(\d+)%$/.exec(maxSurge.trim());
  return m ? Math.ceil((replicas * Number(m[1])) / 100) : Number(maxSurge) || 0;
}

async function reserveOrdinals(w: Workload, intent: Intent, plan: Plan, deps: AdmissionDeps) {
  const owners: Owner[] = Array.from({ length: w.replicas }, (_, k) => ({
    kind: 'StatefulSet',
    namespace: w.namespace,
    name: w.name,
    ordinal: w.ordinalsStart + k,
  }));
  const namespaceLabels = deps.cluster.namespaceLabels(w.namespace);
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
  await Promise.all(
    requests.flatMap((r) => deps.allocator.staleClaims(r)).map((c) => deps.allocator.ledger.release(c)),
  );
  const results = await Promise.allSettled(requests.map((r) => deps.allocator.allocate(r)));
  const done = results.flatMap((r) => (r.status === 'fulfilled' && r.value.ok ? [r.value] : []));
  const failed = results.findIndex((r) => r.status === 'rejected' || !r.value.ok);
  if (failed >= 0) {
    // Claims this request made would only wait for the reconciler; give them back now.
    for (const r of done) for (const c of r.fresh) await deps.allocator.ledger.release(c);
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
  const summary = done.map((r, k) => `${w.name}-${w.ordinalsStart + k}=${formatDual(r.allocation.addresses)}`);
  const shown = summary.length > 6 ? [...summary.slice(0, 3), '…', ...summary.slice(-2)] : summary;
  return { problems: undefined, reserved: done.some((r) => r.fresh.length > 0) ? shown.join(' ') : undefined };
}

/** On the StatefulSet; one being created does not exist yet, so its event waits for it and its uid. */
function recordReservation(req: AdmissionRequest, w: Workload, note: string, deps: AdmissionDeps): void {
  // UPDATE and scale: the StatefulSet (or its Scale, which carries its uid) as stored.
  const regarding = {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    namespace: w.namespace,
    name: w.name,
    uid: req.oldObject?.metadata?.uid,
  };
  const event: EventNotice = { regarding, type: 'Normal', reason: 'Reserved', action: 'Reserve', note };
  if (req.operation === 'CREATE') deps.events?.recordWhenCreated(event);
  else deps.events?.record(event);
}

async function releaseWorkload(req: AdmissionRequest, deps: AdmissionDeps): Promise<Verdict> {
  if (!deps.releaseOnDelete || req.dryRun) return allowed();
  const namespace = req.namespace ?? 'default';
  const name = req.name ?? req.oldObject?.metadata?.name ?? '';
  deps.cluster.rememberWorkload?.(req.kind.kind as WorkloadKind, namespace, name, undefined);
  if (req.kind.kind !== 'StatefulSet') return allowed();
  const prefix = ownerKey({ kind: 'StatefulSet', namespace, name, ordinal: 0 }).replace(/\/0$/, '/');
  for (const claim of [...deps.allocator.ledger.index.allClaims()]) {
    if (ownerKey(claim.owner).startsWith(prefix)) await deps.allocator.ledger.release(claim);
  }
  return allowed();
}
