import { RECONCILER_CALL_MS, type Leadership, type ReconcilerView } from './api.js';

/** Whether, and since when, this replica leads: what every part of the leader's work asks before it acts. */
export class Leader {
  /** Since when this replica has led without a break; undefined while it does not. */
  since: number | undefined;
  /** Set by the reconciler's stop: nothing new starts after it. */
  stopped = false;

  constructor(
    private readonly elector: Leadership,
    private readonly view: ReconcilerView,
    readonly now: () => number,
  ) {}

  /** Whether this replica leads now, noting since when: the egress grace period counts from no earlier. */
  leading(): boolean {
    const now = this.now();
    if (!this.elector.isLeader(now)) {
      this.since = undefined;
      return false;
    }
    this.since ??= now;
    return true;
  }

  /**
   * Whether the leader may act now: it leads for at least as long as a call may take, so that what it
   * starts lands before another replica can lead, and every cache it judges by is complete.
   */
  mayAct(): boolean {
    return !this.stopped && this.elector.isLeader(this.now() + RECONCILER_CALL_MS) && this.view.complete();
  }
}
