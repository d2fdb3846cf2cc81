import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { ALLOCATED_KEY, EGRESS_ALLOCATED_KEY } from '../intent/keys.js';
import { parseAddress } from '../net/address.js';
import { OFF_ADMISSION } from './kube.js';
import { Reflector, type PagedList } from './reflector.js';

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

/**
 * Every pod of the cluster, reduced to a PodRecord: a list, then a watch from its
 * resourceVersion, listed again when the watch falls too far behind (410 Gone). Full pod
 * objects are not kept, so that a cluster of tens of thousands of pods costs a few MB.
 */
export class PodTracker {
  private readonly pods = new Map<string, PodRecord>();
  private readonly reflector: Reflector<V1Pod>;

  constructor(
    kc: KubeConfig,
    private readonly addressKeys: readonly string[],
    /** Told of every change, with the record after it (undefined: the pod is gone) and the one before. */
    private readonly onChange: (key: string, record: PodRecord | undefined, before: PodRecord | undefined) => void,
    log?: Logger,
    retryMs = 1_000,
  ) {
    const core = kc.makeApiClient(CoreV1Api);
    this.reflector = new Reflector<V1Pod>(
      kc,
      {
        what: 'pods',
        path: '/api/v1/pods',
        list: podPages(core),
        key: podKey,
        seen: (pod) => this.apply(pod),
        deleted: (pod) => this.forget(podKey(pod)),
        listed: (keys) => {
          for (const key of [...this.pods.keys()].filter((k) => !keys.has(k))) this.forget(key);
        },
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

  get(namespace: string, name: string): PodRecord | undefined {
    return this.pods.get(`${namespace}/${name}`);
  }

  values(): IterableIterator<PodRecord> {
    return this.pods.values();
  }

  private apply(pod: V1Pod): void {
    const key = podKey(pod);
    const record = podRecord(pod, this.addressKeys);
    const before = this.pods.get(key);
    this.pods.set(key, record);
    if (
      !before ||
      before.uid !== record.uid ||
      before.addresses.join() !== record.addresses.join() ||
      before.egress.join() !== record.egress.join()
    )
      this.onChange(key, record, before);
  }

  private forget(key: string): void {
    const before = this.pods.get(key);
    if (before && this.pods.delete(key)) this.onChange(key, undefined, before);
  }
}
