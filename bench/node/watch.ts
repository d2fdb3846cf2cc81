// The pods of one run as the API server's watch reports them: when each was first seen, seen Running
// and seen gone, and the address it shows.
import { Watch, type V1Pod } from '@kubernetes/client-node';
import type * as k from '../../harness/cluster.js';

export interface SeenPod {
  name: string;
  /** performance.now() of the first event that showed it */
  firstSeen: number;
  running?: number;
  gone?: number;
  terminating: boolean;
  ip?: string;
  /** netpin.io/allocated, first address */
  allocated?: string;
}

export class PodWatch {
  readonly pods = new Map<string, SeenPod>();
  private abort: AbortController | undefined;
  private stopped = false;

  constructor(
    private readonly c: k.Clients,
    private readonly namespace: string,
  ) {}

  async start(): Promise<void> {
    const list = await this.c.core.listNamespacedPod({ namespace: this.namespace });
    for (const p of list.items) this.seen('ADDED', p);
    await this.watchFrom(list.metadata?.resourceVersion ?? '');
  }

  private seen(type: string, pod: V1Pod): void {
    const uid = pod.metadata?.uid;
    if (!uid) return;
    const now = performance.now();
    let p = this.pods.get(uid);
    if (!p) {
      p = { name: pod.metadata?.name ?? '', firstSeen: now, terminating: false };
      this.pods.set(uid, p);
    }
    if (type === 'DELETED') {
      p.gone ??= now;
      return;
    }
    p.terminating = Boolean(pod.metadata?.deletionTimestamp);
    p.ip = pod.status?.podIP ?? p.ip;
    p.allocated = pod.metadata?.annotations?.['netpin.io/allocated']?.split(',')[0];
    if (pod.status?.phase === 'Running') p.running ??= now;
  }

  private async watchFrom(resourceVersion: string): Promise<void> {
    let last = resourceVersion;
    this.abort = await new Watch(this.c.kc).watch(
      `/api/v1/namespaces/${this.namespace}/pods`,
      { resourceVersion, allowWatchBookmarks: true },
      (type: string, pod: V1Pod) => {
        last = pod.metadata?.resourceVersion ?? last;
        if (type !== 'BOOKMARK') this.seen(type, pod);
      },
      () => {
        // The API server ends watches now and then: carry on from the last event seen.
        if (!this.stopped) setTimeout(() => void this.watchFrom(last), 100);
      },
    );
  }

  /** Pods that exist (not seen deleted). */
  live(): SeenPod[] {
    return [...this.pods.values()].filter((p) => p.gone === undefined);
  }

  /** Addresses that two existing pods show. */
  duplicates(): number {
    const ips = this.live()
      .map((p) => p.ip)
      .filter((ip): ip is string => ip !== undefined);
    return ips.length - new Set(ips).size;
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }
}

/** Nearest-rank percentile of unsorted values. */
export function percentile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}
