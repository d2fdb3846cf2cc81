import { AppsV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { familyOf } from '../net/address.js';
import { ownerKey, type Claim } from '../ipam/claim.js';
import type { Ledger } from '../ipam/ledger.js';
import type { EventSink } from './event-sink.js';
import { releaseEvents } from './events.js';
import { describeApiError, GROUP, statusOf, VERSION } from './kube.js';
import type { KubeClusterView } from './kube-view.js';
import type { LeaseElector } from './lease.js';
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

export interface ReconcilerOptions {
  /** A claim younger than this is left alone: its pod may not be in the watch yet. */
  graceMs: number;
  intervalMs: number;
  /** The CNI's address annotations, read when deciding whether a pod still uses an address. */
  addressKeys: readonly string[];
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

/**
 * Releases what nobody holds any more, and keeps IPPool status current. Runs on
 * the leader only. A pod's claim is kept while any pod object uses or asks for
 * its address, terminating ones included, so that an address is never handed on
 * while the old pod may still use it.
 */
export class Reconciler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private writingStatus: Promise<void> | undefined;
  private stopped = false;
  private readonly api: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly apps: AppsV1Api;
  private readonly lastStatus = new Map<string, string>();
  /** Set once the app and its metrics exist, after the reconciler (kube-backend.ts). */
  metrics?: ReconcilerMetrics;

  constructor(
    kc: KubeConfig,
    private readonly ledger: Ledger,
    private readonly view: KubeClusterView,
    private readonly elector: LeaseElector,
    private readonly opts: ReconcilerOptions,
    private readonly log?: Logger,
  ) {
    this.api = kc.makeApiClient(CustomObjectsApi);
    this.core = kc.makeApiClient(CoreV1Api);
    this.apps = kc.makeApiClient(AppsV1Api);
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.opts.intervalMs);
    this.timer.unref();
    this.statusTimer = setInterval(() => void this.refreshStatus(), STATUS_INTERVAL_MS);
    this.statusTimer.unref();
  }

  async stop(): Promise<void> {
    // A sweep in progress stops after the release under way: what is left is the next leader's.
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.statusTimer) clearInterval(this.statusTimer);
    await Promise.all([this.running, this.writingStatus]);
  }

  private async tick(): Promise<void> {
    if (this.running || !this.elector.isLeader()) return;
    // Releases first: naming pods is a write per claim, and after a burst it must not starve them.
    this.running = this.sweep()
      .then(() => this.bind())
      .then(() => this.opts.egress?.sync())
      .catch((e) => this.log?.warn({ err: describeApiError(e) }, 'reconcile failed'))
      .finally(() => (this.running = undefined));
    await this.running;
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
      if (this.stopped || bound >= BIND_PER_ROUND) break;
      const pod = byAddress.get(`${claim.owner.namespace}/${claim.ip.toString()}`);
      if (!pod) continue;
      await this.ledger.bind(claim, pod);
      bound++;
    }
    return bound;
  }

  /**
   * Releases stale claims; returns them. The view only proposes: before a release the
   * namespace's pods (and the StatefulSet) are read again from the API server, so that a
   * lagging watch can never free an address a pod still uses.
   */
  async sweep(now = Date.now()): Promise<Claim[]> {
    const view = this.view;
    const pods = indexPods(view.pods.values());
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
          (ns, name) => view.statefulSets.get(name, ns) !== undefined,
          now,
          this.opts.graceMs,
          (claim) => this.ledger.index.claimsOf(claim.owner),
        ),
      );
    }
    this.metrics?.overdue(candidates, this.opts.graceMs);
    const released: Claim[] = [];
    const fresh = new Map<string, PodRecord[]>();
    for (const claim of candidates) {
      if (this.stopped) break;
      const o = claim.owner;
      let pods = fresh.get(o.namespace);
      if (!pods) fresh.set(o.namespace, (pods = await this.readPods(o.namespace)));
      const holder = pods.find((p) => holds(p, claim, this.ledger.index.claimsOf(o)));
      if (holder || (o.kind === 'StatefulSet' && (await this.statefulSetExists(o.namespace, o.name)))) {
        this.log?.info(
          { ip: claim.ip.toString(), owner: claim.owner, pod: holder?.name },
          'kept a claim the watch thought free',
        );
        continue;
      }
      await this.ledger.release(claim);
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

  private async readPods(namespace: string): Promise<PodRecord[]> {
    const list = await this.core.listNamespacedPod({ namespace });
    return list.items.map((pod) => podRecord(pod, this.opts.addressKeys));
  }

  private async statefulSetExists(namespace: string, name: string): Promise<boolean> {
    try {
      await this.apps.readNamespacedStatefulSet({ namespace, name });
      return true;
    } catch (e) {
      if (statusOf(e) === 404) return false;
      throw e;
    }
  }

  private async refreshStatus(): Promise<void> {
    if (this.writingStatus || !this.elector.isLeader()) return;
    this.writingStatus = this.writePoolStatus()
      .catch((e) => this.log?.warn({ err: describeApiError(e) }, 'writing IPPool status failed'))
      .finally(() => (this.writingStatus = undefined));
    await this.writingStatus;
  }

  private async writePoolStatus(): Promise<void> {
    const index = this.ledger.index;
    for (const pool of index.allPools()) {
      const usage = index.usage(pool.name);
      const families = usage.map((u) => ({
        family: u.family,
        capacity: u.capacity.toString(),
        allocated: Number(u.allocated),
      }));
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
