import type { WorkloadShape } from '../cni/dialect.js';
import { workloadInfo, type WorkloadInfo, type WorkloadKind } from '../cluster/view.js';
import { hasIntentKeys, KEYS } from '../intent/keys.js';
import { parseIntent } from '../intent/parse.js';
import { type Intent, type Problem } from '../intent/types.js';
import { addressList, familyOf, formatDual, type Family } from '../net/address.js';
import type { AllocationRequest, Plan } from '../ipam/allocator.js';
import { ownerKey, type Claim, type Owner } from '../ipam/claim.js';
import type { PodQuota } from '../ipam/ledger.js';
import type { Pool } from '../ipam/pool.js';
import { SCALE_DOWN_RELEASE, scaleDownRelease } from '../ipam/scale-down.js';
import type { EventNotice } from '../cluster/event-sink.js';
import { renderProblems, type AdmissionDeps } from './context.js';
import { handWrittenLabels, preflight } from './pods.js';
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
  // Each of its pods would be refused at creation: said at apply instead.
  const labels = handWrittenLabels(obj.spec?.template?.metadata?.labels, {});
  if (labels.length) return denied(renderProblems(labels, deps.dialect));
  const warnings: string[] = [];
  const own = { ...obj.metadata?.annotations };
  if (kind === 'StatefulSet') {
    const release = scaleDownRelease(own);
    if (typeof release === 'object')
      return denied(
        renderProblems(
          [
            {
              key: SCALE_DOWN_RELEASE,
              message: release.problem,
              fix: `write how long the ordinals above a new, lower spec.replicas keep their addresses (${SCALE_DOWN_RELEASE}: 1h), "never" to keep them while the StatefulSet exists, or remove the annotation for 1h`,
            },
          ],
          deps.dialect,
        ),
      );
    delete own[SCALE_DOWN_RELEASE];
  }
  if (hasIntentKeys(own)) {
    warnings.push(
      `netpin: the netpin.io/ annotations on the ${w.kind}'s own metadata are ignored; put them under spec.template.metadata.annotations`,
    );
  }
  if (reserve && !req.dryRun) deps.cluster.rememberWorkload?.(w.kind, w.namespace, w.name, w);
  const prior = req.operation === 'UPDATE' && req.oldObject ? workloadInfo(kind, req.oldObject.spec) : undefined;
  return admit(w, prior, req, deps, reserve, warnings);
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
  // The Scale as stored says how many replicas there were; the template is the workload's own.
  const stored = req.oldObject?.spec?.replicas;
  const prior = { ...info, replicas: typeof stored === 'number' ? stored : info.replicas };
  return admit(w, prior, req, deps, reserve, []);
}

/** `prior`: the workload as it was before an UPDATE or a scale, undefined at CREATE. */
async function admit(
  w: Workload,
  prior: WorkloadInfo | undefined,
  req: AdmissionRequest,
  deps: AdmissionDeps,
  reserve: boolean,
  warnings: string[],
): Promise<Verdict> {
  // Counts the API server will refuse (replicas: 0.5, a negative ordinals.start, ...) are its to refuse,
  // in its own words, after the webhooks: netpin counts pods and addresses only in whole numbers.
  if (!countable(w)) return allowed(warnings);
  if (prior && !countable(prior)) prior = undefined;
  const shape: WorkloadShape = { kind: w.kind, replicas: w.replicas, statefulSet: w.kind === 'StatefulSet' };
  // Every check a pod of this template would get at CREATE, so that the controller never loops on refusals.
  const { checked, problems } = await preflight(w.templateAnnotations, shape, w.namespace, deps);
  if (checked) problems.push(...replicaProblems(w, checked.intent));
  const pins = checked !== undefined && deps.dialect.pinsAddresses(checked.intent, shape);
  const reserving = pins && w.kind === 'StatefulSet' && reserve && !req.dryRun;
  if (checked && pins && w.kind === 'StatefulSet' && w.replicas > MAX_RESERVED_ORDINALS) {
    problems.push({
      key: checked.intent.ips ? KEYS.ips : checked.intent.ip ? KEYS.ip : KEYS.pool,
      message: `StatefulSet ${w.name} has ${w.replicas} replicas, and netpin reserves an address for ${MAX_RESERVED_ORDINALS} ordinals at most`,
      fix: `lower spec.replicas to ${MAX_RESERVED_ORDINALS} or fewer, or split the StatefulSet`,
    });
  }
  // Reserving ordinals asks the ledger the same for real, and names the ordinal it cannot serve.
  // What a namespace may hold: the pools' spec.namespaceLimit first (the tighter rule where it is set),
  // and for a StatefulSet's reservations its pods quota.
  const grows = checked !== undefined && needsMore(w, prior, checked.intent);
  if (checked && pins && grows && problems.length === 0) problems.push(...limitProblems(w, prior, checked, deps));
  if (checked && pins && !reserving && problems.length === 0)
    problems.push(...ledgerProblems(w, prior, checked.intent, checked.plan, deps));
  let quota: PodQuota | undefined;
  if (checked && pins && grows && w.kind === 'StatefulSet' && reserve && problems.length === 0) {
    quota = await deps.allocator.ledger.podQuota?.(w.namespace);
    if (quota) problems.push(...quotaProblems(w, checked.intent, quota, deps));
  }
  if (problems.length) return denied(renderProblems(problems, deps.dialect), warnings);
  if (!checked) return allowed(warnings);

  const { intent, plan } = checked;
  if (reserving) {
    const r = await reserveOrdinals(w, intent, plan, deps, quota, prior);
    if (r.problems) return denied(renderProblems(r.problems, deps.dialect), warnings);
    if (r.reserved) {
      warnings.push(`netpin: reserved ${r.reserved}`);
      recordReservation(req, w, `Reserved ${r.reserved} from IPPool ${plan.pools.map((p) => p.name).join(', ')}`, deps);
    }
  }
  return allowed(warnings);
}

/** Whether every count of the workload is a whole number of pods, as the API server stores it. */
function countable(w: WorkloadInfo): boolean {
  const whole = (n: number) => Number.isSafeInteger(n) && n >= 0;
  const surge = w.maxSurge;
  const surgeOk = surge === undefined || (typeof surge === 'number' ? whole(surge) : /^\d+%$/.test(surge));
  return whole(w.replicas) && whole(w.ordinalsStart) && surgeOk;
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
  if (intent.ip && surge > 0) {
    problems.push({
      key: KEYS.ip,
      message: `a rolling update (maxSurge ${w.maxSurge}) would start the new pod while the old one holds ${formatDual(intent.ip)}, so the new pod would be refused and the rollout would never finish`,
      fix: SURGE_FIX,
    });
  } else if (intent.ips && intent.ips.length < w.replicas + surge) {
    problems.push({
      key: KEYS.ips,
      message: `has ${intent.ips.length} entries for ${w.replicas} replicas, and a rolling update (maxSurge ${w.maxSurge}) adds ${surge} more pods while the old ones hold their addresses, so the rollout would never finish`,
      fix: `${SURGE_FIX}, or list ${w.replicas + surge} entries`,
    });
  }
  return problems;
}

const SURGE_FIX = 'set spec.strategy.type: Recreate, or spec.strategy.rollingUpdate.maxSurge: 0 with maxUnavailable: 1';

/** How many pods a rolling update may add above replicas: maxSurge as a count or a percentage rounded up, as the Deployment controller reads it. */
function surgeOf(maxSurge: number | string, replicas: number): number {
  if (typeof maxSurge === 'number') return maxSurge;
  const m = /^(\d+)%$/.exec(maxSurge.trim());
  return m ? Math.ceil((replicas * Number(m[1])) / 100) : Number(maxSurge) || 0;
}

/** The most pods of the workload at once with this many replicas: they, and the surge of a rolling update. */
function podsAtOnce(w: WorkloadInfo, replicas = w.replicas): number {
  return replicas + (w.maxSurge === undefined ? 0 : surgeOf(w.maxSurge, replicas));
}

/** The most replicas whose pods, surge included, fit in `room` addresses (a percentage surge grows with them). */
function replicasWithin(w: WorkloadInfo, room: number): number {
  let lo = 0;
  let hi = w.replicas;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (podsAtOnce(w, mid) <= room) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Where an intent's pod addresses come from, as text: equal texts draw on the same pools and fixed addresses. */
function sourceOf(intent: Intent): string {
  return JSON.stringify([intent.pools ?? [], intent.ip && formatDual(intent.ip), intent.ips?.map(formatDual)]);
}

/**
 * What the ledger would refuse the workload's pods for, asked without claiming anything: a fixed
 * address another owner holds, or a pool without room for every pod at once (replicas, and the
 * surge of a rolling update). Counts come from the index, never from walking a pool.
 *
 * What the workload holds already is its own to use. A StatefulSet's ordinals hold claims in their
 * own name, counted exactly. A Deployment's pods do not: the ledger knows them by pod name, or by
 * request uid before they have one, never by Deployment; so the replicas of the object an UPDATE
 * replaces are taken to hold one address each, in the pools it named or among the fixed addresses
 * it listed. And an UPDATE that keeps where the addresses come from and needs no more pods at once
 * than before is never refused: a Deployment running at full size stays editable even when the
 * spare address of its surge was taken since (its rollouts wait for an old pod to go, as before).
 */
function ledgerProblems(
  w: Workload,
  prior: WorkloadInfo | undefined,
  intent: Intent,
  plan: Plan,
  deps: AdmissionDeps,
): Problem[] {
  const need = podsAtOnce(w);
  const was: Was | undefined = prior && { ...prior, intent: parseIntent(prior.templateAnnotations).intent };
  if (was && sourceOf(was.intent) === sourceOf(intent) && need <= podsAtOnce(was)) return [];
  if (intent.ip || intent.ips)
    return w.kind === 'StatefulSet' ? ordinalConflicts(w, intent, deps) : entryProblems(w, was, intent, deps);
  return (['ipv4', 'ipv6'] as const).flatMap((f) => roomProblems(w, was, f, plan, deps));
}

/**
 * Whether the workload may need more addresses than before: a CREATE, another source of addresses, or
 * more pods at once. An UPDATE that needs no more is never refused for what the namespace holds, so
 * that a workload stays editable, and scalable down, after a cap or a quota was lowered under it.
 */
function needsMore(w: Workload, prior: WorkloadInfo | undefined, intent: Intent): boolean {
  if (!prior) return true;
  const was = parseIntent(prior.templateAnnotations).intent;
  return sourceOf(was) !== sourceOf(intent) || podsAtOnce(w) > podsAtOnce(prior);
}

/**
 * The pools' spec.namespaceLimit: every pod of the workload at once (a StatefulSet's reservations),
 * besides what the namespace holds already, must fit under each cap. What the workload holds itself
 * counts once, as in roomProblems.
 */
function limitProblems(
  w: Workload,
  prior: WorkloadInfo | undefined,
  checked: CheckedLike,
  deps: AdmissionDeps,
): Problem[] {
  const { intent, plan } = checked;
  const was: Was | undefined = prior && { ...prior, intent: parseIntent(prior.templateAnnotations).intent };
  const need = podsAtOnce(w);
  const index = deps.allocator.ledger.index;
  const labels = deps.cluster.namespaceLabels(w.namespace);
  const fixed = intent.ip ? [intent.ip] : intent.ips?.slice(0, need);
  const wanted: Array<[Pool, Family, number]> = [];
  for (const f of ['ipv4', 'ipv6'] as const) {
    if (!fixed) {
      const pool = plan.byFamily[f];
      if (pool) wanted.push([pool, f, need]);
      continue;
    }
    for (const pool of plan.pools) {
      if (!pool.families.includes(f)) continue;
      const n = fixed.flatMap(addressList).filter((a) => familyOf(a) === f && index.poolOf(a) === pool).length;
      if (n) wanted.push([pool, f, intent.ip ? Math.min(n, need) : n]);
    }
  }
  for (const [pool, family, n] of wanted) {
    const own = ownedIn(w, was, pool.name, family, deps);
    const key = intent.ips ? KEYS.ips : intent.ip ? KEYS.ip : KEYS.pool;
    const problem = deps.allocator.limitProblem(
      pool,
      family,
      w.namespace,
      n,
      own,
      key,
      labels,
      `the ${n} that ${needText(w)}`,
    );
    if (!problem) continue;
    const room = Math.max(0, pool.namespaceLimit! - (index.namespaceHeld(pool.name, w.namespace, family) - own));
    return [{ ...problem, fix: `lower replicas to ${replicasWithin(w, room)}, or ${problem.fix}` }];
  }
  return [];
}

type CheckedLike = { intent: Intent; plan: Plan };

/** The ordinals of the StatefulSet's range that hold a reservation already. */
function reservedInRange(w: Workload, deps: AdmissionDeps): number {
  const index = deps.allocator.ledger.index;
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
function quotaProblems(w: Workload, intent: Intent, quota: PodQuota, deps: AdmissionDeps): Problem[] {
  const others = deps.allocator.ledger.index.reservedOrdinals(w.namespace) - reservedInRange(w, deps);
  if (others + w.replicas <= quota.pods) return [];
  const room = Math.max(0, quota.pods - others);
  return [
    {
      key: intent.ips ? KEYS.ips : intent.ip ? KEYS.ip : KEYS.pool,
      message: `namespace ${w.namespace} may run ${quota.pods} pods (ResourceQuota ${quota.quota}), and its StatefulSets hold reservations for ${others} other ordinals: StatefulSet ${w.name} may reserve ${room} more, not ${w.replicas}`,
      fix: `lower spec.replicas to ${room}, give back reservations (delete StatefulSets, or scale them down: the ordinals above the new size are given back after ${SCALE_DOWN_RELEASE}, 1h by default), or ask for a larger pods quota`,
    },
  ];
}

/** The workload before an UPDATE or a scale, with its intent. */
interface Was extends WorkloadInfo {
  intent: Intent;
}

/** Ordinal k gets entry k (or the one fixed address): each must be free, or held by an ordinal that gives it up. */
function ordinalConflicts(w: Workload, intent: Intent, deps: AdmissionDeps): Problem[] {
  const index = deps.allocator.ledger.index;
  // A reservation first gives back what its ordinals hold and may no longer: the StatefulSet's to hand on.
  const ours = (c: Claim) =>
    c.owner.kind === 'StatefulSet' &&
    c.owner.namespace === w.namespace &&
    c.owner.name === w.name &&
    c.owner.ordinal >= w.ordinalsStart &&
    c.owner.ordinal < w.ordinalsStart + w.replicas;
  const held: Array<{ ordinal: number; holder: Claim }> = [];
  for (let k = 0; k < w.replicas; k++) {
    for (const a of addressList(intent.ip ?? intent.ips![k]!)) {
      const holder = index.holderOf(a);
      if (holder && !ours(holder)) held.push({ ordinal: w.ordinalsStart + k, holder });
    }
  }
  if (held.length === 0) return [];
  const { ordinal, holder } = held[0]!;
  const first = deps.allocator.heldProblem(intent.ip ? KEYS.ip : KEYS.ips, holder);
  const more = held.length > 1 ? `, and ${held.length - 1} more of its addresses are held by other owners` : '';
  return [{ ...first, message: `${w.name}-${ordinal}: ${first.message}${more}` }];
}

/**
 * A Deployment's pods take the first listed entry that is free: enough entries must be free for
 * every pod at once, besides those the replaced object listed, which its pods are taken to hold.
 */
function entryProblems(w: Workload, was: Was | undefined, intent: Intent, deps: AdmissionDeps): Problem[] {
  const index = deps.allocator.ledger.index;
  const entries = intent.ip ? [intent.ip] : intent.ips!;
  const before = was ? [...(was.intent.ip ? [was.intent.ip] : []), ...(was.intent.ips ?? [])] : [];
  const listed = new Set(before.flatMap(addressList).map((a) => a.toString()));
  let free = 0;
  let ownable = 0;
  // The message names the holder of an entry the replaced object did not list, else any holder.
  let foreign: Claim | undefined;
  let first: Claim | undefined;
  for (const entry of entries) {
    const addresses = addressList(entry);
    const holder = addresses.map((a) => index.holderOf(a)).find((c) => c !== undefined);
    if (!holder) {
      free++;
      continue;
    }
    first ??= holder;
    if (addresses.every((a) => listed.has(a.toString()))) ownable++;
    else foreign ??= holder;
  }
  const own = Math.min(ownable, was?.replicas ?? 0);
  const room = free + own;
  const need = podsAtOnce(w);
  if (need <= room) return [];
  const key = intent.ip ? KEYS.ip : KEYS.ips;
  const conflict = deps.allocator.heldProblem(key, (foreign ?? first)!);
  if (entries.length === 1) return [conflict];
  const ownText = own ? ` and ${own} are taken to be held by its own pods` : '';
  return [
    {
      key,
      message: `${free} of its ${entries.length} entries are free${ownText}, and ${needText(w)}; ${conflict.message}`,
      fix: `${w.replicas <= room ? `${SURGE_FIX}, or ` : ''}list ${need - room} more free entries, or lower replicas to ${replicasWithin(w, room)}`,
    },
  ];
}

/** One family's pool must have room for every pod at once, counting what the workload holds in it already. */
function roomProblems(w: Workload, was: Was | undefined, family: Family, plan: Plan, deps: AdmissionDeps): Problem[] {
  const pool = plan.byFamily[family];
  if (!pool) return [];
  const usage = deps.allocator.usageOf(pool, family);
  const free = usage.capacity - usage.allocated;
  const own = ownedIn(w, was, pool.name, family, deps);
  const room = free + BigInt(own);
  const need = podsAtOnce(w);
  if (BigInt(need) <= room) return [];
  const has = `IPPool ${pool.name} has ${free} free ${family === 'ipv4' ? 'IPv4' : 'IPv6'} addresses (${usage.allocated} of ${usage.capacity} held)${own ? ` and ${own} that ${w.kind} ${w.name} holds` : ''}`;
  const roomFix = deps.allocator.roomFix(pool, family, deps.cluster.namespaceLabels(w.namespace));
  if (BigInt(w.replicas) <= room) {
    return [
      {
        key: KEYS.pool,
        message: `${has}: room for the ${w.replicas} replicas of ${w.kind} ${w.name}, but not for the ${need - w.replicas} more pods a rolling update adds (maxSurge ${w.maxSurge}) while the old ones hold their addresses, so the rollout would never finish`,
        fix: `${SURGE_FIX}, or ${roomFix}`,
      },
    ];
  }
  return [
    {
      key: KEYS.pool,
      message: `${has}, and ${needText(w)}`,
      fix: `lower replicas to ${replicasWithin(w, Number(room))}, or ${roomFix}`,
    },
  ];
}

/** The addresses of a pool family the workload holds already, as ledgerProblems counts them. */
function ownedIn(w: Workload, was: Was | undefined, pool: string, family: Family, deps: AdmissionDeps): number {
  if (w.kind === 'Deployment')
    return was && !was.intent.ip && !was.intent.ips && was.intent.pools?.includes(pool) ? was.replicas : 0;
  const index = deps.allocator.ledger.index;
  let n = 0;
  for (let k = 0; k < w.replicas; k++) {
    const owner: Owner = { kind: 'StatefulSet', namespace: w.namespace, name: w.name, ordinal: w.ordinalsStart + k };
    for (const c of index.claimsOf(owner)) if (c.pool === pool && familyOf(c.ip) === family) n++;
  }
  return n;
}

function needText(w: Workload): string {
  const surge = podsAtOnce(w) - w.replicas;
  return surge
    ? `${w.kind} ${w.name} needs ${w.replicas + surge}: ${w.replicas} replicas and ${surge} more pods a rolling update adds (maxSurge ${w.maxSurge})`
    : `${w.kind} ${w.name} has ${w.replicas} replicas`;
}

async function reserveOrdinals(
  w: Workload,
  intent: Intent,
  plan: Plan,
  deps: AdmissionDeps,
  quota?: PodQuota,
  prior?: WorkloadInfo,
) {
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
  const stale = requests.flatMap((r) => deps.allocator.staleClaims(r));
  const released = await Promise.all(stale.map((c) => deps.allocator.ledger.release(c)));
  // Judged again with no await before the claims: another reservation of this process may have come
  // between the quota's read and now.
  const over = quota ? quotaProblems(w, intent, quota, deps) : [];
  if (over.length) {
    await reclaim(
      stale.filter((_, i) => released[i]),
      deps,
    );
    return { problems: over };
  }
  const results = await Promise.allSettled(requests.map((r) => deps.allocator.allocate(r)));
  const done = results.flatMap((r) => (r.status === 'fulfilled' && r.value.ok ? [r.value] : []));
  const failed = results.findIndex((r) => r.status === 'rejected' || !r.value.ok);
  if (failed >= 0) {
    // Claims this request made would only wait for the reconciler; give them back now.
    for (const r of done) for (const c of r.fresh) await deps.allocator.ledger.release(c);
    // The update is refused, so the running ordinals keep their addresses: claim back what was given up.
    await reclaim(
      stale.filter((_, i) => released[i]),
      deps,
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
      back(k) && r.fresh.length === 0 ? r.claims.map((c) => deps.allocator.ledger.renew(c).catch(() => false)) : [],
    ),
  );
  const summary = done.map((r, k) => `${w.name}-${w.ordinalsStart + k}=${formatDual(r.allocation.addresses)}`);
  const shown = summary.length > 6 ? [...summary.slice(0, 3), '…', ...summary.slice(-2)] : summary;
  return { problems: undefined, reserved: done.some((r) => r.fresh.length > 0) ? shown.join(' ') : undefined };
}

/** Claims again, for the same owners, what a refused reservation gave up first; an address taken meanwhile stays lost to it. */
async function reclaim(claims: readonly Claim[], deps: AdmissionDeps): Promise<void> {
  for (const c of claims) {
    const pool = deps.allocator.ledger.index.pool(c.pool);
    if (pool) await deps.allocator.ledger.claim(pool, c.ip, c.owner).catch(() => undefined);
  }
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
