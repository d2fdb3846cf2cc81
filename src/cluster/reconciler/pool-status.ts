import type { Logger } from 'pino';
import type { ClaimIndex } from '../../ipam/claim-index.js';
import { describeApiError } from '../kube.js';
import type { ReconcilerApi, ReconcilerView } from './api.js';
import type { Leader } from './leader.js';

/**
 * How often the leader compares pool use with IPPool status (it writes only what changed): on its own
 * short round, so that `kubectl get ippools` follows a claim within a second or two, whatever a sweep costs.
 */
export const STATUS_INTERVAL_MS = 1_000;

/** Keeps each IPPool's status in line with the index's counts, writing only what changed. */
export class PoolStatusWriter {
  /** The families last written, by pool. */
  private readonly last = new Map<string, string>();
  /** The refresh under way, for stop to wait for. */
  writing: Promise<void> | undefined;

  constructor(
    private readonly index: ClaimIndex,
    private readonly api: ReconcilerApi,
    private readonly view: ReconcilerView,
    private readonly leader: Leader,
    private readonly log?: Logger,
  ) {}

  /** One refresh at a time, on the leader, on complete caches; a failure waits for the next. */
  async refresh(): Promise<void> {
    if (this.writing || !this.leader.leading() || !this.view.complete()) return;
    this.writing = this.write()
      .catch((e) => this.log?.warn({ err: describeApiError(e) }, 'writing IPPool status failed'))
      .finally(() => (this.writing = undefined));
    await this.writing;
  }

  async write(): Promise<void> {
    // A ClusterSet's shared pools live in the broker, where every member would write its own view.
    const pools = this.index.allPools().filter((p) => !p.shared);
    const names = new Set(pools.map((p) => p.name));
    for (const name of this.last.keys()) if (!names.has(name)) this.last.delete(name);
    for (const pool of pools) {
      if (!this.leader.mayAct()) return;
      const usage = this.index.usage(pool.name);
      const families = usage.map((u) => ({
        family: u.family,
        capacity: u.capacity.toString(),
        allocated: Number(u.allocated),
      }));
      const key = JSON.stringify(families);
      if (this.last.get(pool.name) === key) continue;
      const total = usage.reduce((n, u) => n + u.capacity, 0n);
      await this.api.writePoolStatus(pool.name, {
        capacity: total > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(total),
        allocated: families.reduce((n, f) => n + f.allocated, 0),
        families,
        observedAt: new Date(this.leader.now()).toISOString(),
      });
      this.last.set(pool.name, key);
    }
  }
}
