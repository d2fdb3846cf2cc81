// What the ledger and the namespace's caps would refuse a workload's pods for, asked without claiming.
import { familyOf, addressList, type Family } from '../net/address.js';
import { KEYS } from '../intent/keys.js';
import type { Intent, Problem } from '../intent/types.js';
import type { Plan } from '../ipam/allocator.js';
import type { Claim, Owner } from '../ipam/claim.js';
import type { Pool } from '../ipam/pool.js';
import type { Admit } from './context.js';
import {
  addressKey,
  needText,
  podsAtOnce,
  replicasWithin,
  sourceOf,
  SURGE_FIX,
  type Was,
  type Workload,
} from './workload-counts.js';

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
export function ledgerProblems(w: Workload, was: Was | undefined, intent: Intent, plan: Plan, admit: Admit): Problem[] {
  const need = podsAtOnce(w);
  if (was && sourceOf(was.intent) === sourceOf(intent) && need <= podsAtOnce(was)) return [];
  if (intent.ip || intent.ips)
    return w.kind === 'StatefulSet' ? ordinalConflicts(w, intent, admit) : entryProblems(w, was, intent, admit);
  return (['ipv4', 'ipv6'] as const).flatMap((f) => roomProblems(w, was, f, plan, admit));
}

/**
 * Whether the workload may need more addresses than before: a CREATE, another source of addresses, or
 * more pods at once. An UPDATE that needs no more is never refused for what the namespace holds, so
 * that a workload stays editable, and scalable down, after a cap or a quota was lowered under it.
 */
export function needsMore(w: Workload, was: Was | undefined, intent: Intent): boolean {
  if (!was) return true;
  return sourceOf(was.intent) !== sourceOf(intent) || podsAtOnce(w) > podsAtOnce(was);
}

/**
 * The pools' spec.namespaceLimit: every pod of the workload at once (a StatefulSet's reservations),
 * besides what the namespace holds already, must fit under each cap. What the workload holds itself
 * counts once, as in roomProblems.
 */
export function limitProblems(
  w: Workload,
  was: Was | undefined,
  { intent, plan }: { intent: Intent; plan: Plan },
  admit: Admit,
): Problem[] {
  const need = podsAtOnce(w);
  const { index } = admit;
  const labels = admit.cluster.namespaceLabels(w.namespace);
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
    const own = ownedIn(w, was, pool.name, family, admit);
    const problem = admit.allocator.limitProblem(pool, family, {
      namespace: w.namespace,
      namespaceLabels: labels,
      more: n,
      own,
      key: addressKey(intent),
      what: `the ${n} that ${needText(w)}`,
    });
    if (!problem) continue;
    const room = Math.max(0, pool.namespaceLimit! - (index.namespaceHeld(pool.name, w.namespace, family) - own));
    return [{ ...problem, fix: `lower replicas to ${replicasWithin(w, room)}, or ${problem.fix}` }];
  }
  return [];
}

/** Ordinal k gets entry k (or the one fixed address): each must be free, or held by an ordinal that gives it up. */
function ordinalConflicts(w: Workload, intent: Intent, admit: Admit): Problem[] {
  const { index } = admit;
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
  const first = admit.allocator.heldProblem(intent.ip ? KEYS.ip : KEYS.ips, holder);
  const more = held.length > 1 ? `, and ${held.length - 1} more of its addresses are held by other owners` : '';
  return [{ ...first, message: `${w.name}-${ordinal}: ${first.message}${more}` }];
}

/**
 * A Deployment's pods take the first listed entry that is free: enough entries must be free for
 * every pod at once, besides those the replaced object listed, which its pods are taken to hold.
 */
function entryProblems(w: Workload, was: Was | undefined, intent: Intent, admit: Admit): Problem[] {
  const { index } = admit;
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
  const conflict = admit.allocator.heldProblem(key, (foreign ?? first)!);
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
function roomProblems(w: Workload, was: Was | undefined, family: Family, plan: Plan, admit: Admit): Problem[] {
  const pool = plan.byFamily[family];
  if (!pool) return [];
  const usage = admit.allocator.usageOf(pool, family);
  const free = usage.capacity - usage.allocated;
  const own = ownedIn(w, was, pool.name, family, admit);
  const room = free + BigInt(own);
  const need = podsAtOnce(w);
  if (BigInt(need) <= room) return [];
  const has = `IPPool ${pool.name} has ${free} free ${family === 'ipv4' ? 'IPv4' : 'IPv6'} addresses (${usage.allocated} of ${usage.capacity} held)${own ? ` and ${own} that ${w.kind} ${w.name} holds` : ''}`;
  const roomFix = admit.allocator.roomFix(pool, family, admit.cluster.namespaceLabels(w.namespace));
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
function ownedIn(w: Workload, was: Was | undefined, pool: string, family: Family, admit: Admit): number {
  if (w.kind === 'Deployment')
    return was && !was.intent.ip && !was.intent.ips && was.intent.pools?.includes(pool) ? was.replicas : 0;
  const { index } = admit;
  let n = 0;
  for (let k = 0; k < w.replicas; k++) {
    const owner: Owner = { kind: 'StatefulSet', namespace: w.namespace, name: w.name, ordinal: w.ordinalsStart + k };
    for (const c of index.claimsOf(owner)) if (c.pool === pool && familyOf(c.ip) === family) n++;
  }
  return n;
}
