import { AppsV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig, type V1StatefulSet } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { familyOf, parseAddress } from '../net/address.js';
import { ownerKey, type Claim } from '../ipam/claim.js';
import type { Ledger } from '../ipam/ledger.js';
import { scaleDownRelease } from '../ipam/scale-down.js';
import { withDeadline } from './deadline.js';
import type { EventSink } from './event-sink.js';
import { releaseEvents } from './events.js';
import { describeApiError, GROUP, statusOf, VERSION, withTimeout } from './kube.js';
import { podRecord, type PodRecord } from './pod-tracker.js';

/**
 * How often the leader compares pool use with IPPool status (it writes only what changed): on its own
 * short round, so that `kubectl get ippools` follows a claim within a second or two, whatever a sweep costs.
 */
const STATUS_INTERVAL_MS = 1_000;

/** How many claims a sweep looks at between giving way to admissions. */
const SWEEP_SLICE = 2_000;

/** How many claims one round names its pod in; the rest wait for the next rounds, seconds apart. */
const BIND_PER_ROUND = 200;

/** How many claims stored under an old name one round moves to the address's own name. */
const MIGRATE_PER_ROUND = 500;

/** Deleted pods waiting for a prompt pass; past this, the sweep releases the rest after the grace period. */
const MAX_GONE = 10_000;

/** How long a prompt pass waits after a deletion, so that a burst of deletions makes one pass. */
const PROMPT_DELAY_MS = 100;

export interface ReconcilerOptions {
  /**
   * A claim younger than this is left alone: the pod it was made for may not be stored yet, while the
   * API server waits for the webhooks after netpin's.
   */
  graceMs: number;
  /** An egress address no pod has shown for this long is released; other pods of its workload may come back. */
  egressGraceMs: number;
  intervalMs: number;
  /** The clock; tests play it. */
  now?: () => number;
  /** Keeps the CNI's egress resources in line with the claims, after each sweep. */
  egress?: { sync(): Promise<void> };
  /** Where releases are told as Events (docs/events.md). */
  events?: EventSink;
}

/** Where the reconciler reports what it releases and what it finds overdue (transport/metrics.ts). */
export interface ReconcilerMetrics {
  released(claim: Claim): void;
  /** Each sweep: the claims past their grace period that, by the watch, no pod holds; it releases them next. */
  overdue(claims: readonly Claim[], graceMs: number): void;
}

/**
 * Whether a pod holds a claim's address: it is the claim's owner by name (a pod, or the
 * StatefulSet's pod of that ordinal), or it uses or asked for the address in any way it can
 * say so. No single piece of metadata decides, so that removing one cannot free an address.
 */
export function holds(pod: PodRecord, claim: Claim, ownersClaims: readonly Claim[] = []): boolean {
  const o = claim.owner;
  // An egress address is held while a pod it was given to lives; what shares it, pods come and go.
  if (o.kind === 'Egress') return pod.egress.includes(claim.ip.toString());
  if (pod.addresses.includes(claim.ip.toString())) return true;
  if (o.kind === 'StatefulSet') return pod.name === `${o.name}-${o.ordinal}`;
  if (o.name === '' || pod.name !== o.name) return false;
  // By name, unless the pod shows another address of the family that its owner claimed too: then this
  // one was claimed by an earlier admission under the same name whose pod never came (a create
  // retried on a replica that had not seen this claim yet), and the pod does not use it.
  const family = familyOf(claim.ip);
  return !ownersClaims.some((x) => x !== claim && familyOf(x.ip) === family && pod.addresses.includes(x.ip.toString()));
}

/** The pods of one namespace, found by what `holds` looks at: their name, and every address they show. */
interface NamespacePods {
  byName: Map<string, PodRecord>;
  byAddress: Map<string, PodRecord>;
  byEgress: Map<string, PodRecord>;
}

/** Pods by namespace, as `staleClaims` looks them up; built once for a sweep done in slices. */
type PodIndex = Map<string, NamespacePods>;

function indexPods(pods: Iterable<PodRecord>): PodIndex {
  const index = new Map<string, NamespacePods>();
  for (const pod of pods) {
    let ns = index.get(pod.namespace);
    if (!ns) index.set(pod.namespace, (ns = { byName: new Map(), byAddress: new Map(), byEgress: new Map() }));
    ns.byName.set(pod.name, pod);
    for (const a of pod.addresses) ns.byAddress.set(a, pod);
    for (const a of pod.egress) ns.byEgress.set(a, pod);
  }
  return index;
}

/**
 * The pods that could hold a claim: any other pod fails every test of `holds`. Looked up, not
 * scanned, so that a sweep costs the claims, not claims × pods.
 */
function candidates(ns: NamespacePods | undefined, claim: Claim): PodRecord[] {
  if (!ns) return [];
  const o = claim.owner;
  const ip = claim.ip.toString();
  const found =
    o.kind === 'Egress'
      ? [ns.byEgress.get(ip)]
      : [ns.byAddress.get(ip), ns.byName.get(o.kind === 'StatefulSet' ? `${o.name}-${o.ordinal}` : o.name)];
  return found.filter((p): p is PodRecord => p !== undefined);
}

/**
 * The claims past their grace period that no pod holds and no StatefulSet keeps, as the cluster view sees them.
 * `ownersClaims` finds the other claims of a claim's owner (the ledger's index has them at hand); without
 * it they are gathered from `claims`.
 */
export function staleClaims(
  claims: Iterable<Claim>,
  pods: Iterable<PodRecord> | PodIndex,
  statefulSetExists: (namespace: string, name: string) => boolean,
  now: number,
  graceMs: number,
  ownersClaims?: (claim: Claim) => readonly Claim[],
): Claim[] {
  const byNamespace = pods instanceof Map ? pods : indexPods(pods);
  const all = [...claims];
  const owners = ownersClaims ?? groupByOwner(all);
  const stale: Claim[] = [];
  for (const claim of all) {
    if (now - claim.createdAt < graceMs) continue;
    const o = claim.owner;
    // A StatefulSet keeps its reservations on scale-down; they go with the StatefulSet and its last pod.
    if (o.kind === 'StatefulSet' && statefulSetExists(o.namespace, o.name)) continue;
    if (candidates(byNamespace.get(o.namespace), claim).some((p) => holds(p, claim, owners(claim)))) continue;
    stale.push(claim);
  }
  return stale;
}

function groupByOwner(claims: readonly Claim[]): (claim: Claim) => readonly Claim[] {
  let byOwner: Map<string, Claim[]> | undefined;
  return (claim) => {
    if (!byOwner) {
      byOwner = new Map();
      for (const c of claims) {
        const key = ownerKey(c.owner);
        let list = byOwner.get(key);
        if (!list) byOwner.set(key, (list = []));
        list.push(c);
      }
    }
    return byOwner.get(ownerKey(claim.owner)) ?? [];
  };
}

/** What the reconciler reads of a StatefulSet: its range of ordinals, and its own annotations. */
export interface StatefulSetState {
  replicas: number;
  ordinalsStart: number;
  annotations?: Record<string, string>;
}

/** A StatefulSet object as the reconciler reads it; undefined for none. */
export function statefulSetState(sts: V1StatefulSet | undefined): StatefulSetState | undefined {
  if (!sts) return undefined;
  const replicas = sts.spec?.replicas;
  const start = sts.spec?.ordinals?.start;
  return {
    // As the API server defaults them: one replica, ordinals from 0.
    replicas: typeof replicas === 'number' ? replicas : 1,
    ordinalsStart: typeof start === 'number' ? start : 0,
    annotations: sts.metadata?.annotations,
  };
}

/** Whether a StatefulSet of this shape runs the ordinal: start <= ordinal < start + replicas. */
function runs(sts: StatefulSetState, ordinal: number): boolean {
  return ordinal >= sts.ordinalsStart && ordinal < sts.ordinalsStart + sts.replicas;
}

/** What the reconciler asks the API server, so that a test can answer at any interleaving it likes. */
export interface ReconcilerApi {
  /** The pods of a namespace as the API server has them now, not as a watch last told. */
  namespacePods(namespace: string): Promise<PodRecord[]>;
  statefulSetExists(namespace: string, name: string): Promise<boolean>;
  /**
   * The StatefulSet as the API server has it now; undefined when it does not exist. Optional: without
   * it, a StatefulSet that exists keeps every reservation, and none is given back on scale-down.
   */
  statefulSet?(namespace: string, name: string): Promise<StatefulSetState | undefined>;
  writePoolStatus(pool: string, status: PoolStatus): Promise<void>;
}

/** An IPPool's `status`, as `kubectl get ippools.netpin.io` shows it. */
interface PoolStatus {
  capacity: number;
  allocated: number;
  families: { family: string; capacity: string; allocated: number }[];
  observedAt: string;
}

/**
 * How long one of the reconciler's calls may take. A release must land while this replica is still
 * the leader: it is started only when the lease is held for at least this long yet, and the lease
 * itself outlasts the leadership by a renewal interval (lease.ts).
 */
export const RECONCILER_CALL_MS = 3_000;

/** Runs one of the ledger's writes with RECONCILER_CALL_MS to answer, however alive the API server seems. */
function within<T>(write: () => Promise<T>): Promise<T> {
  return withDeadline(RECONCILER_CALL_MS, write, RECONCILER_CALL_MS);
}

/** The reconciler's calls through client-node, each with RECONCILER_CALL_MS to answer. */
export function kubeReconcilerApi(kc: KubeConfig, addressKeys: readonly string[]): ReconcilerApi {
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const deadline = withTimeout(RECONCILER_CALL_MS);
  const readStatefulSet = async (namespace: string, name: string) => {
    try {
      return statefulSetState(await apps.readNamespacedStatefulSet({ namespace, name }, deadline));
    } catch (e) {
      if (statusOf(e) === 404) return undefined;
      throw e;
    }
  };
  return {
    async namespacePods(namespace) {
      const list = await core.listNamespacedPod({ namespace }, deadline);
      return list.items.map((pod) => podRecord(pod, addressKeys));
    },
    async statefulSetExists(namespace, name) {
      return (await readStatefulSet(namespace, name)) !== undefined;
    },
    statefulSet: readStatefulSet,
    async writePoolStatus(name, status) {
      await custom.patchClusterCustomObjectStatus(
        {
          group: GROUP,
          version: VERSION,
          plural: 'ippools',
          name,
          body: [{ op: 'add', path: '/status', value: status }],
        },
        deadline,
      );
    },
  };
}

/** What the reconciler reads of the cluster: the watches' view, and whether all of it is complete. */
export interface ReconcilerView {
  readonly pods: { values(): Iterable<PodRecord> };
  statefulSetExists(namespace: string, name: string): boolean;
  /**
   * The StatefulSet as the watch last saw it, undefined when it does not exist. Optional: without it,
   * a StatefulSet scaled down keeps the reservations above its new size while it exists.
   */
  statefulSet?(namespace: string, name: string): StatefulSetState | undefined;
  /**
   * Whether every cache the leader judges by (pods, namespaces, StatefulSets, the ledger's pools and
   * claims) has completed its latest list: while one is listing, or listing again after its watch
   * broke, it may lack objects, and the leader must not act on what it does not see.
   */
  complete(): boolean;
}

/** The lease, as the reconciler asks it: whether this replica is the leader until `at`. */
export interface Leadership {
  isLeader(at?: number): boolean;
}

/**
 * Releases what nobody holds any more, and keeps IPPool status current. Runs on the leader only,
 * and only on complete caches. A pod's claim is kept while any pod object uses or asks for its
 * address, terminating ones included, so that an address is never handed on while the old pod may
 * still use it. A pod the watch reports deleted gives its claims back at once, once the API server
 * confirms nothing holds them; a claim whose pod never appeared waits out the grace period.
 */
export class Reconciler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private writingStatus: Promise<void> | undefined;
  private promptTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly lastStatus = new Map<string, string>();
  /** Pods the watch reported deleted, by "<namespace>/<name>", with the addresses they showed. */
  private readonly gone = new Map<string, PodRecord>();
  /** When a pod last showed each egress address (leader's clock), by address. */
  private readonly egressSeen = new Map<string, number>();
  /** Since when (leader's clock) each reserved ordinal has been outside its StatefulSet's range, by owner key. */
  private readonly outsideSince = new Map<string, number>();
  /** Since when this replica has led without a break; undefined while it does not. */
  private leaderSince: number | undefined;
  private readonly now: () => number;
  /** Set once the app and its metrics exist, after the reconciler (kube-backend.ts). */
  metrics?: ReconcilerMetrics;

  constructor(
    private readonly api: ReconcilerApi,
    private readonly ledger: Ledger,
    private readonly view: ReconcilerView,
    private readonly elector: Leadership,
    private readonly opts: ReconcilerOptions,
    private readonly log?: Logger,
  ) {
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    this.timer = setInterval(() => void this.round(), this.opts.intervalMs);
    this.timer.unref();
    this.statusTimer = setInterval(() => void this.refreshStatus(), STATUS_INTERVAL_MS);
    this.statusTimer.unref();
  }

  async stop(): Promise<void> {
    // A sweep in progress stops after the release under way: what is left is the next leader's.
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.statusTimer) clearInterval(this.statusTimer);
    if (this.promptTimer) clearTimeout(this.promptTimer);
    await Promise.all([this.running, this.writingStatus]);
  }

  /**
   * A pod the watch reported deleted: its claims are released at the next prompt pass, a moment
   * later (deletions that come together are handled together), instead of after the grace period.
   */
  podGone(pod: PodRecord): void {
    if (this.stopped) return;
    // Past this many waiting, the rest are left to the sweep: the work per pass stays bounded.
    if (this.gone.size < MAX_GONE) this.gone.set(`${pod.namespace}/${pod.name}`, pod);
    if (!this.promptTimer) {
      this.promptTimer = setTimeout(() => void this.prompt(), PROMPT_DELAY_MS);
      this.promptTimer.unref();
    }
  }

  /** Releases the claims of the pods reported deleted since the last pass. */
  async prompt(): Promise<void> {
    clearTimeout(this.promptTimer);
    this.promptTimer = undefined;
    await this.run(() => this.releaseGone());
  }

  /** One round of leader work, as the timer runs it: deleted pods, the sweep, naming pods, egress resources. */
  async round(): Promise<void> {
    // Releases first: naming pods is a write per claim, and after a burst it must not starve them.
    await this.run(async () => {
      await this.releaseGone();
      await this.sweep();
      await this.bind();
      await this.ledger.migrate?.(MIGRATE_PER_ROUND, () => this.mayAct());
      if (this.mayAct()) await this.opts.egress?.sync();
    });
  }

  /** Runs one pass of leader work at a time, on the leader only; a failed call ends the pass. */
  private async run(pass: () => Promise<unknown>): Promise<void> {
    if (this.running || !this.leading()) {
      // A prompt pass that finds a sweep under way waits for the next tick, which starts with it.
      return;
    }
    this.running = pass()
      .then(() => undefined)
      .catch((e) => this.log?.warn({ err: describeApiError(e) }, 'reconcile failed'))
      .finally(() => (this.running = undefined));
    await this.running;
  }

  /** Whether this replica leads now, noting since when: the egress grace period counts from no earlier. */
  private leading(): boolean {
    const now = this.now();
    if (!this.elector.isLeader(now)) {
      this.leaderSince = undefined;
      return false;
    }
    this.leaderSince ??= now;
    return true;
  }

  /**
   * Whether the leader may act now: it leads for at least as long as a call may take, so that what it
   * starts lands before another replica can lead, and every cache it judges by is complete.
   */
  private mayAct(): boolean {
    return !this.stopped && this.elector.isLeader(this.now() + RECONCILER_CALL_MS) && this.view.complete();
  }

  /**
   * Names the pod in every claim made for a pod not yet named, once the pod shows the address:
   * from then on the pod's name holds it, whatever happens to its annotations and labels.
   */
  async bind(): Promise<number> {
    const unbound = [...this.ledger.index.allClaims()].filter(
      (c) => c.owner.kind === 'Pod' && c.owner.name === '' && c.ref !== undefined,
    );
    if (unbound.length === 0) return 0;
    const byAddress = new Map<string, PodRecord>();
    for (const pod of this.view.pods.values())
      for (const a of pod.addresses) byAddress.set(`${pod.namespace}/${a}`, pod);
    let bound = 0;
    for (const claim of unbound) {
      // A bounded batch per round, so that each round ends and the next sweeps again.
      if (!this.mayAct() || bound >= BIND_PER_ROUND) break;
      const pod = byAddress.get(`${claim.owner.namespace}/${claim.ip.toString()}`);
      if (!pod) continue;
      await within(() => this.ledger.bind(claim, pod));
      bound++;
    }
    return bound;
  }

  /**
   * Releases stale claims; returns them. The view only proposes: before a release the namespace's
   * pods (and the StatefulSet) are read again from the API server, so that a lagging watch can never
   * free an address a pod still uses; and the release deletes exactly the claim that was judged, so
   * that one renewed meanwhile stays.
   */
  async sweep(): Promise<Claim[]> {
    if (!this.mayAct()) return [];
    const now = this.now();
    const view = this.view;
    const pods = indexPods(view.pods.values());
    this.noteEgressSightings(pods, now);
    const all = [...this.ledger.index.allClaims()];
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
          this.opts.graceMs,
          (claim) => this.ledger.index.claimsOf(claim.owner),
        ).filter((c) => c.owner.kind !== 'Egress' || now - this.egressSince(c) >= this.opts.egressGraceMs),
      );
    }
    this.metrics?.overdue(candidates, this.opts.graceMs);
    candidates.push(...this.scaledDown(all, pods, now));
    return this.releaseIfFree(candidates);
  }

  /**
   * The reservations of ordinals a StatefulSet no longer runs (scaled down, or its ordinals.start
   * moved) once they have been outside its range for the period its netpin.io/scale-down-release
   * asks (an hour by default; "never": kept while it exists), and no pod of that ordinal exists.
   * The period counts from when this leader first saw the ordinal outside, and no earlier than
   * when it began to lead: a new leader does not know what its predecessor saw.
   */
  private scaledDown(all: readonly Claim[], pods: PodIndex, now: number): Claim[] {
    const read = this.view.statefulSet;
    if (!read) return [];
    const due: Claim[] = [];
    const outside = new Set<string>();
    for (const claim of all) {
      const o = claim.owner;
      if (o.kind !== 'StatefulSet') continue;
      const sts = read.call(this.view, o.namespace, o.name);
      if (!sts || runs(sts, o.ordinal)) continue;
      const key = ownerKey(o);
      outside.add(key);
      if (!this.outsideSince.has(key)) this.outsideSince.set(key, now);
      if (!this.releasable(claim, sts, now)) continue;
      if (candidates(pods.get(o.namespace), claim).some((p) => holds(p, claim))) continue;
      due.push(claim);
    }
    for (const key of this.outsideSince.keys()) if (!outside.has(key)) this.outsideSince.delete(key);
    return due;
  }

  /** Whether an existing StatefulSet lets an ordinal's reservation go now: outside its range for the period it asks. */
  private releasable(claim: Claim, sts: StatefulSetState, now: number): boolean {
    const o = claim.owner;
    if (o.kind !== 'StatefulSet' || runs(sts, o.ordinal)) return false;
    const period = scaleDownRelease(sts.annotations);
    // A value admission would refuse (written while netpin did not admit StatefulSets) keeps them, as "never" does.
    if (typeof period !== 'number') return false;
    const since = this.outsideSince.get(ownerKey(o));
    if (since === undefined) return false;
    return now - Math.max(since, this.leaderSince ?? now) >= period;
  }

  /**
   * The claims of the pods the watch reported deleted: a pod's, by its name or an address it showed
   * (one not yet named holds by address). StatefulSet ordinals stay with their StatefulSet, and
   * egress addresses wait out their grace period, since other pods share them.
   */
  private async releaseGone(): Promise<Claim[]> {
    if (this.gone.size === 0 || !this.mayAct()) return [];
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
    return this.releaseIfFree([...candidates]);
  }

  /** Releases each claim that, by the API server's own answers, nobody holds; returns those released. */
  private async releaseIfFree(candidates: readonly Claim[]): Promise<Claim[]> {
    const released: Claim[] = [];
    const fresh = new Map<string, PodRecord[]>();
    for (const claim of candidates) {
      if (!this.mayAct()) break;
      // Renewed, bound, or released since it was judged: the index holds another entry, or none.
      if (this.ledger.index.holderOf(claim.ip) !== claim) continue;
      const o = claim.owner;
      let pods = fresh.get(o.namespace);
      if (!pods) fresh.set(o.namespace, (pods = await this.api.namespacePods(o.namespace)));
      const holder = pods.find((p) => holds(p, claim, this.ledger.index.claimsOf(o)));
      if (holder || (o.kind === 'StatefulSet' && (await this.keptByStatefulSet(claim)))) {
        this.log?.info(
          { ip: claim.ip.toString(), owner: claim.owner, pod: holder?.name },
          'kept a claim the watch thought free',
        );
        continue;
      }
      // The reads took time: the lease or the claim may have moved on meanwhile.
      if (!this.mayAct() || this.ledger.index.holderOf(claim.ip) !== claim) continue;
      if (!(await within(() => this.ledger.release(claim)))) continue;
      released.push(claim);
      this.metrics?.released(claim);
      this.log?.info(
        { ip: claim.ip.toString(), pool: claim.pool, owner: claim.owner },
        'released a claim nobody holds',
      );
    }
    for (const event of releaseEvents(released)) this.opts.events?.record(event);
    return released;
  }

  /**
   * Whether the StatefulSet of a reservation, as the API server has it now, keeps it: it exists, and
   * runs the ordinal or has not let it go yet (scale-down-release, read afresh).
   */
  private async keptByStatefulSet(claim: Claim): Promise<boolean> {
    const o = claim.owner;
    if (o.kind !== 'StatefulSet') return false;
    if (!this.api.statefulSet) return this.api.statefulSetExists(o.namespace, o.name);
    const sts = await this.api.statefulSet(o.namespace, o.name);
    return sts !== undefined && !this.releasable(claim, sts, this.now());
  }

  /** Every egress address a pod shows now counts as seen now; addresses no claim holds are forgotten. */
  private noteEgressSightings(pods: PodIndex, now: number): void {
    for (const ns of pods.values()) for (const a of ns.byEgress.keys()) this.egressSeen.set(a, now);
    for (const a of this.egressSeen.keys()) {
      const ip = parseAddress(a);
      if (!ip || this.ledger.index.holderOf(ip)?.owner.kind !== 'Egress') this.egressSeen.delete(a);
    }
  }

  /**
   * Since when an egress claim has had no pod: its last sighting, and no earlier than when it was
   * claimed or when this replica began to lead (a new leader does not know what its predecessor saw).
   */
  private egressSince(claim: Claim): number {
    return Math.max(claim.createdAt, this.egressSeen.get(claim.ip.toString()) ?? 0, this.leaderSince ?? this.now());
  }

  private async refreshStatus(): Promise<void> {
    if (this.writingStatus || !this.leading() || !this.view.complete()) return;
    this.writingStatus = this.writePoolStatus()
      .catch((e) => this.log?.warn({ err: describeApiError(e) }, 'writing IPPool status failed'))
      .finally(() => (this.writingStatus = undefined));
    await this.writingStatus;
  }

  async writePoolStatus(): Promise<void> {
    const index = this.ledger.index;
    const pools = index.allPools();
    const names = new Set(pools.map((p) => p.name));
    for (const name of this.lastStatus.keys()) if (!names.has(name)) this.lastStatus.delete(name);
    for (const pool of pools) {
      if (!this.mayAct()) return;
      const usage = index.usage(pool.name);
      const families = usage.map((u) => ({
        family: u.family,
        capacity: u.capacity.toString(),
        allocated: Number(u.allocated),
      }));
      const key = JSON.stringify(families);
      if (this.lastStatus.get(pool.name) === key) continue;
      const total = usage.reduce((n, u) => n + u.capacity, 0n);
      await this.api.writePoolStatus(pool.name, {
        capacity: total > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(total),
        allocated: families.reduce((n, f) => n + f.allocated, 0),
        families,
        observedAt: new Date(this.now()).toISOString(),
      });
      this.lastStatus.set(pool.name, key);
    }
  }
}
