import { hostname } from 'node:os';
import { CustomObjectsApi, type ConfigurationOptions, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { describeApiError, OFF_ADMISSION_MS, statusOf, withTimeout } from './kube.js';

export interface LeaseOptions {
  name: string;
  namespace: string;
  identity?: string;
  durationSeconds?: number;
  renewMs?: number;
}

interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

// Leases go through the generic object API with plain JSON. client-node's typed client sends a Date
// with milliseconds, which the API server refuses ("cannot parse .451Z"), and reads a MicroTime back
// as a string typed as a Date: its V1MicroTime (kubernetes-client/javascript#828) fixes the write only.
// test/cluster/lease.test.ts fails once it reads one back as a Date.
const LEASES = { group: 'coordination.k8s.io', version: 'v1', plural: 'leases' } as const;

/** RFC 3339 with microseconds, as metav1.MicroTime wants it. */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/**
 * Milliseconds until the next round. A leader renews every renewMs. A candidate tries again when the
 * holder's lease runs out (`heldUntil`, 0 when no one else holds it), if that is sooner: on fixed
 * ticks it took a dead leader's lease up to renewMs after the lease expired, so up to its duration
 * plus renewMs after the leader's last renewal.
 */
export function nextAttemptIn(leader: boolean, heldUntil: number, renewMs: number, now: number): number {
  if (leader || heldUntil === 0) return renewMs;
  // A few ms past the expiry, so that the lease has run out when it is read again.
  return Math.max(10, Math.min(renewMs, heldUntil - now + 25));
}

/**
 * Leader election on a coordination.k8s.io/v1 Lease, so that one replica sweeps
 * claims. Writes carry the resourceVersion read, so two candidates cannot both
 * take the lease; a leader that cannot renew steps down before it expires.
 */
export class LeaseElector {
  readonly identity: string;
  private readonly api: CustomObjectsApi;
  private readonly durationSeconds: number;
  private readonly renewMs: number;
  private readonly calls: ConfigurationOptions;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private leaderUntil = 0;
  /** When the lease another candidate holds runs out, as last read (Date.now() time); 0 when unknown. */
  private heldUntil = 0;

  constructor(
    kc: KubeConfig,
    private readonly opts: LeaseOptions,
    private readonly log?: Logger,
  ) {
    this.api = kc.makeApiClient(CustomObjectsApi);
    this.identity = opts.identity ?? `${hostname()}-${process.pid}`;
    this.durationSeconds = opts.durationSeconds ?? 15;
    this.renewMs = opts.renewMs ?? 5_000;
    // A round is a read and a write, each cut at half the renew period, so that a hung round is over
    // within one period and the rounds go on: without a deadline one hung call stopped them for good,
    // and this replica never led again. Leadership ends by the clock (leaderUntil, a renew period
    // before the lease can expire), whatever a call does.
    this.calls = withTimeout(Math.min(OFF_ADMISSION_MS, this.renewMs / 2));
  }

  isLeader(now = Date.now()): boolean {
    return now < this.leaderUntil;
  }

  start(): void {
    const tick = async () => {
      await this.tryAcquire().catch((e) => this.log?.warn({ err: describeApiError(e) }, 'lease renewal failed'));
      if (this.stopped) return;
      const now = Date.now();
      this.timer = setTimeout(() => void tick(), nextAttemptIn(this.isLeader(now), this.heldUntil, this.renewMs, now));
      this.timer.unref();
    };
    void tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (!this.isLeader()) return;
    this.leaderUntil = 0;
    // Hand over at once instead of making the next leader wait out the lease.
    try {
      const lease = (await this.api.getNamespacedCustomObject(
        { ...LEASES, name: this.opts.name, namespace: this.opts.namespace },
        this.calls,
      )) as Lease;
      if (lease.spec?.holderIdentity === this.identity) {
        delete lease.spec.holderIdentity;
        await this.api.replaceNamespacedCustomObject(
          { ...LEASES, name: this.opts.name, namespace: this.opts.namespace, body: lease },
          this.calls,
        );
      }
    } catch (e) {
      this.log?.warn(
        { err: describeApiError(e) },
        'could not hand the lease over; the next leader waits for it to expire',
      );
    }
  }

  /** One round: take the lease if it is free or expired, renew it if held. */
  async tryAcquire(): Promise<boolean> {
    const started = Date.now();
    const { name, namespace } = this.opts;
    const now = new Date();
    let lease: Lease | undefined;
    try {
      lease = (await this.api.getNamespacedCustomObject({ ...LEASES, name, namespace }, this.calls)) as Lease;
    } catch (e) {
      if (statusOf(e) !== 404) throw e;
    }
    const spec = lease?.spec;
    const held = spec?.holderIdentity && spec.holderIdentity !== this.identity;
    const renewed = spec?.renewTime ? new Date(spec.renewTime).getTime() : 0;
    const expires = renewed + (spec?.leaseDurationSeconds ?? this.durationSeconds) * 1000;
    if (held && expires > now.getTime()) {
      this.leaderUntil = 0;
      this.heldUntil = expires;
      return false;
    }
    this.heldUntil = 0;
    const mine = spec?.holderIdentity === this.identity;
    const body: Lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name, namespace, resourceVersion: lease?.metadata?.resourceVersion },
      spec: {
        holderIdentity: this.identity,
        leaseDurationSeconds: this.durationSeconds,
        acquireTime: mine && spec?.acquireTime ? spec.acquireTime : microTime(now),
        renewTime: microTime(now),
        leaseTransitions: (spec?.leaseTransitions ?? 0) + (mine ? 0 : 1),
      },
    };
    try {
      if (lease) await this.api.replaceNamespacedCustomObject({ ...LEASES, name, namespace, body }, this.calls);
      else await this.api.createNamespacedCustomObject({ ...LEASES, namespace, body }, this.calls);
    } catch (e) {
      // 409: another candidate wrote first.
      if (statusOf(e) === 409) {
        this.leaderUntil = 0;
        return false;
      }
      throw e;
    }
    if (!mine) this.log?.info({ lease: `${namespace}/${name}`, identity: this.identity }, 'became leader');
    // Count from before the read, and stop a renewal interval short of expiry.
    this.leaderUntil = started + this.durationSeconds * 1000 - this.renewMs;
    return true;
  }
}
