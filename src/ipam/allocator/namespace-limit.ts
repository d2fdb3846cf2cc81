import type { Problem } from '../../intent/types.js';
import { familyOf, type Family } from '../../net/address.js';
import type { ExhaustedError, Owner } from '../claim.js';
import type { ClaimIndex, PoolUsage } from '../claim-index.js';
import type { Pool } from '../pool.js';
import { allowedPools, fail, familyName, roleOf } from './shared.js';
import type { Refusal } from './types.js';

/** A pool family's size and use, from the index's counts: never a walk over the pool's addresses. */
export function usageOf(index: ClaimIndex, pool: Pool, family: Family): PoolUsage {
  return index.usage(pool.name).find((u) => u.family === family) ?? { family, capacity: 0n, allocated: 0n };
}

/** The other pools of the same role and family the namespace may use instead of `pool`. */
function otherPools(index: ClaimIndex, pool: Pool, family: Family, namespaceLabels: Record<string, string>): Pool[] {
  return allowedPools(index, namespaceLabels).filter(
    (p) => p.name !== pool.name && p.families.includes(family) && roleOf(p) === roleOf(pool),
  );
}

/** What a namespace asks of a pool family: `more` addresses besides the `own` it holds already for the same owners. */
export interface LimitAsk {
  namespace: string;
  namespaceLabels: Record<string, string>;
  more: number;
  own: number;
  /** The netpin.io key the problem names. */
  key: string;
  /** How the problem names what was asked; `<more> more` by default. */
  what?: string;
}

/** A namespace's use of a pool family against spec.namespaceLimit: a problem when the ask would take it past the cap. */
export function limitProblem(index: ClaimIndex, pool: Pool, family: Family, ask: LimitAsk): Problem | undefined {
  const { namespace, namespaceLabels, more, own, key, what = `${more} more` } = ask;
  const limit = pool.namespaceLimit;
  if (limit === undefined) return undefined;
  const held = index.namespaceHeld(pool.name, namespace, family);
  if (held - own + more <= limit) return undefined;
  const others = otherPools(index, pool, family, namespaceLabels);
  return {
    key,
    message: `IPPool ${pool.name} lets each namespace hold ${limit} ${familyName(family)} addresses (spec.namespaceLimit), and namespace ${namespace} holds ${held}${own ? ` (${own} of them for this same owner)` : ''}: no room for ${what}`,
    fix: `give back addresses namespace ${namespace} holds (delete pods or StatefulSets it no longer needs, or scale them down; a StatefulSet scaled down gives its reservations back after netpin.io/scale-down-release), or ask the cluster's operator to raise spec.namespaceLimit of IPPool ${pool.name}${others.length ? `, or name another pool: ${others.map((p) => p.name).join(', ')}` : ''}`,
  };
}

/**
 * Refuses claims that would take the namespace past a pool's spec.namespaceLimit. What the owner
 * holds is not counted: a fresh claim comes after those are given back (a dry run only reads).
 */
export function overLimit(
  index: ClaimIndex,
  req: { namespace: string; namespaceLabels: Record<string, string>; owner: Owner },
  wanted: Array<[Pool, Family]>,
  key: string,
): Refusal | undefined {
  const owned = index.claimsOf(req.owner);
  for (const [pool, family] of wanted) {
    const mine = owned.filter((c) => c.pool === pool.name && familyOf(c.ip) === family).length;
    const more = wanted.filter(([p, f]) => p === pool && f === family).length;
    const { namespace, namespaceLabels } = req;
    const problem = limitProblem(index, pool, family, { namespace, namespaceLabels, more, own: mine, key });
    if (problem) return { ok: false, problems: [problem] };
  }
  return undefined;
}

/** How to make room for a family in a pool: more addresses, fewer holders, or another pool the namespace may use. */
export function roomFix(
  index: ClaimIndex,
  pool: Pool,
  family: Family,
  namespaceLabels: Record<string, string>,
): string {
  const others = otherPools(index, pool, family, namespaceLabels);
  return `add addresses to IPPool ${pool.name} (spec.cidr or spec.ranges), delete workloads that hold them${others.length ? `, or name another pool: ${others.map((p) => p.name).join(', ')}` : ''}`;
}

/** A pool family with no free address: its use, and how to make room. */
export function exhausted(
  index: ClaimIndex,
  e: ExhaustedError,
  namespaceLabels: Record<string, string>,
  key: string,
): Refusal {
  const usage = usageOf(index, e.pool, e.family);
  return fail(
    key,
    `${e.message} (${usage.allocated} of ${usage.capacity} held)`,
    roomFix(index, e.pool, e.family, namespaceLabels),
  );
}
