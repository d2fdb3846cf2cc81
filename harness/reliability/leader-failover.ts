// Scenario 3: the leader killed: another replica takes the reconciler's Lease within its duration,
// a leaked claim is released within 60 s, and no live pod's claim is ever released.
import { Watch, type V1Pod } from '@kubernetes/client-node';
import { calicoIps, createNamespace, createPool, listClaims, waitFor, type Clients } from '../cluster.js';
import { sleep } from '../controlplane.js';
import { finish, LEASE, report, s, spec, type Env, type Report, type Size } from './env.js';
import { checkLedger, createPodRetrying, listPods } from './ledger.js';
import { readLease, Replicas } from './replicas.js';
import { allocate, podReview } from './reviews.js';

const NS = 'failover';
const POOL = 'failover';
// The chart's default grace (30 s): the promise is a leaked claim released within 60 s as deployed.
const GRACE = 30;

/** Live pods, a Deployment's and bare ones, through the API server: 20 in all. */
async function createLivePods(c: Clients, r: Report): Promise<V1Pod[]> {
  await c.apps.createNamespacedDeployment({
    namespace: NS,
    body: {
      metadata: { name: 'live' },
      spec: {
        replicas: 10,
        selector: { matchLabels: { app: 'live' } },
        template: { metadata: { labels: { app: 'live' }, annotations: { 'netpin.io/pool': POOL } }, spec },
      },
    },
  });
  for (let i = 0; i < 10; i++) {
    const out = await createPodRetrying(c, NS, {
      metadata: { name: `live-bare-${i}`, annotations: { 'netpin.io/pool': POOL } },
      spec,
    } as V1Pod);
    if (!out.pod) r.lost.push(`live-bare-${i} could not be created: ${out.errors.at(-1)}`);
  }
  return waitFor(
    '20 live pods',
    async () => {
      const pods = await listPods(c, NS);
      return pods.length === 20 ? pods : undefined;
    },
    60_000,
    500,
  );
}

/**
 * Every IPClaim deleted from now on, to show that none was a live pod's. A watch the API server
 * ends is started again (bounded), from the last version seen, so that no deletion is missed.
 */
class ClaimDeletions {
  readonly deleted: Array<{ at: number; ip: string; owner: string }> = [];
  private abort: AbortController | undefined;
  private watching = true;
  private resourceVersion: string | undefined;

  constructor(
    private readonly c: Clients,
    private readonly r: Report,
  ) {}

  async start(): Promise<void> {
    this.resourceVersion = (
      (await this.c.custom.listClusterCustomObject({
        group: 'netpin.io',
        version: 'v1alpha1',
        plural: 'ipclaims',
      })) as {
        metadata?: { resourceVersion?: string };
      }
    ).metadata?.resourceVersion;
    await this.watch(0);
  }

  private async watch(restarts: number): Promise<void> {
    this.abort = await new Watch(this.c.kc).watch(
      '/apis/netpin.io/v1alpha1/ipclaims',
      { resourceVersion: this.resourceVersion },
      (
        type: string,
        obj: { metadata?: { resourceVersion?: string }; spec?: { ip: string; owner: { name?: string } } },
      ) => {
        this.resourceVersion = obj.metadata?.resourceVersion ?? this.resourceVersion;
        if (type === 'DELETED' && obj.spec)
          this.deleted.push({ at: performance.now(), ip: obj.spec.ip, owner: obj.spec.owner.name ?? '' });
      },
      () => {
        if (this.watching && restarts < 20) setTimeout(() => void this.watch(restarts + 1).catch(() => undefined), 200);
        else if (this.watching) this.r.lost.push('the IPClaim watch ended 20 times: deletions may have been missed');
      },
    );
  }

  stop(): void {
    this.watching = false;
    this.abort?.abort();
  }
}

/** What the failovers measured, in seconds. */
interface Timings {
  takeovers: number[];
  sinceRenewals: number[];
  releases: number[];
}

/** Kills the leader and waits (bounded) for another replica to take the Lease; records how long that took. */
async function killLeader(env: Env, r: Report, replicas: Replicas, f: number, leader: number, t: Timings) {
  const identities = () => replicas.list.map((_, i) => replicas.identity(i));
  const killedIdentity = replicas.identity(leader);
  const tKill = performance.now();
  await replicas.list[leader]!.kill();
  // Read after the kill: the dead leader's last renewal, from which its Lease runs for its duration.
  const lastRenewal = (await readLease(env.c)).renewedAt;
  const wallAtKill = Date.now() - (performance.now() - tKill);
  const next = await waitFor(
    `failover ${f}: another replica to take the Lease`,
    async () => {
      const l = await readLease(env.c);
      return l.holder && l.holder !== killedIdentity && identities().includes(l.holder) ? l : undefined;
    },
    (LEASE.durationSeconds + 2 * LEASE.renewSeconds) * 1000,
    100,
  ).catch((e: Error) => {
    r.lost.push(e.message);
    return undefined;
  });
  const takeover = performance.now() - tKill;
  const sinceRenewal = takeover + (wallAtKill - lastRenewal);
  t.takeovers.push(takeover / 1000);
  t.sinceRenewals.push(sinceRenewal / 1000);
  // The margin: the new holder's read and write, and this loop's 100 ms polling.
  if (next && sinceRenewal > LEASE.durationSeconds * 1000 + 1_000)
    r.lost.push(
      `failover ${f}: the Lease was taken ${s(sinceRenewal)} after the dead leader's last renewal (${s(takeover)} after the kill), past its ${LEASE.durationSeconds} s duration`,
    );
  env.log(
    `3: failover ${f}: leader replica ${leader + 1} killed, replica ${identities().indexOf(next?.holder ?? '') + 1} took the Lease after ${s(takeover)}`,
  );
}

/** Waits (bounded) for the leaked claim's release, read from the API server by its owner (a later leak may get the same address). */
async function awaitRelease(c: Clients, r: Report, f: number, ip: string, uid: string, leakedAt: number, t: Timings) {
  const released = await waitFor(
    `failover ${f}: the leaked claim on ${ip} released`,
    async () =>
      (await listClaims(c, POOL)).some((x) => x.ip === ip && x.owner.uid === uid) ? undefined : performance.now(),
    90_000,
    250,
  ).catch((e: Error) => {
    r.lost.push(e.message);
    return undefined;
  });
  if (released === undefined) return;
  t.releases.push((released - leakedAt) / 1000);
  if (released - leakedAt > 60_000)
    r.lost.push(`failover ${f}: the leaked claim was released ${s(released - leakedAt)} after it was made, past 60 s`);
}

/** One failover: a leak on a survivor just before the leader dies, the takeover, the leader back, the leak released. */
async function failover(env: Env, r: Report, replicas: Replicas, f: number, t: Timings): Promise<void> {
  const identities = () => replicas.list.map((_, i) => replicas.identity(i));
  const leader = await waitFor(
    'a leader among the replicas',
    async () => {
      const i = identities().indexOf((await readLease(env.c)).holder ?? '');
      return i >= 0 ? i : undefined;
    },
    60_000,
    250,
  );
  // A claim whose pod never comes, made on a replica that survives, just before the leader dies.
  const survivor = replicas.list[(leader + 1) % 3]!;
  const ghostUid = `ghost-${f}-${Date.now()}`;
  const ghost = await allocate(survivor, podReview(NS, POOL, undefined, ghostUid));
  const leakedAt = performance.now();
  if (!ghost.ip) r.lost.push(`failover ${f}: the leaked claim could not be made: ${ghost.error}`);
  await killLeader(env, r, replicas, f, leader, t);
  // The dead replica comes back (as its Deployment would bring it), and must not take the Lease back by force.
  await sleep(1_000);
  await replicas.restart(leader);
  if (ghost.ip) await awaitRelease(env.c, r, f, ghost.ip, ghostUid, leakedAt, t);
}

function summarize(r: Report, size: Size, t: Timings, live: V1Pod[], deleted: number, liveDeleted: number): void {
  const { takeovers, sinceRenewals, releases } = t;
  r.figures = {
    failovers: size.failovers,
    'Lease duration': `${LEASE.durationSeconds} s (renewed every ${LEASE.renewSeconds} s)`,
    'seconds from the kill to another replica holding the Lease': takeovers.map((x) => x.toFixed(1)).join(', '),
    "seconds from the dead leader's last renewal to another replica holding the Lease": sinceRenewals
      .map((x) => x.toFixed(1))
      .join(', '),
    'seconds from the leak to its release (grace 30 s)': releases.map((x) => x.toFixed(1)).join(', '),
    'live pods': live.length,
    'IPClaim deletions seen': deleted,
    "live pods' claims deleted": liveDeleted,
  };
  r.held.push(
    `${size.failovers} leader(s) SIGKILLed; another replica took the Lease ${takeovers.map((x) => `${x.toFixed(1)} s`).join(', ')} after the kill, ${sinceRenewals.map((x) => `${x.toFixed(1)} s`).join(', ')} after the dead leader's last renewal (duration ${LEASE.durationSeconds} s).`,
    `Each leaked claim was released ${releases.map((x) => `${x.toFixed(1)} s`).join(', ')} after it was made (within 60 s, grace ${GRACE} s).`,
    `Of ${deleted} IPClaim deletions watched, none was a live pod's; the 20 live pods' claims are all there.`,
  );
}

export async function leaderFailover(env: Env, size: Size): Promise<Report> {
  const started = performance.now();
  const { c } = env;
  const r = report('3', 'Leader failover', size);
  await createNamespace(c, NS, { 'netpin.io/enabled': 'true' });
  const replicas = new Replicas(env, 'failover', { count: 3, grace: GRACE });
  const deletions = new ClaimDeletions(c, r);
  const timings: Timings = { takeovers: [], sinceRenewals: [], releases: [] };
  try {
    await replicas.start();
    await createPool(c, POOL, { cidr: '10.132.0.0/24' });
    await replicas.poolReady(NS, POOL);
    const live = await createLivePods(c, r);
    const liveIps = new Set(live.map((p) => calicoIps(p)[0]!));
    await deletions.start();
    for (let f = 1; f <= size.failovers; f++) await failover(env, r, replicas, f, timings);
    // Live pods: none of their claims was ever deleted, and all are still there.
    const liveDeleted = deletions.deleted.filter((d) => liveIps.has(d.ip));
    for (const d of liveDeleted) r.lost.push(`the claim of live pod ${d.owner || '(unbound)'} on ${d.ip} was released`);
    const end = checkLedger(await listPods(c, NS), await listClaims(c, POOL), { requireBound: false });
    r.lost.push(...end.lost);
    summarize(r, size, timings, live, deletions.deleted.length, liveDeleted.length);
  } finally {
    deletions.stop();
    await replicas.stop();
    await c.core.deleteNamespace({ name: NS }).catch(() => undefined);
  }
  return finish(r, started);
}
