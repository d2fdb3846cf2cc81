// The pods of one round: the workloads that make them, and their count as the watch reports them.
import { Watch, type V1Pod, type V1PodTemplateSpec } from '@kubernetes/client-node';
import type * as k from '../../harness/cluster.js';
import { deploymentPod } from '../review.js';
import { ROUND_LABEL } from './types.js';

/** Counts the pods of one round as the API server's watch reports them, from before the first create. */
export class PodCounter {
  readonly names = new Set<string>();
  withoutIp = 0;
  private abort: AbortController | undefined;
  private stopped = false;
  private done: () => void = () => undefined;
  readonly complete: Promise<number>;

  constructor(
    private readonly c: k.Clients,
    private readonly tag: string,
    private readonly expected: number,
    private readonly needsIp: boolean,
  ) {
    this.complete = new Promise<number>((resolve) => (this.done = () => resolve(performance.now())));
  }

  async start(): Promise<void> {
    const list = await this.c.core.listPodForAllNamespaces({ labelSelector: `${ROUND_LABEL}=${this.tag}` });
    await this.watchFrom(list.metadata?.resourceVersion ?? '');
  }

  private async watchFrom(resourceVersion: string): Promise<void> {
    let last = resourceVersion;
    this.abort = await new Watch(this.c.kc).watch(
      '/api/v1/pods',
      { labelSelector: `${ROUND_LABEL}=${this.tag}`, resourceVersion, allowWatchBookmarks: true },
      (type: string, pod: V1Pod) => {
        last = pod.metadata?.resourceVersion ?? last;
        if (type !== 'ADDED') return;
        const name = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
        if (this.names.has(name)) return;
        this.names.add(name);
        if (this.needsIp && !pod.metadata?.annotations?.['cni.projectcalico.org/ipAddrs']) this.withoutIp++;
        if (this.names.size === this.expected) this.done();
      },
      () => {
        // The API server ends watches now and then: carry on from the last event seen.
        if (!this.stopped && this.names.size < this.expected) setTimeout(() => void this.watchFrom(last), 100);
      },
    );
  }

  /** When the last pod was seen; fails after `timeoutMs`. Stops the watch either way. */
  async completeWithin(timeoutMs: number, what: string): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${what}: ${this.names.size} of ${this.expected} pods after ${timeoutMs / 1000} s`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.complete, late]);
    } finally {
      clearTimeout(timer);
      this.stop();
    }
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }
}

/** The pod of the admission benchmark (a few KB, as real pods are), drawing from `pool`. */
export function podTemplate(tag: string, app: string, pool: string | undefined): V1PodTemplateSpec {
  const spec = deploymentPod({}).spec as V1PodTemplateSpec['spec'];
  return {
    metadata: { labels: { app, [ROUND_LABEL]: tag }, annotations: pool ? { 'netpin.io/pool': pool } : {} },
    spec: { ...spec!, terminationGracePeriodSeconds: 0 },
  };
}
