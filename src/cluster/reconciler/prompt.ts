import { parseAddress } from '../../net/address.js';
import type { Claim } from '../../ipam/claim.js';
import type { Ledger } from '../../ipam/ledger.js';
import type { PodRecord } from '../pod-tracker.js';
import type { Leader } from './leader.js';
import type { Releaser } from './release.js';

/** Deleted pods waiting for a prompt pass; past this, the sweep releases the rest after the grace period. */
const MAX_GONE = 10_000;

/** How long a prompt pass waits after a deletion, so that a burst of deletions makes one pass. */
const PROMPT_DELAY_MS = 100;

/**
 * The prompt release: a pod the watch reports deleted gives its claims back a moment later, once the
 * API server confirms nothing holds them, instead of after the grace period.
 */
export class PromptRelease {
  /** Pods the watch reported deleted, by "<namespace>/<name>", with the addresses they showed. */
  private readonly gone = new Map<string, PodRecord>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ledger: Ledger,
    private readonly leader: Leader,
    private readonly releaser: Releaser,
    /** Starts a prompt pass, which calls `release`. */
    private readonly pass: () => void,
  ) {}

  /** Notes a deleted pod; the pass comes a moment later (deletions that come together are handled together). */
  podGone(pod: PodRecord): void {
    if (this.leader.stopped) return;
    // Past this many waiting, the rest are left to the sweep: the work per pass stays bounded.
    if (this.gone.size < MAX_GONE) this.gone.set(`${pod.namespace}/${pod.name}`, pod);
    if (!this.timer) {
      this.timer = setTimeout(this.pass, PROMPT_DELAY_MS);
      this.timer.unref();
    }
  }

  /** Drops the pass waiting to start, if any: it is being run now, or never. */
  cancel(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /**
   * Releases the claims of the pods the watch reported deleted: a pod's, by its name or an address it
   * showed (one not yet named holds by address). StatefulSet ordinals stay with their StatefulSet, and
   * egress addresses wait out their grace period, since other pods share them.
   */
  async release(): Promise<Claim[]> {
    if (this.gone.size === 0 || !this.leader.mayAct()) return [];
    const pods = [...this.gone.values()];
    this.gone.clear();
    const index = this.ledger.index;
    const candidates = new Set<Claim>();
    for (const pod of pods) {
      // Bound to this very pod (by its uid, which a renewal for a new pod of the same name clears):
      // the deleted pod's own. A claim renewed for a new pod of the name, which may not be stored yet,
      // waits out its grace period in the sweep.
      for (const c of index.claimsOf({ kind: 'Pod', namespace: pod.namespace, name: pod.name }))
        if (c.owner.kind === 'Pod' && c.owner.uid !== undefined && c.owner.uid === pod.uid) candidates.add(c);
      // Made before the pod had a name, for the admission that created it: no other pod renews it.
      for (const a of pod.addresses) {
        const ip = parseAddress(a);
        const c = ip && index.holderOf(ip);
        if (c && !c.observed && c.owner.kind === 'Pod' && c.owner.namespace === pod.namespace && c.owner.name === '')
          candidates.add(c);
      }
    }
    return this.releaser.ifFree([...candidates]);
  }
}
