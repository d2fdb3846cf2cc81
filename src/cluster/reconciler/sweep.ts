import type { Claim } from '../../ipam/claim.js';
import type { Ledger } from '../../ipam/ledger.js';
import type { ReconcilerMetrics, ReconcilerView } from './api.js';
import { EgressGrace } from './egress-grace.js';
import { indexPods, staleClaims } from './holders.js';
import type { Leader } from './leader.js';
import type { Releaser } from './release.js';
import type { ScaleDown } from './scale-down.js';

/** How many claims a sweep looks at between giving way to admissions. */
const SWEEP_SLICE = 2_000;

/**
 * The sweep over every claim: releases those past their grace period that no pod holds (egress
 * addresses past their own), and the reservations of ordinals a StatefulSet let go.
 */
export class Sweep {
  private readonly egress: EgressGrace;

  constructor(
    private readonly ledger: Ledger,
    private readonly view: ReconcilerView,
    private readonly leader: Leader,
    private readonly grace: { graceMs: number; egressGraceMs: number },
    private readonly scaleDown: ScaleDown,
    private readonly releaser: Releaser,
    private readonly metrics: ReconcilerMetrics,
  ) {
    this.egress = new EgressGrace(grace.egressGraceMs, ledger.index, leader);
  }

  /**
   * Releases stale claims; returns them. The view only proposes: before a release the namespace's
   * pods (and the StatefulSet) are read again from the API server, so that a lagging watch can never
   * free an address a pod still uses; and the release deletes exactly the claim that was judged, so
   * that one renewed meanwhile stays.
   */
  async run(): Promise<Claim[]> {
    if (!this.leader.mayAct()) return [];
    const now = this.leader.now();
    const view = this.view;
    const index = this.ledger.index;
    const pods = indexPods(view.pods.values());
    this.egress.note(pods, now);
    // A ClusterSet peer's claims hold addresses of pods this cluster cannot see: only that cluster judges them.
    const all = [...index.allClaims()].filter((c) => c.owner.cluster === undefined);
    const candidates: Claim[] = [];
    // In slices, giving way in between: at tens of thousands of claims one pass would hold up this
    // replica's admissions. What changes meanwhile is checked again before each release.
    for (let i = 0; i < all.length; i += SWEEP_SLICE) {
      if (i > 0) await new Promise((r) => setImmediate(r));
      const slice = all.slice(i, i + SWEEP_SLICE);
      candidates.push(
        ...staleClaims(
          slice,
          pods,
          (ns, name) => view.statefulSetExists(ns, name),
          now,
          this.grace.graceMs,
          (claim) => index.claimsOf(claim.owner),
          (o) => view.daemonSetKeeps?.(o.namespace, o.name, o.node) ?? true,
        ).filter((c) => this.egress.over(c, now)),
      );
    }
    this.metrics.overdue(candidates, this.grace.graceMs);
    candidates.push(...this.scaleDown.due(all, pods, now));
    return this.releaser.ifFree(candidates);
  }
}
