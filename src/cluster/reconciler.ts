import type { Logger } from 'pino';
import type { Claim } from '../ipam/claim.js';
import type { Ledger } from '../ipam/ledger.js';
import { describeApiError } from './kube.js';
import type { PodRecord } from './pod-tracker.js';
import type { Leadership, ReconcilerApi, ReconcilerOptions, ReconcilerView } from './reconciler/api.js';
import { bindPods } from './reconciler/bind.js';
import { Leader } from './reconciler/leader.js';
import { PoolStatusWriter, STATUS_INTERVAL_MS } from './reconciler/pool-status.js';
import { PromptRelease } from './reconciler/prompt.js';
import { Releaser } from './reconciler/release.js';
import { ScaleDown } from './reconciler/scale-down.js';
import { Sweep } from './reconciler/sweep.js';

// The reconciler's surface, wherever each part lives.
export {
  RECONCILER_CALL_MS,
  statefulSetState,
  type ReconcilerApi,
  type ReconcilerMetrics,
  type StatefulSetState,
} from './reconciler/api.js';
export { holds, staleClaims } from './reconciler/holders.js';
export { kubeReconcilerApi } from './reconciler/kube-api.js';

/** How many claims stored under an old name one round moves to the address's own name. */
const MIGRATE_PER_ROUND = 500;

/**
 * Releases what nobody holds any more, and keeps IPPool status current. Runs on the leader only,
 * and only on complete caches. A pod's claim is kept while any pod object uses or asks for its
 * address, terminating ones included, so that an address is never handed on while the old pod may
 * still use it. A pod the watch reports deleted gives its claims back at once, once the API server
 * confirms nothing holds them; a claim whose pod never appeared waits out the grace period.
 *
 * Each part of the work is a module of reconciler/: the sweep, the prompt release of deleted pods,
 * StatefulSet scale-down, the egress grace period, naming pods, and IPPool status.
 */
export class Reconciler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private readonly leader: Leader;
  private readonly sweeper: Sweep;
  private readonly prompted: PromptRelease;
  private readonly status: PoolStatusWriter;

  constructor(
    private readonly api: ReconcilerApi,
    private readonly ledger: Ledger,
    private readonly view: ReconcilerView,
    elector: Leadership,
    private readonly opts: ReconcilerOptions,
    private readonly log?: Logger,
  ) {
    const leader = (this.leader = new Leader(elector, view, opts.now ?? Date.now));
    const { metrics } = opts;
    const scaleDown = new ScaleDown(view, this.api, leader);
    const releaser = new Releaser(ledger, this.api, leader, scaleDown, { metrics, events: opts.events, log });
    this.sweeper = new Sweep(ledger, view, leader, opts, scaleDown, releaser, metrics);
    this.prompted = new PromptRelease(ledger, leader, releaser, () => void this.prompt());
    this.status = new PoolStatusWriter(ledger.index, this.api, view, leader, log);
  }

  start(): void {
    this.timer = setInterval(() => void this.round(), this.opts.intervalMs);
    this.timer.unref();
    this.statusTimer = setInterval(() => void this.status.refresh(), STATUS_INTERVAL_MS);
    this.statusTimer.unref();
  }

  async stop(): Promise<void> {
    // A sweep in progress stops after the release under way: what is left is the next leader's.
    this.leader.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.prompted.cancel();
    await Promise.all([this.running, this.status.writing]);
  }

  /**
   * A pod the watch reported deleted: its claims are released at the next prompt pass, a moment
   * later (deletions that come together are handled together), instead of after the grace period.
   */
  podGone(pod: PodRecord): void {
    this.prompted.podGone(pod);
  }

  /** Releases the claims of the pods reported deleted since the last pass. */
  async prompt(): Promise<void> {
    this.prompted.cancel();
    await this.run(() => this.prompted.release());
  }

  /** One round of leader work, as the timer runs it: deleted pods, the sweep, naming pods, the objects claims need. */
  async round(): Promise<void> {
    // Releases first: naming pods is a write per claim, and after a burst it must not starve them.
    await this.run(async () => {
      await this.prompted.release();
      await this.sweep();
      await this.bind();
      await this.ledger.migrate?.(MIGRATE_PER_ROUND, () => this.leader.mayAct());
      if (this.leader.mayAct()) await this.opts.resources?.sync();
    });
  }

  /** Runs one pass of leader work at a time, on the leader only; a failed call ends the pass. */
  private async run(pass: () => Promise<unknown>): Promise<void> {
    if (this.running || !this.leader.leading()) {
      // A prompt pass that finds a sweep under way waits for the next tick, which starts with it.
      return;
    }
    this.running = pass()
      .then(() => undefined)
      .catch((e) => this.log?.warn({ err: describeApiError(e) }, 'reconcile failed'))
      .finally(() => (this.running = undefined));
    await this.running;
  }

  /** Names the pod in claims made for a pod not yet named (reconciler/bind.ts); returns how many. */
  bind(): Promise<number> {
    return bindPods(this.ledger, this.view.pods.values(), () => this.leader.mayAct());
  }

  /** Releases stale claims, as reconciler/sweep.ts judges them; returns them. */
  sweep(): Promise<Claim[]> {
    return this.sweeper.run();
  }

  async writePoolStatus(): Promise<void> {
    await this.status.write();
  }
}
