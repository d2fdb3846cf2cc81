/** What admission needs to know of the cluster beyond the object under review. */
export interface StatefulSetInfo {
  replicas: number;
  ordinalsStart: number;
  /** The pod template's annotations: a scale request carries no template, yet may need the intent. */
  templateAnnotations?: Record<string, string>;
}

export interface ClusterView {
  /** Labels of a namespace; `kubernetes.io/metadata.name` is always present, as the API server sets it. */
  namespaceLabels(namespace: string): Record<string, string>;
  statefulSet(namespace: string, name: string): StatefulSetInfo | undefined;
  /** Learns of a StatefulSet from its review; views fed by a watch need not implement it. */
  rememberStatefulSet?(namespace: string, name: string, info: StatefulSetInfo | undefined): void;
}

/**
 * A cluster known only from a file and from the reviews netpin has seen: what
 * `--ledger memory` runs with when there is no API server to ask.
 */
export class StaticClusterView implements ClusterView {
  private readonly namespaces = new Map<string, Record<string, string>>();
  private readonly statefulSets = new Map<string, StatefulSetInfo>();

  setNamespace(name: string, labels: Record<string, string>): void {
    this.namespaces.set(name, labels);
  }

  namespaceLabels(namespace: string): Record<string, string> {
    return { ...this.namespaces.get(namespace), 'kubernetes.io/metadata.name': namespace };
  }

  statefulSet(namespace: string, name: string): StatefulSetInfo | undefined {
    return this.statefulSets.get(`${namespace}/${name}`);
  }

  rememberStatefulSet(namespace: string, name: string, info: StatefulSetInfo | undefined): void {
    if (info) this.statefulSets.set(`${namespace}/${name}`, info);
    else this.statefulSets.delete(`${namespace}/${name}`);
  }
}
