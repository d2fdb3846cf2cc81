import { KEYS } from '../intent/keys.js';
import type { Intent, Problem } from '../intent/types.js';
import type { DualAddress, Family } from '../net/address.js';
import { describeOwner, type Claim } from './claim.js';
import type { PoolUsage } from './claim-index.js';
import type { Ledger } from './ledger.js';
import type { Pool } from './pool.js';
import { allocated, claimFromPools, claimListed, heldProblem } from './allocator/claiming.js';
import { allocateEgress } from './allocator/egress.js';
import { limitProblem, roomFix, usageOf, type LimitAsk } from './allocator/namespace-limit.js';
import { plan } from './allocator/plan.js';
import { allowedPools, fail, fits } from './allocator/shared.js';
import type {
  AllocationRequest,
  AllocationResult,
  EgressRequest,
  EgressResult,
  Plan,
  Refusal,
} from './allocator/types.js';

// The allocator's surface, wherever each part lives.
export type {
  Allocation,
  AllocationRequest,
  AllocationResult,
  EgressResult,
  Placement,
  Plan,
} from './allocator/types.js';

/**
 * Turns an intent into claims: checks pools against the namespace, then claims from the ledger.
 * Each step is a module of allocator/: the plan, claiming pod addresses, egress addresses, and the
 * namespace limit.
 */
export class Allocator {
  constructor(readonly ledger: Ledger) {}

  /** Pools the namespace may draw from, for messages and checks. */
  allowedPools(namespaceLabels: Record<string, string>): Pool[] {
    return allowedPools(this.ledger.index, namespaceLabels);
  }

  async allocate(req: AllocationRequest): Promise<AllocationResult> {
    const plan = req.plan ?? this.plan(req.intent, req.namespace, req.namespaceLabels);
    if (plan.problems.length) return { ok: false, problems: plan.problems };
    const { byFamily } = plan;
    const wanted = this.wanted(req);
    if (wanted && 'problems' in wanted) return wanted;

    const held = this.ledger.index.claimsOf(req.owner);
    if (held.length > 0) {
      if (!req.dryRun) this.ledger.checkHeld?.(held);
      // Sticky: a StatefulSet ordinal or a re-admitted pod keeps what it holds while the intent still allows it.
      // A pod's claims are renewed first: the reconciler may have found no pod of this name a moment
      // ago, and its release must not free them under this one. One that is gone is claimed afresh.
      if (fits(held, wanted, byFamily) && (req.dryRun || (await this.renewPodClaims(held))))
        return allocated(this.ledger.index, held, []);
      // What it holds now, not what was read before the renewals: a renewed claim is a new state, and a
      // release of the old one would leave it held beside the fresh claims.
      if (!req.dryRun) for (const c of this.ledger.index.claimsOf(req.owner)) await this.ledger.release(c);
    }

    if (wanted) return claimListed(this.ledger, req, wanted, byFamily);
    return claimFromPools(this.ledger, req, byFamily);
  }

  /**
   * What the owner holds that this request would give back before claiming afresh. A caller that
   * must get addresses in the order it starts allocations (StatefulSet ordinals) releases these
   * first, so that no allocation waits on a release between its start and its claims.
   */
  staleClaims(req: AllocationRequest): Claim[] {
    const plan = req.plan ?? this.plan(req.intent, req.namespace, req.namespaceLabels);
    const wanted = this.wanted(req);
    const held = this.ledger.index.claimsOf(req.owner);
    if (plan.problems.length || (wanted && 'problems' in wanted) || fits(held, wanted, plan.byFamily)) return [];
    return held;
  }

  /** The addresses the intent fixes for this owner: undefined when it names pools only. */
  private wanted(req: AllocationRequest): DualAddress[] | Refusal | undefined {
    const { intent } = req;
    if (intent.ip) return [intent.ip];
    if (intent.ips && req.entry !== undefined) {
      const entry = intent.ips[req.entry];
      if (!entry) {
        return fail(
          KEYS.ips,
          `has ${intent.ips.length} entries, but ${describeOwner(req.owner)} needs entry ${req.entry + 1}`,
          `list one entry per replica, in ordinal order (entry 1 for the first ordinal), or scale down`,
        );
      }
      return [entry];
    }
    return intent.ips;
  }

  private async renewPodClaims(held: Claim[]): Promise<boolean> {
    const renewed = await Promise.all(held.map((c) => (c.owner.kind === 'Pod' ? this.ledger.renew(c) : true)));
    return renewed.every(Boolean);
  }

  /** Named pools exist and select the namespace, families fit the pools, fixed addresses lie in usable pools. */
  plan(intent: Intent, namespace: string, labels: Record<string, string>): Plan {
    return plan(this.ledger.index, intent, namespace, labels);
  }

  /** The egress address of an owner (allocator/egress.ts). */
  allocateEgress(req: EgressRequest): Promise<EgressResult> {
    return allocateEgress(this.ledger, req);
  }

  /** A fixed address another owner holds: the holder named, and a free address of its pool to choose instead. */
  heldProblem(key: string, holder: Claim): Problem {
    return heldProblem(this.ledger.index, key, holder);
  }

  /** A pool family's size and use, from the index's counts: never a walk over the pool's addresses. */
  usageOf(pool: Pool, family: Family): PoolUsage {
    return usageOf(this.ledger.index, pool, family);
  }

  /** A namespace's use of a pool family against spec.namespaceLimit: a problem when the ask would take it past the cap. */
  limitProblem(pool: Pool, family: Family, ask: LimitAsk): Problem | undefined {
    return limitProblem(this.ledger.index, pool, family, ask);
  }

  /** How to make room for a family in a pool: more addresses, fewer holders, or another pool the namespace may use. */
  roomFix(pool: Pool, family: Family, namespaceLabels: Record<string, string>): string {
    return roomFix(this.ledger.index, pool, family, namespaceLabels);
  }
}
