import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type V1Namespace,
  type V1StatefulSet,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { describeApiError, OFF_ADMISSION, statusOf, WITHIN_ADMISSION } from './kube.js';
import { PodTracker, type PodRecord } from './pod-tracker.js';
import { Informer } from './reflector.js';
import { workloadInfo, type ClusterView, type WorkloadInfo, type WorkloadSpec } from './view.js';

/** Namespaces and StatefulSets per list call: a cluster has few of either. */
const PAGE = 500;

/**
 * The cluster as watches see it: namespace labels for pool selectors,
 * StatefulSets for ordinals, and every pod (reduced to its addresses) for
 * the reconciler and for addresses in use that netpin did not give.
 */
export class KubeClusterView implements ClusterView {
  readonly namespaces: Informer<V1Namespace>;
  readonly statefulSets: Informer<V1StatefulSet>;
  readonly pods: PodTracker;
  private readonly apps: AppsV1Api;
  private readonly custom: CustomObjectsApi;

  constructor(
    kc: KubeConfig,
    addressKeys: readonly string[],
    on: {
      pod: (key: string, record: PodRecord | undefined, before: PodRecord | undefined) => void;
      /** A StatefulSet seen for the first time. */
      statefulSet?: (sts: V1StatefulSet) => void;
    },
    log?: Logger,
  ) {
    const core = kc.makeApiClient(CoreV1Api);
    this.apps = kc.makeApiClient(AppsV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.namespaces = new Informer<V1Namespace>(
      kc,
      'namespaces',
      '/api/v1/namespaces',
      async (next) => {
        const page = await core.listNamespace({ limit: PAGE, _continue: next }, OFF_ADMISSION);
        return {
          items: page.items,
          continue: page.metadata?._continue,
          resourceVersion: page.metadata?.resourceVersion,
        };
      },
      {},
      log,
    );
    this.statefulSets = new Informer<V1StatefulSet>(
      kc,
      'statefulsets',
      '/apis/apps/v1/statefulsets',
      async (next) => {
        const page = await this.apps.listStatefulSetForAllNamespaces({ limit: PAGE, _continue: next }, OFF_ADMISSION);
        return {
          items: page.items,
          continue: page.metadata?._continue,
          resourceVersion: page.metadata?.resourceVersion,
        };
      },
      { changed: (sts, before) => (before ? undefined : on.statefulSet?.(sts)) },
      log,
    );
    this.pods = new PodTracker(kc, addressKeys, on.pod, log);
  }

  async start(): Promise<void> {
    await Promise.all([this.namespaces.start(), this.statefulSets.start(), this.pods.start()]);
  }

  async stop(): Promise<void> {
    await Promise.all([this.namespaces.stop(), this.statefulSets.stop(), this.pods.stop()]);
  }

  /** Whether namespaces, StatefulSets and pods have each completed their latest list (Reflector.complete). */
  complete(): boolean {
    return this.namespaces.complete && this.statefulSets.complete && this.pods.complete;
  }

  statefulSetExists(namespace: string, name: string): boolean {
    return this.statefulSets.get(name, namespace) !== undefined;
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
