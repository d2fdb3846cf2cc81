import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { ALLOCATED_KEY, EGRESS_ALLOCATED_KEY } from '../intent/keys.js';
import { familyOf, parseAddress } from '../net/address.js';
import { OFF_ADMISSION } from './kube.js';
import { Reflector, type PagedList } from './reflector.js';

/**
 * What netpin keeps of a pod: who it is, and what it shows of its addresses, at most one per family
 * from each place a pod can say so, so that a record stays a few hundred bytes whatever the pod carries.
 */
export interface PodRecord {
  namespace: string;
  name: string;
  uid: string;
  /**
   * Every address the live pod shows: netpin.io/allocated, the CNI's address annotations and
   * status.podIPs, the first of each family from each. What keeps a claim of the pod's own
   * namespace held (reconciler.ts); a claim is netpin's, so a pod can only keep what netpin gave there.
   */
  addresses: string[];
  /**
   * The egress addresses netpin gave it (netpin.io/egress-allocated, one per family), while it is
   * live. Like `addresses`, they keep only an egress claim of the pod's own namespace held: never an
   * address against another owner.
   */
  egress: string[];
  /**
   * What of `addresses` no tenant can forge: status.podIPs, which the kubelet writes, and, for a
   * family the kubelet has not reported yet, the CNI's annotation of a scheduled pod, which the CNI
   * is acting on. At most one per family. Absent (records made by hand): all of `addresses`.
   */
  unforged?: string[];
  /**
   * What the pod holds against every other owner, as the tracker judged it from its namespace:
   * `addresses` where netpin admits the pods (the webhook guards netpin.io/allocated and the CNI's
   * annotations there), `unforged` elsewhere. Absent (records made by hand): all of `addresses`.
   */
  inUse?: string[];
  /**
   * Succeeded or Failed: its sandbox is torn down, so it holds nothing, not even by its name, though
   * the object may linger (a Job's pods until their TTL). Absent: live.
   */
  finished?: boolean;
}

/** A pod whose containers have all ended has given its addresses back: the runtime tore its sandbox down. */
export function isLive(pod: V1Pod): boolean {
  const phase = pod.status?.phase;
  return phase !== 'Succeeded' && phase !== 'Failed';
}

/**
 * Tokens read from one annotation value. A pod needs one address per family, and netpin and every
 * CNI write at most two ("10.0.0.5,fd00::5", Calico's '["10.0.0.5","fd00::5"]'); what comes after
 * the first few is never read, so that a 256 KiB annotation naming 20 000 addresses costs nothing.
 */
const TOKENS_READ = 4;

function* tokensOf(value: string | undefined): Generator<string> {
  if (!value) return;
  let n = 0;
  for (const m of value.matchAll(/[^\s,;"[\]]+/g)) {
    yield m[0];
    if (++n >= TOKENS_READ) return;
  }
}

/** The first address of each family among `texts`, IPv4 first: at most two. */
function onePerFamily(texts: Iterable<string>): string[] {
  let v4: string | undefined;
  let v6: string | undefined;
  for (const text of texts) {
    const a = parseAddress(text);
    if (!a) continue;
    if (familyOf(a) === 'ipv4') v4 ??= a.toString();
    else v6 ??= a.toString();
    if (v4 && v6) break;
  }
  return v4 && v6 ? [v4, v6] : v4 ? [v4] : v6 ? [v6] : [];
}

function* each<T>(...lists: Iterable<T>[]): Generator<T> {
  for (const list of lists) yield* list;
}

/** What a pod shows of its addresses, source by source, before its namespace is taken into account. */
interface Evidence {
  /** netpin.io/allocated. */
  allocated: string[];
  /** The CNI's address annotations, all keys together. */
  cni: string[];
  /** status.podIPs. */
  kubelet: string[];
  /** spec.nodeName is set: the kubelet of that node runs the pod, and its CNI acts on the annotations. */
  scheduled: boolean;
}

function evidenceOf(pod: V1Pod, addressKeys: readonly string[]): Evidence {
  const annotations = pod.metadata?.annotations ?? {};
  return {
    allocated: onePerFamily(tokensOf(annotations[ALLOCATED_KEY])),
    cni: onePerFamily(each(...addressKeys.map((k) => tokensOf(annotations[k])))),
    kubelet: onePerFamily(
      (pod.status?.podIPs ?? []).slice(0, TOKENS_READ).map(({ ip }) => (typeof ip === 'string' ? ip : '')),
    ),
    scheduled: Boolean(pod.spec?.nodeName),
  };
}

/** Every address of these lists once, in order. */
function union(...lists: string[][]): string[] {
  return [...new Set(each(...lists))];
}

/** The kubelet's address of each family, else the CNI's when the pod is scheduled. */
function unforgedOf(e: Evidence): string[] {
  if (!e.scheduled) return e.kubelet;
  const reported = new Set(e.kubelet.map((a) => familyOf(parseAddress(a)!)));
  return [...e.kubelet, ...e.cni.filter((a) => !reported.has(familyOf(parseAddress(a)!)))];
}

/**
 * Every address a live pod shows, whoever wrote it: netpin.io/allocated, the CNI's address
 * annotations (`addressKeys`, in any of their syntaxes), and status.podIPs, the first of each
 * family from each. None of these alone decides: any one of them keeps a claim of its namespace held.
 */
export function podAddresses(pod: V1Pod, addressKeys: readonly string[]): string[] {
  if (!isLive(pod)) return [];
  const e = evidenceOf(pod, addressKeys);
  return union(e.allocated, e.cni, e.kubelet);
}

/** The egress addresses netpin gave a live pod, one per family. */
function podEgress(pod: V1Pod): string[] {
  return isLive(pod) ? onePerFamily(tokensOf(pod.metadata?.annotations?.[EGRESS_ALLOCATED_KEY])) : [];
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * A pod as netpin keeps it. `optedIn`: whether netpin's webhooks admit the pods of its namespace,
 * which decides what the pod holds against others (`inUse`).
 */
export function podRecord(pod: V1Pod, addressKeys: readonly string[], optedIn = false): PodRecord {
  const live = isLive(pod);
  const e = live ? evidenceOf(pod, addressKeys) : undefined;
  const addresses = e ? union(e.allocated, e.cni, e.kubelet) : [];
  const found = e ? unforgedOf(e) : [];
  // The same list once where both say the same, as they do for most pods.
  const unforged = sameList(found, addresses) ? addresses : found;
  return {
    namespace: pod.metadata?.namespace ?? '',
    name: pod.metadata?.name ?? '',
    uid: pod.metadata?.uid ?? '',
    addresses,
    egress: live ? podEgress(pod) : [],
    unforged,
    inUse: optedIn ? addresses : unforged,
    ...(!live && { finished: true }),
  };
}

/** What a record holds against every other owner, its namespace opted in or not. */
function judged(record: PodRecord, optedIn: boolean): PodRecord {
  const held = optedIn ? record.addresses : (record.unforged ?? record.addresses);
  return held === record.inUse ? record : { ...record, inUse: held };
}

/** What the pod holds against every other owner: see PodRecord.inUse. */
export function inUse(record: PodRecord): string[] {
  return record.inUse ?? record.addresses;
}

const PAGE = 500;

/** The pods of the cluster, 500 a page: for the tracker's lists, and for the operator commands that read them once. */
export function podPages(core: CoreV1Api): PagedList<V1Pod> {
  return async (next) => {
    const page = await core.listPodForAllNamespaces({ limit: PAGE, _continue: next }, OFF_ADMISSION);
    return { items: page.items, continue: page.metadata?._continue, resourceVersion: page.metadata?.resourceVersion };
  };
}

function podKey(pod: V1Pod): string {
  return `${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`;
}

/** Told of every change, with the record after it (undefined: the pod is gone) and the one before. */
export type PodChange = (key: string, record: PodRecord | undefined, before: PodRecord | undefined) => void;

/**
 * The records of the pods seen, by namespace, so that a namespace that opts in or out has its own
 * pods judged again, and no others. What it is told of pods comes from a watch (PodTracker).
 */
export class PodRecords {
  private readonly byNamespace = new Map<string, Map<string, PodRecord>>();

  constructor(
    private readonly addressKeys: readonly string[],
    /** Whether netpin's webhooks admit the pods of a namespace (kube-view.ts, OptIn). */
    private readonly optedIn: (namespace: string) => boolean,
    private readonly onChange: PodChange,
  ) {}

  get(namespace: string, name: string): PodRecord | undefined {
    return this.byNamespace.get(namespace)?.get(name);
  }

  *values(): IterableIterator<PodRecord> {
    for (const pods of this.byNamespace.values()) yield* pods.values();
  }

  /** A pod as listed or watched now. */
  seen(pod: V1Pod): void {
    const namespace = pod.metadata?.namespace ?? '';
    const record = podRecord(pod, this.addressKeys, this.optedIn(namespace));
    let pods = this.byNamespace.get(namespace);
    if (!pods) this.byNamespace.set(namespace, (pods = new Map()));
    const before = pods.get(record.name);
    pods.set(record.name, record);
    if (
      !before ||
      before.uid !== record.uid ||
      !sameList(before.addresses, record.addresses) ||
      !sameList(before.egress, record.egress) ||
      !sameList(inUse(before), inUse(record))
    )
      this.onChange(`${namespace}/${record.name}`, record, before);
  }

  /** A pod deleted, by "<namespace>/<name>". */
  forget(key: string): void {
    const slash = key.indexOf('/');
    const namespace = key.slice(0, slash);
    const pods = this.byNamespace.get(namespace);
    const before = pods?.get(key.slice(slash + 1));
    if (!pods || !before) return;
    pods.delete(before.name);
    if (pods.size === 0) this.byNamespace.delete(namespace);
    this.onChange(key, undefined, before);
  }

  /** A list is complete with these keys: every other pod is gone. */
  keepOnly(keys: ReadonlySet<string>): void {
    const gone: string[] = [];
    for (const [namespace, pods] of this.byNamespace)
      for (const name of pods.keys()) if (!keys.has(`${namespace}/${name}`)) gone.push(`${namespace}/${name}`);
    for (const key of gone) this.forget(key);
  }

  /**
   * Judges again what the pods of a namespace hold against others, from what their records kept,
   * after it opted in or out; every namespace's when undefined (netpin's webhooks changed). Costs the
   * pods judged, with no call to the API server; tells only of records whose judgment changed.
   */
  reconsider(namespace?: string): number {
    let changed = 0;
    const namespaces = namespace === undefined ? [...this.byNamespace.keys()] : [namespace];
    for (const ns of namespaces) {
      const pods = this.byNamespace.get(ns);
      if (!pods) continue;
      const optedIn = this.optedIn(ns);
      for (const [name, before] of pods) {
        const record = judged(before, optedIn);
        if (record === before || sameList(inUse(before), inUse(record))) continue;
        pods.set(name, record);
        changed++;
        this.onChange(`${ns}/${name}`, record, before);
      }
    }
    return changed;
  }
}

/**
 * Every pod of the cluster, reduced to a PodRecord: a list, then a watch from its
 * resourceVersion, listed again when the watch falls too far behind (410 Gone). Full pod
 * objects are not kept, so that a cluster of tens of thousands of pods costs a few MB.
 */
export class PodTracker extends PodRecords {
  private readonly reflector: Reflector<V1Pod>;

  constructor(
    kc: KubeConfig,
    addressKeys: readonly string[],
    optedIn: (namespace: string) => boolean,
    onChange: PodChange,
    log?: Logger,
    retryMs = 1_000,
  ) {
    super(addressKeys, optedIn, onChange);
    const core = kc.makeApiClient(CoreV1Api);
    this.reflector = new Reflector<V1Pod>(
      kc,
      {
        what: 'pods',
        path: '/api/v1/pods',
        list: podPages(core),
        key: podKey,
        seen: (pod) => this.seen(pod),
        deleted: (pod) => this.forget(podKey(pod)),
        listed: (keys) => this.keepOnly(keys),
      },
      log,
      retryMs,
    );
  }

  /** See Reflector.complete. */
  get complete(): boolean {
    return this.reflector.complete;
  }

  /** Resolves once the first list is in. */
  start(): Promise<void> {
    return this.reflector.start();
  }

  stop(): Promise<void> {
    return this.reflector.stop();
  }
}
