import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  ListWatch,
  Watch,
  type KubeConfig,
  type KubernetesObject,
  type V1Namespace,
  type V1StatefulSet,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { describeApiError, keepWatching, statusOf, WITHIN_ADMISSION, type Watched } from './kube.js';
import { PodTracker, type PodRecord } from './pod-tracker.js';
import { workloadInfo, type ClusterView, type WorkloadInfo, type WorkloadSpec } from './view.js';

/**
 * The cluster as watches see it: namespace labels for pool selectors,
 * StatefulSets for ordinals, and every pod (reduced to its addresses) for
 * the reconciler and for addresses in use that netpin did not give.
 */
export class KubeClusterView implements ClusterView {
  readonly namespaces: ListWatch<V1Namespace>;
  readonly statefulSets: ListWatch<V1StatefulSet>;
  readonly pods: PodTracker;
  private readonly apps: AppsV1Api;
  private readonly custom: CustomObjectsApi;
  private watches: Watched[] = [];

  constructor(
    kc: KubeConfig,
    addressKeys: readonly string[],
    onPod: (key: string, record: PodRecord | undefined) => void,
    private readonly log?: Logger,
  ) {
    const watch = new Watch(kc);
    const core = kc.makeApiClient(CoreV1Api);
    this.apps = kc.makeApiClient(AppsV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.namespaces = new ListWatch('/api/v1/namespaces', watch, () => core.listNamespace(), false);
    this.statefulSets = new ListWatch(
      '/apis/apps/v1/statefulsets',
      watch,
      () => this.apps.listStatefulSetForAllNamespaces(),
      false,
    );
    this.pods = new PodTracker(kc, addressKeys, onPod, log);
  }

  async start(): Promise<void> {
    const all = [
      [this.namespaces, 'namespaces'],
      [this.statefulSets, 'statefulsets'],
    ] as const;
    this.watches = all.map(([w, what]) => keepWatching(w as unknown as ListWatch<KubernetesObject>, what, this.log));
    await Promise.all([...this.watches.map((w) => w.synced), this.pods.start()]);
  }

  async stop(): Promise<void> {
    for (const w of this.watches) await w.stop();
    await this.pods.stop();
  }

  namespaceLabels(namespace: string): Record<string, string> {
    return { ...this.namespaces.get(namespace)?.metadata?.labels, 'kubernetes.io/metadata.name': namespace };
  }

  statefulSet(namespace: string, name: string): WorkloadInfo | undefined {
    const sts = this.statefulSets.get(name, namespace);
    return sts && workloadInfo('StatefulSet', sts.spec as WorkloadSpec);
  }

  async deployment(namespace: string, name: string): Promise<WorkloadInfo | undefined> {
    try {
      const d = await this.apps.readNamespacedDeployment({ name, namespace }, WITHIN_ADMISSION);
      return workloadInfo('Deployment', d.spec as WorkloadSpec);
    } catch (e) {
      if (statusOf(e) === 404) return undefined;
      throw new Error(`reading Deployment ${namespace}/${name}: ${describeApiError(e)}`, { cause: e });
    }
  }

  /** Read when an IPPool is admitted, which is rare: no watch is kept. */
  async nativeObjects(r: { group: string; version: string; plural: string }): Promise<readonly unknown[] | string> {
    try {
      const list = (await this.custom.listClusterCustomObject(r, WITHIN_ADMISSION)) as { items?: unknown[] };
      return list.items ?? [];
    } catch (e) {
      if (statusOf(e) === 404) return `the cluster serves no ${r.plural}.${r.group}`;
      return `reading ${r.plural}.${r.group}: ${describeApiError(e)}`;
    }
  }
}
