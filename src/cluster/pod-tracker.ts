import { CoreV1Api, Watch, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { ALLOCATED_KEY, EGRESS_ALLOCATED_KEY } from '../intent/keys.js';
import { parseAddress } from '../net/address.js';
import { describeApiError } from './kube.js';

/** What netpin keeps of a pod: who it is, and every address it uses or asked for. */
export interface PodRecord {
  namespace: string;
  name: string;
  uid: string;
  addresses: string[];
  /** The egress addresses netpin gave it (netpin.io/egress-allocated), while it is live. */
  egress: string[];
}

/** A pod whose containers have all ended has given its addresses back: the runtime tore its sandbox down. */
export function isLive(pod: V1Pod): boolean {
  const phase = pod.status?.phase;
  return phase !== 'Succeeded' && phase !== 'Failed';
}

/**
 * Every address a live pod uses or asked for, whoever wrote it: netpin.io/allocated, the CNI's
 * address annotations (`addressKeys`, in any of their syntaxes), and status.podIPs. None of these
 * alone decides: any one of them keeps the address held.
 */
export function podAddresses(pod: V1Pod, addressKeys: readonly string[]): string[] {
  if (!isLive(pod)) return [];
  const out = new Set<string>();
  const annotations = pod.metadata?.annotations ?? {};
  for (const key of [ALLOCATED_KEY, ...addressKeys]) for (const a of addressesIn(annotations[key])) out.add(a);
  for (const { ip } of pod.status?.podIPs ?? []) {
    const a = parseAddress(ip);
    if (a) out.add(a.toString());
  }
  return [...out];
}

/** The egress addresses netpin gave a live pod. */
function podEgress(pod: V1Pod): string[] {
  return isLive(pod) ? addressesIn(pod.metadata?.annotations?.[EGRESS_ALLOCATED_KEY]) : [];
}

/** Every address in an annotation value: "10.0.0.5,fd00::5" and Calico's JSON array alike. */
function addressesIn(value: string | undefined): string[] {
  const out: string[] = [];
  for (const token of (value ?? '').split(/[\s,;"[\]]+/)) {
    const a = token && parseAddress(token);
    if (a) out.push(a.toString());
  }
  return out;
}

/** A pod as netpin keeps it. */
export function podRecord(pod: V1Pod, addressKeys: readonly string[]): PodRecord {
  return {
    namespace: pod.metadata?.namespace ?? '',
    name: pod.metadata?.name ?? '',
    uid: pod.metadata?.uid ?? '',
    addresses: podAddresses(pod, addressKeys),
    egress: podEgress(pod),
  };
}

const PAGE = 500;

/**
 * Every pod of the cluster, reduced to a PodRecord: a list, then a watch from its
 * resourceVersion, listed again when the watch falls too far behind (410 Gone). Full pod
 * objects are not kept, so that a cluster of tens of thousands of pods costs a few MB.
 */
export class PodTracker {
  private readonly pods = new Map<string, PodRecord>();
  private readonly core: CoreV1Api;
  private readonly watch: Watch;
  private resourceVersion = '';
  private stopped = false;
  private abort: AbortController | undefined;
  private loop: Promise<void> | undefined;

  constructor(
    kc: KubeConfig,
    private readonly addressKeys: readonly string[],
    /** Told of every change, with the record after it (undefined: the pod is gone). */
    private readonly onChange: (key: string, record: PodRecord | undefined) => void,
    private readonly log?: Logger,
    private readonly retryMs = 1_000,
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.watch = new Watch(kc);
  }

  /** Resolves once the first list is in. */
  start(): Promise<void> {
    let synced!: () => void;
    const first = new Promise<void>((r) => (synced = r));
    this.loop = this.run(synced);
    return first;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.abort();
    await this.loop;
  }

  get(namespace: string, name: string): PodRecord | undefined {
    return this.pods.get(`${namespace}/${name}`);
  }

  values(): IterableIterator<PodRecord> {
    return this.pods.values();
  }

  private async run(synced: () => void): Promise<void> {
    while (!this.stopped) {
      try {
        if (this.resourceVersion === '') {
          await this.relist();
          synced();
        }
        await this.watchOnce();
      } catch (e) {
        if (this.stopped) break;
        // List again rather than trust a resourceVersion the server may have compacted away.
        this.resourceVersion = '';
        this.log?.warn({ watch: 'pods', err: describeApiError(e) }, 'pod watch failed; listing again');
        await new Promise((r) => setTimeout(r, this.retryMs));
      }
    }
  }

  private async relist(): Promise<void> {
    const seen = new Set<string>();
    let next: string | undefined;
    let version = '';
    do {
      const page = await this.core.listPodForAllNamespaces({ limit: PAGE, _continue: next });
      for (const pod of page.items) seen.add(this.apply(pod));
      next = page.metadata?._continue || undefined;
      version = page.metadata?.resourceVersion ?? version;
    } while (next);
    for (const key of [...this.pods.keys()].filter((k) => !seen.has(k))) this.forget(key);
    this.resourceVersion = version;
  }

  private watchOnce(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const params = { resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 300 };
      this.watch
        .watch(
          '/api/v1/pods',
          params,
          (type: string, obj: V1Pod & { code?: number }) => {
            if (type === 'ERROR') {
              // 410 Gone, or any other: the loop lists again.
              this.abort?.abort();
              reject(new Error(`pod watch: ${JSON.stringify(obj)}`));
              return;
            }
            if (type === 'ADDED' || type === 'MODIFIED') this.apply(obj);
            else if (type === 'DELETED') this.forget(`${obj.metadata?.namespace}/${obj.metadata?.name}`);
            this.resourceVersion = obj.metadata?.resourceVersion ?? this.resourceVersion;
          },
          (err: unknown) => (err && !this.stopped ? reject(err) : resolve()),
        )
        .then((abort) => (this.abort = abort), reject);
    });
  }

  private apply(pod: V1Pod): string {
    const key = `${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`;
    const record = podRecord(pod, this.addressKeys);
    const before = this.pods.get(key);
    this.pods.set(key, record);
    if (
      !before ||
      before.uid !== record.uid ||
      before.addresses.join() !== record.addresses.join() ||
      before.egress.join() !== record.egress.join()
    )
      this.onChange(key, record);
    return key;
  }

  private forget(key: string): void {
    if (this.pods.delete(key)) this.onChange(key, undefined);
  }
}
