import type { Claim } from '../../ipam/claim.js';
import type { ClaimIndex } from '../../ipam/claim-index.js';
import { parseAddress } from '../../net/address.js';
import type { PodIndex } from './holders.js';
import type { Leader } from './leader.js';

/**
 * The grace period of egress addresses: one no pod has shown for `graceMs` may go, since the pods
 * that share it come and go and another pod of its workload may come back meanwhile.
 */
export class EgressGrace {
  /** When a pod last showed each egress address (leader's clock), by address. */
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly graceMs: number,
    private readonly index: ClaimIndex,
    private readonly leader: Leader,
  ) {}

  /** Every egress address a pod shows now counts as seen now; addresses no claim holds are forgotten. */
  note(pods: PodIndex, now: number): void {
    for (const ns of pods.values()) for (const a of ns.byEgress.keys()) this.seen.set(a, now);
    for (const a of this.seen.keys()) {
      const ip = parseAddress(a);
      if (!ip || this.index.holderOf(ip)?.owner.kind !== 'Egress') this.seen.delete(a);
    }
  }

  /** Whether a claim is past its grace period: always, unless it is an egress address seen lately. */
  over(claim: Claim, now: number): boolean {
    return claim.owner.kind !== 'Egress' || now - this.since(claim) >= this.graceMs;
  }

  /**
   * Since when an egress claim has had no pod: its last sighting, and no earlier than when it was
   * claimed or when this replica began to lead (a new leader does not know what its predecessor saw).
   */
  private since(claim: Claim): number {
    return Math.max(claim.createdAt, this.seen.get(claim.ip.toString()) ?? 0, this.leader.since ?? this.leader.now());
  }
}
