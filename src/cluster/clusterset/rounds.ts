import type { Logger } from 'pino';
import type { Claim } from '../../ipam/claim.js';
import type { KubeLedger } from '../kube-ledger.js';
import type { ClusterSetLedger } from './ledger.js';

/** On a StatefulSet of this cluster: the member cluster its shared ordinal addresses go to once it is gone. */
export const HANDOVER_TO = 'netpin.io/handover-to';

/**
 * The leader's work for the ClusterSet, after each sweep:
 * - the claims of a cluster that left the set (its member Lease deleted, and not made again by a netpin
 *   still running there) are released once it has stayed away for the leave grace period. A member that
 *   cannot read the broker releases nothing: it never guesses that a peer left.
 * - this cluster's shared StatefulSet reservations whose StatefulSet names a member in
 *   netpin.io/handover-to are promised to it in the broker; the reconciler's release of them, once the
 *   StatefulSet and its pods are gone, then hands them over.
 */
export class ClusterSetRounds {
  /** Since when (leader's clock) each departed cluster has been seen missing. */
  private readonly missingSince = new Map<string, number>();

  constructor(
    private readonly ledger: ClusterSetLedger,
    private readonly broker: Pick<KubeLedger, 'release'>,
    private readonly leaveGraceMs: number,
    private readonly handoverOf: (namespace: string, name: string) => string | undefined,
    private readonly now: () => number = Date.now,
    private readonly log?: Logger,
  ) {}

  async run(): Promise<void> {
    // A cluster that is not a member in good standing judges nothing of the set's.
    if (!this.ledger.membership.current.joined) return;
    const members = await this.ledger.membership.members();
    if (!members) return;
    const shared = [...this.ledger.index.allClaims()].filter((c) => c.shared);
    await this.releaseDeparted(shared, members);
    await this.promise(shared, members);
  }

  private async releaseDeparted(shared: readonly Claim[], members: ReadonlySet<string>): Promise<void> {
    const now = this.now();
    const gone = new Set(
      shared.flatMap((c) => (c.owner.cluster !== undefined && !members.has(c.owner.cluster) ? [c.owner.cluster] : [])),
    );
    for (const cluster of this.missingSince.keys()) if (!gone.has(cluster)) this.missingSince.delete(cluster);
    for (const cluster of gone) if (!this.missingSince.has(cluster)) this.missingSince.set(cluster, now);
    for (const c of shared) {
      const cluster = c.owner.cluster;
      if (cluster === undefined || !gone.has(cluster)) continue;
      if (now - this.missingSince.get(cluster)! < this.leaveGraceMs) continue;
      // Conditional on the version seen, as every release: a claim changed since stays.
      if (await this.broker.release(c))
        this.log?.info({ ip: c.ip.toString(), cluster }, 'released a claim of a cluster that left the ClusterSet');
    }
  }

  private async promise(shared: readonly Claim[], members: ReadonlySet<string>): Promise<void> {
    const self = this.ledger.membership.self.id;
    for (const c of shared) {
      if (c.owner.cluster !== undefined || c.owner.kind !== 'StatefulSet') continue;
      const to = this.handoverOf(c.owner.namespace, c.owner.name);
      if (to === undefined || to === c.handoverTo || to === self) continue;
      if (!members.has(to)) {
        this.log?.warn(
          { statefulSet: `${c.owner.namespace}/${c.owner.name}`, to },
          `${HANDOVER_TO} names no member cluster`,
        );
        continue;
      }
      await this.ledger.promise(c, to);
    }
  }
}
