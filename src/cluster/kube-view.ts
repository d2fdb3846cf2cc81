import { AppsV1Api, CoreV1Api, ListWatch, Watch, type KubeConfig, type KubernetesObject, type V1Namespace, type V1Pod, type V1StatefulSet } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { PINNED_LABEL } from '../intent/keys.js';
import { keepWatching, type Watched } from './kube.js';
import type { ClusterView, StatefulSetInfo } from './view.js';

/**
 * The cluster as watches see it: namespace labels for pool selectors,
 * StatefulSets for ordinals, and the pods netpin pinned (labelled, so the
 * watch stays small in a large cluster) for the reconciler.
 */
export class KubeClusterView implements ClusterView {
  readonly namespaces: ListWatch<V1Namespace>;
  readonly statefulSets: ListWatch<V1StatefulSet>;
  readonly pinnedPods: ListWatch<V1Pod>;
  private watches: Watched[] = [];

  constructor(kc: KubeConfig, private readonly log?: Logger) {
    const watch = new Watch(kc);
    const core = kc.makeApiClient(CoreV1Api);
    const apps = kc.makeApiClient(AppsV1Api);
    this.namespaces = new ListWatch('/api/v1/namespaces', watch, () => core.listNamespace(), false);
    this.statefulSets = new ListWatch('/apis/apps/v1/statefulsets', watch, () => apps.listStatefulSetForAllNamespaces(), false);
    this.pinnedPods = new ListWatch(
      '/api/v1/pods',
      watch,
      () => core.listPodForAllNamespaces({ labelSelector: `${PINNED_LABEL}=true` }),
      false,
      `${PINNED_LABEL}=true`,
    );
  }

  async start(): Promise<void> {
    const all = [[this.namespaces, 'namespaces'], [this.statefulSets, 'statefulsets'], [this.pinnedPods, 'pods']] as const;
    this.watches = all.map(([w, what]) => keepWatching(w as unknown as ListWatch<KubernetesObject>, what, this.log));
    await Promise.all(this.watches.map((w) => w.synced));
  }

  async stop(): Promise<void> {
    for (const w of this.watches) await w.stop();
  }

  namespaceLabels(namespace: string): Record<string, string> {
    return { ...this.namespaces.get(namespace)?.metadata?.labels, 'kubernetes.io/metadata.name': namespace };
  }

  statefulSet(namespace: string, name: string): StatefulSetInfo | undefined {
    const sts = this.statefulSets.get(name, namespace);
    if (!sts) return undefined;
    return {
      replicas: sts.spec?.replicas ?? 1,
      ordinalsStart: sts.spec?.ordinals?.start ?? 0,
      templateAnnotations: sts.spec?.template?.metadata?.annotations,
    };
  }
}

