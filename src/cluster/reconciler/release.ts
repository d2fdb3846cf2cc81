import type { Logger } from 'pino';
import type { Claim } from '../../ipam/claim.js';
import type { Ledger } from '../../ipam/ledger.js';
import type { EventSink } from '../event-sink.js';
import { releaseEvents } from '../netpin-events.js';
import type { PodRecord } from '../pod-tracker.js';
import { within, type ReconcilerApi, type ReconcilerMetrics } from './api.js';
import { holds } from './holders.js';
import type { Leader } from './leader.js';
import type { ScaleDown } from './scale-down.js';

/** Where a release is told: the log, the metrics and the Events. */
export interface ReleaseReport {
  metrics: ReconcilerMetrics;
  events?: EventSink;
  log?: Logger;
}

/**
 * Releases claims the watch found free, each once the API server's own answers say nobody holds it.
 * The watch only proposes: the namespace's pods (and the StatefulSet) are read again first, so that
 * a lagging watch can never free an address a pod still uses.
 */
export class Releaser {
  constructor(
    private readonly ledger: Ledger,
    private readonly api: ReconcilerApi,
    private readonly leader: Leader,
    private readonly scaleDown: ScaleDown,
    private readonly report: ReleaseReport,
  ) {}

  /** Releases each of `candidates` that nobody holds; returns those released. */
  async ifFree(candidates: readonly Claim[]): Promise<Claim[]> {
    const { ledger, leader, report } = this;
    const released: Claim[] = [];
    const fresh = new Map<string, PodRecord[]>();
    for (const claim of candidates) {
      if (!leader.mayAct()) break;
      // Renewed, bound, or released since it was judged: the index holds another entry, or none.
      if (ledger.index.holderOf(claim.ip) !== claim) continue;
      const o = claim.owner;
      let pods = fresh.get(o.namespace);
      if (!pods) fresh.set(o.namespace, (pods = await this.api.namespacePods(o.namespace)));
      const holder = pods.find((p) => holds(p, claim, ledger.index.claimsOf(o)));
      if (
        holder ||
        (o.kind === 'StatefulSet' && (await this.scaleDown.kept(claim))) ||
        (o.kind === 'DaemonSet' && (await (this.api.daemonSetKeeps?.(o.namespace, o.name, o.node) ?? true)))
      ) {
        report.log?.info(
          { ip: claim.ip.toString(), owner: claim.owner, pod: holder?.name },
          'kept a claim the watch thought free',
        );
        continue;
      }
      // The reads took time: the lease or the claim may have moved on meanwhile.
      if (!leader.mayAct() || ledger.index.holderOf(claim.ip) !== claim) continue;
      // Exactly the claim that was judged is deleted, so that one renewed meanwhile stays.
      if (!(await within(() => ledger.release(claim)))) continue;
      released.push(claim);
      report.metrics.released(claim);
      report.log?.info(
        { ip: claim.ip.toString(), pool: claim.pool, owner: claim.owner },
        'released a claim nobody holds',
      );
    }
    for (const event of releaseEvents(released)) report.events?.record(event);
    return released;
  }
}
