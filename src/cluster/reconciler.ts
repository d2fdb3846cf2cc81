import { CustomObjectsApi, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { ALLOCATED_KEY } from '../intent/keys.js';
import type { Claim, Ledger } from '../ipam/ledger.js';
import { describeApiError, GROUP, VERSION } from './kube.js';
import type { KubeClusterView } from './kube-view.js';
import type { LeaseElector } from './lease.js';

export interface ReconcilerOptions {
  /** A claim younger than this is left alone: its pod may not be in the watch yet. */
  graceMs: number;
  intervalMs: number;
}

/**
 * Releases what nobody holds any more, and keeps IPPool status current. Runs on
 * the leader only. A pod's claim is kept while any pod object carries its
 * address, terminating ones included, so that an address is never handed on
 * while the old pod may still use it.
 */
export class Reconciler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly api: CustomObjectsApi;
  private readonly lastStatus = new Map<string, string>();

  constructor(
    kc: KubeConfig,
    private readonly ledger: Ledger,
    private readonly view: KubeClusterView,
    private readonly elector: LeaseElector,
    private readonly opts: ReconcilerOptions,
    private readonly log?: Logger,
  ) {
    this.api = kc.makeApiClient(CustomObjectsApi);
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.opts.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    // A sweep in progress stops after the release under way: what is left is the next leader's.
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  private async tick(): Promise<void> {
    if (this.running || !this.elector.isLeader()) return;
    this.running = this.sweep()
      .then(() => this.writePoolStatus())
      .catch((e) => this.log?.warn({ err: describeApiError(e) }, 'reconcile failed'))
      .finally(() => (this.running = undefined));
    await this.running;
  }

  /** Releases stale claims; returns them. */
  async sweep(now = Date.now()): Promise<Claim[]> {
    const live = new Map<string, Set<string>>();
    const names = new Set<string>();
    for (const pod of this.view.pinnedPods.list()) {
      const ns = pod.metadata?.namespace ?? '';
      names.add(`${ns}/${pod.metadata?.name}`);
      let set = live.get(ns);
      if (!set) live.set(ns, (set = new Set()));
      for (const ip of allocatedOf(pod)) set.add(ip);
    }
    const stale: Claim[] = [];
    for (const claim of this.ledger.index.allClaims()) {
      if (now - claim.createdAt < this.opts.graceMs) continue;
      const o = claim.owner;
      if (o.kind === 'Pod') {
        if (live.get(o.namespace)?.has(claim.ip.toString())) continue;
      } else {
        // A StatefulSet keeps its reservations on scale-down; they go with the StatefulSet and its last pod.
        if (this.view.statefulSets.get(o.name, o.namespace)) continue;
        if (names.has(`${o.namespace}/${o.name}-${o.ordinal}`)) continue;
      }
      stale.push(claim);
    }
    for (const claim of stale) {
      if (this.stopped) break;
      await this.ledger.release(claim);
      this.log?.info({ ip: claim.ip.toString(), pool: claim.pool, owner: claim.owner }, 'released a claim nobody holds');
    }
    return stale;
  }

  private async writePoolStatus(): Promise<void> {
    const index = this.ledger.index;
    for (const pool of index.allPools()) {
      const usage = index.usage(pool.name);
      const families = usage.map((u) => ({ family: u.family, capacity: u.capacity.toString(), allocated: Number(u.allocated) }));
      const key = JSON.stringify(families);
      if (this.lastStatus.get(pool.name) === key) continue;
      const total = usage.reduce((n, u) => n + u.capacity, 0n);
      const status = {
        capacity: total > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(total),
        allocated: families.reduce((n, f) => n + f.allocated, 0),
        families,
        observedAt: new Date().toISOString(),
      };
      await this.api.patchClusterCustomObjectStatus({
        group: GROUP,
        version: VERSION,
        plural: 'ippools',
        name: pool.name,
        body: [{ op: 'add', path: '/status', value: status }],
      });
      this.lastStatus.set(pool.name, key);
    }
  }
}

function allocatedOf(pod: V1Pod): string[] {
  const v = pod.metadata?.annotations?.[ALLOCATED_KEY];
  return v ? v.split(',').map((s) => s.trim()) : [];
}
