import type { NamespaceDefaults } from '../intent/defaults.js';

/** What admission needs to know of a Deployment or StatefulSet that a request does not carry. */
export interface WorkloadInfo {
  replicas: number;
  /** spec.ordinals.start of a StatefulSet; 0 otherwise. */
  ordinalsStart: number;
  /** The pod template's annotations: a scale request carries no template, yet may need the intent. */
  templateAnnotations?: Record<string, string>;
  /** spec.strategy.rollingUpdate.maxSurge of a Deployment that rolls; undefined when no pod is added above replicas. */
  maxSurge?: number | string;
  /** spec.template.spec.hostNetwork: its pods use the node's addresses, so no namespace default applies. */
  hostNetwork?: boolean;
}

export type WorkloadKind = 'Deployment' | 'StatefulSet';

/** The parts of an apps/v1 Deployment or StatefulSet spec that WorkloadInfo reads; the API server has defaulted them. */
export interface WorkloadSpec {
  replicas?: number;
  ordinals?: { start?: number };
  strategy?: { type?: string; rollingUpdate?: { maxSurge?: number | string } };
  template?: { metadata?: { annotations?: Record<string, string> }; spec?: { hostNetwork?: boolean } };
}

export function workloadInfo(kind: WorkloadKind, spec: WorkloadSpec | undefined): WorkloadInfo {
  const s = spec ?? {};
  // Unset fields read as the API server defaults them: 1 replica, RollingUpdate with maxSurge 25%.
  const rolls = kind === 'Deployment' && s.strategy?.type !== 'Recreate';
  return {
    replicas: typeof s.replicas === 'number' ? s.replicas : 1,
    ordinalsStart: kind === 'StatefulSet' && typeof s.ordinals?.start === 'number' ? s.ordinals.start : 0,
    templateAnnotations: s.template?.metadata?.annotations,
    ...(rolls && { maxSurge: s.strategy?.rollingUpdate?.maxSurge ?? '25%' }),
    ...(s.template?.spec?.hostNetwork === true && { hostNetwork: true }),
  };
}

export interface ClusterView {
  /** Labels of a namespace; `kubernetes.io/metadata.name` is always present, as the API server sets it. */
  namespaceLabels(namespace: string): Record<string, string>;
  /** The namespace's default address sources (its netpin.io/pool and netpin.io/egress-pool annotations). */
  namespaceDefaults(namespace: string): NamespaceDefaults;
  statefulSet(namespace: string, name: string): WorkloadInfo | undefined;
  /** Read when a Deployment is scaled through its subresource, which is rare: no watch is kept. */
  deployment(namespace: string, name: string): Promise<WorkloadInfo | undefined>;
  /** Objects of a CNI's own resource, cluster-wide; a string says why they cannot be read. */
  nativeObjects(resource: { group: string; version: string; plural: string }): Promise<readonly unknown[] | string>;
  /**
   * Whether StatefulSet `name` of this uid is live. Views fed by the API server implement it; the
   * memory ledger's, which knows only the reviews it saw and never a uid, cannot tell.
   */
  isLiveStatefulSet?(namespace: string, name: string, uid: string): Promise<boolean>;
  /** Likewise for a DaemonSet, whose pods take their node's reserved address. */
  isLiveDaemonSet?(namespace: string, name: string, uid: string): Promise<boolean>;
  /** Learns of a workload from its review; views fed by the API server need not implement it. */
  rememberWorkload?(kind: WorkloadKind, namespace: string, name: string, info: WorkloadInfo | undefined): void;
}

/**
 * A cluster known only from a file and from the reviews netpin has seen: what
 * `--ledger memory` runs with when there is no API server to ask.
 */
export class StaticClusterView implements ClusterView {
  private readonly namespaces = new Map<string, Record<string, string>>();
  private readonly defaults = new Map<string, NamespaceDefaults>();
  private readonly workloads = new Map<string, WorkloadInfo>();

  setNamespace(name: string, labels: Record<string, string>, defaults: NamespaceDefaults = {}): void {
    this.namespaces.set(name, labels);
    this.defaults.set(name, defaults);
  }

  namespaceLabels(namespace: string): Record<string, string> {
    return { ...this.namespaces.get(namespace), 'kubernetes.io/metadata.name': namespace };
  }

  namespaceDefaults(namespace: string): NamespaceDefaults {
    return this.defaults.get(namespace) ?? {};
  }

  statefulSet(namespace: string, name: string): WorkloadInfo | undefined {
    return this.workloads.get(`StatefulSet/${namespace}/${name}`);
  }

  async deployment(namespace: string, name: string): Promise<WorkloadInfo | undefined> {
    return this.workloads.get(`Deployment/${namespace}/${name}`);
  }

  rememberWorkload(kind: WorkloadKind, namespace: string, name: string, info: WorkloadInfo | undefined): void {
    if (info) this.workloads.set(`${kind}/${namespace}/${name}`, info);
    else this.workloads.delete(`${kind}/${namespace}/${name}`);
  }

  async nativeObjects(): Promise<string> {
    return 'netpin runs without a cluster (--ledger memory)';
  }
}
