import { ownerKey, type Claim } from '../../ipam/claim.js';
import { scaleDownRelease } from '../../ipam/scale-down.js';
import type { ReconcilerApi, ReconcilerView, StatefulSetState } from './api.js';
import { candidates, holds, type PodIndex } from './holders.js';
import type { Leader } from './leader.js';

/** Whether a StatefulSet of this shape runs the ordinal: start <= ordinal < start + replicas. */
function runs(sts: StatefulSetState, ordinal: number): boolean {
  return ordinal >= sts.ordinalsStart && ordinal < sts.ordinalsStart + sts.replicas;
}

/**
 * The reservations of ordinals a StatefulSet no longer runs (scaled down, or its ordinals.start
 * moved), released once they have been outside its range for the period its
 * netpin.io/scale-down-release asks (an hour by default; "never": kept while it exists), and no pod
 * of that ordinal exists. The period counts from when this leader first saw the ordinal outside,
 * and no earlier than when it began to lead: a new leader does not know what its predecessor saw.
 */
export class ScaleDown {
  /** Since when (leader's clock) each reserved ordinal has been outside its StatefulSet's range, by owner key. */
  private readonly outsideSince = new Map<string, number>();

  constructor(
    private readonly view: ReconcilerView,
    private readonly api: ReconcilerApi,
    private readonly leader: Leader,
  ) {}

  /** The reservations due for release now, by the watch; notes which ordinals are outside since when. */
  due(all: readonly Claim[], pods: PodIndex, now: number): Claim[] {
    const read = this.view.statefulSet;
    if (!read) return [];
    const due: Claim[] = [];
    const outside = new Set<string>();
    for (const claim of all) {
      const o = claim.owner;
      if (o.kind !== 'StatefulSet') continue;
      const sts = read.call(this.view, o.namespace, o.name);
      if (!sts || runs(sts, o.ordinal)) continue;
      const key = ownerKey(o);
      outside.add(key);
      if (!this.outsideSince.has(key)) this.outsideSince.set(key, now);
      if (!this.releasable(claim, sts, now)) continue;
      if (candidates(pods.get(o.namespace), claim).some((p) => holds(p, claim))) continue;
      due.push(claim);
    }
    for (const key of this.outsideSince.keys()) if (!outside.has(key)) this.outsideSince.delete(key);
    return due;
  }

  /**
   * Whether the StatefulSet of a reservation, as the API server has it now, keeps it: it exists, and
   * runs the ordinal or has not let it go yet (scale-down-release, read afresh).
   */
  async kept(claim: Claim): Promise<boolean> {
    const o = claim.owner;
    if (o.kind !== 'StatefulSet') return false;
    if (!this.api.statefulSet) return this.api.statefulSetExists(o.namespace, o.name);
    const sts = await this.api.statefulSet(o.namespace, o.name);
    return sts !== undefined && !this.releasable(claim, sts, this.leader.now());
  }

  /** Whether an existing StatefulSet lets an ordinal's reservation go now: outside its range for the period it asks. */
  private releasable(claim: Claim, sts: StatefulSetState, now: number): boolean {
    const o = claim.owner;
    if (o.kind !== 'StatefulSet' || runs(sts, o.ordinal)) return false;
    const period = scaleDownRelease(sts.annotations);
    // A value admission would refuse (written while netpin did not admit StatefulSets) keeps them, as "never" does.
    if (typeof period !== 'number') return false;
    const since = this.outsideSince.get(ownerKey(o));
    if (since === undefined) return false;
    return now - Math.max(since, this.leader.since ?? now) >= period;
  }
}
