import {
  AdmissionregistrationV1Api,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type V1DaemonSet,
  type V1MutatingWebhookConfiguration,
  type V1Namespace,
  type V1Node,
  type V1StatefulSet,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { namespaceDefaults, type NamespaceDefaults } from '../intent/defaults.js';
import { matchesSelector, type LabelSelector } from '../ipam/selector.js';
import { describeApiError, OFF_ADMISSION, statusOf, WITHIN_ADMISSION } from './kube.js';
import { PodTracker, type PodChange } from './pod-tracker.js';
import { Reflector, withoutManagedFields, type PagedList } from './reflector.js';
import { workloadInfo, type ClusterView, type WorkloadInfo, type WorkloadSpec } from './view.js';

/** Namespaces and StatefulSets per list call: a cluster has few of either. */
const PAGE = 500;

/** The name of netpin's mutating webhook in the chart (templates/webhooks.yaml). */
export const MUTATING_WEBHOOK = 'mutate.netpin.io';

/**
 * How long a failed list or watch of the webhook configurations waits before the next: they change
 * rarely, and a chart whose RBAC predates this read would otherwise log a refusal every second.
 */
const WEBHOOKS_RETRY_MS = 30_000;

/** Labels of a namespace as a namespaceSelector sees them: the API server always sets kubernetes.io/metadata.name. */
export function namespaceLabels(ns: V1Namespace): Record<string, string> {
  return { ...ns.metadata?.labels, 'kubernetes.io/metadata.name': ns.metadata?.name ?? '' };
}

/**
 * The namespaces whose pods netpin admits: those the namespaceSelector of netpin's mutating webhook
 * selects, read from the MutatingWebhookConfigurations themselves, so that the chart's
 * webhook.optInLabel, its excluded namespaces and any hand edit are followed without a flag. There,
 * netpin.io/allocated and the CNI's annotations of a pod were written or checked by netpin. Until
 * the configurations are read, or when none has the webhook, no namespace counts as opted in: what
 * netpin cannot confirm it does not trust, and its own pods stay held by their claims.
 */
export class OptIn {
  private selectors: LabelSelector[] = [];

  constructor(
    /** The labels of a namespace seen by the watch; undefined for one not seen (yet). */
    private readonly labelsOf: (namespace: string) => Record<string, string> | undefined,
    /** A namespace's pods must be judged again (every namespace's: undefined). */
    private readonly reconsider: (namespace?: string) => void,
  ) {}

  has(namespace: string): boolean {
    const labels = this.labelsOf(namespace);
    return labels !== undefined && this.selects(labels);
  }

  private selects(labels: Record<string, string>): boolean {
    return this.selectors.some((s) => matchesSelector(s, labels));
  }

  /** A namespace added, changed (`before`: its state before) or deleted (`after` undefined). */
  namespaceChanged(after: V1Namespace | undefined, before: V1Namespace | undefined): void {
    const was = before !== undefined && this.selects(namespaceLabels(before));
    const is = after !== undefined && this.selects(namespaceLabels(after));
    if (was !== is) this.reconsider(after?.metadata?.name ?? before?.metadata?.name ?? '');
  }

  /**
   * The webhook configurations as they are now. netpin's webhook opts nothing in where it does not
   * see every pod of the namespace: with an objectSelector or matchConditions it skips some, which a
   * namespace cannot tell; with failurePolicy Ignore the API server admits pods unchecked while netpin
   * does not answer, and a tenant could write netpin.io/allocated then.
   */
  webhooksChanged(configs: Iterable<V1MutatingWebhookConfiguration>): void {
    const selectors: LabelSelector[] = [];
    for (const config of configs)
      for (const hook of config.webhooks ?? []) {
        if (
          hook.name !== MUTATING_WEBHOOK ||
          hook.failurePolicy === 'Ignore' ||
          (hook.matchConditions ?? []).length > 0 ||
          !isEmpty(hook.objectSelector as LabelSelector | undefined)
        )
          continue;
        selectors.push((hook.namespaceSelector ?? {}) as LabelSelector);
      }
    if (JSON.stringify(selectors) === JSON.stringify(this.selectors)) return;
    this.selectors = selectors;
    this.reconsider();
  }
}

function isEmpty(selector: LabelSelector | undefined): boolean {
  return (
    !selector ||
    (Object.keys(selector.matchLabels ?? {}).length === 0 && (selector.matchExpressions ?? []).length === 0)
  );
}

/**
 * The cluster as watches see it: namespace labels for pool selectors and annotations for default pools,
 * StatefulSets for ordinals, and every pod (reduced to its addresses) for
 * the reconciler and for addresses in use that netpin did not give.
 */
export class KubeClusterView implements ClusterView {
  readonly namespaces: Reflector<V1Namespace>;
  readonly statefulSets: Reflector<V1StatefulSet>;
  /** DaemonSets and Nodes: a DaemonSet's reservation for a node lasts while both exist. */
  readonly daemonSets: Reflector<V1DaemonSet, Named>;
  readonly nodes: Reflector<V1Node, Named>;
  /** The MutatingWebhookConfigurations, for the namespaceSelector of netpin's (OptIn). */
  readonly webhooks: Reflector<V1MutatingWebhookConfiguration>;
  readonly optIn: OptIn;
  readonly pods: PodTracker;
  private readonly apps: AppsV1Api;
  private readonly custom: CustomObjectsApi;

  constructor(
    kc: KubeConfig,
    addressKeys: readonly string[],
    on: {
      pod: PodChange;
      /** A StatefulSet seen for the first time. */
      statefulSet?: (sts: V1StatefulSet) => void;
    },
    log?: Logger,
  ) {
    const core = kc.makeApiClient(CoreV1Api);
    const admission = kc.makeApiClient(AdmissionregistrationV1Api);
    this.apps = kc.makeApiClient(AppsV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    const kept = { store: true, transform: withoutManagedFields };
    this.namespaces = new Reflector<V1Namespace>(
      kc,
      {
        what: 'namespaces',
        path: '/api/v1/namespaces',
        list: listed((next) => core.listNamespace({ limit: PAGE, _continue: next }, OFF_ADMISSION)),
        ...kept,
        seen: (ns, _how, before) => this.optIn.namespaceChanged(ns, before),
        deleted: (ns) => this.optIn.namespaceChanged(undefined, ns),
      },
      log,
    );
    const webhooksChanged = () => this.optIn.webhooksChanged(this.webhooks.values());
    this.webhooks = new Reflector<V1MutatingWebhookConfiguration>(
      kc,
      {
        what: 'mutatingwebhookconfigurations',
        path: '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations',
        list: listed((next) =>
          admission.listMutatingWebhookConfiguration({ limit: PAGE, _continue: next }, OFF_ADMISSION),
        ),
        ...kept,
        seen: webhooksChanged,
        deleted: webhooksChanged,
      },
      log,
      WEBHOOKS_RETRY_MS,
    );
    this.optIn = new OptIn(
      (name) => {
        const ns = this.namespaces.get(name);
        return ns && namespaceLabels(ns);
      },
      (namespace) => this.pods.reconsider(namespace),
    );
    this.statefulSets = new Reflector<V1StatefulSet>(
      kc,
      {
        what: 'statefulsets',
        path: '/apis/apps/v1/statefulsets',
        list: listed((next) =>
          this.apps.listStatefulSetForAllNamespaces({ limit: PAGE, _continue: next }, OFF_ADMISSION),
        ),
        ...kept,
        seen: (sts, _how, before) => (before ? undefined : on.statefulSet?.(sts)),
      },
      log,
    );
    ({ daemonSets: this.daemonSets, nodes: this.nodes } = namedWatches(kc, this.apps, core, log));
    this.pods = new PodTracker(kc, addressKeys, (namespace) => this.optIn.has(namespace), on.pod, log);
  }

  /**
   * Resolves once namespaces, StatefulSets and pods are listed. The webhook configurations are not
   * waited for: netpin may be forbidden to read them (then it trusts no namespace's own records).
   */
  async start(): Promise<void> {
    void this.webhooks.start();
    await Promise.all(
      [this.namespaces, this.statefulSets, this.daemonSets, this.nodes, this.pods].map((r) => r.start()),
    );
  }

  async stop(): Promise<void> {
    const all = [this.namespaces, this.statefulSets, this.daemonSets, this.nodes, this.pods, this.webhooks];
    await Promise.all(all.map((r) => r.stop()));
  }

  /** Whether namespaces, StatefulSets, DaemonSets, Nodes and pods have each completed their latest list (Reflector.complete). */
  complete(): boolean {
    const all = [this.namespaces, this.statefulSets, this.daemonSets, this.nodes, this.pods];
    return all.every((r) => r.complete);
  }

  /** Whether DaemonSet `name` and Node `node` both exist, by the watches. */
  daemonSetKeeps(namespace: string, name: string, node: string): boolean {
    return this.daemonSets.get(name, namespace) !== undefined && this.nodes.get(node, '') !== undefined;
  }

  statefulSetExists(namespace: string, name: string): boolean {
    return this.statefulSets.get(name, namespace) !== undefined;
  }

  namespaceLabels(namespace: string): Record<string, string> {
    return { ...this.namespaces.get(namespace)?.metadata?.labels, 'kubernetes.io/metadata.name': namespace };
  }

  namespaceDefaults(namespace: string): NamespaceDefaults {
    return namespaceDefaults(this.namespaces.get(namespace)?.metadata?.annotations);
  }

  /** Whether netpin's webhooks admit the pods of this namespace (OptIn). */
  optedIn(namespace: string): boolean {
    return this.optIn.has(namespace);
  }

  statefulSet(namespace: string, name: string): WorkloadInfo | undefined {
    const sts = this.statefulSets.get(name, namespace);
    return sts && workloadInfo('StatefulSet', sts.spec as WorkloadSpec);
  }

  /**
   * From the watch when it agrees; otherwise from the API server, since a StatefulSet just created, or
   * re-created under its name, may create its first pods before the watch brings it here.
   */
  async isLiveStatefulSet(namespace: string, name: string, uid: string): Promise<boolean> {
    if (this.statefulSets.get(name, namespace)?.metadata?.uid === uid) return true;
    try {
      const sts = await this.apps.readNamespacedStatefulSet({ name, namespace }, WITHIN_ADMISSION);
      return sts.metadata?.uid === uid;
    } catch (e) {
      if (statusOf(e) === 404) return false;
      throw new Error(`reading StatefulSet ${namespace}/${name}: ${describeApiError(e)}`, { cause: e });
    }
  }

  /** As isLiveStatefulSet: a DaemonSet just created may create its pods before the watch brings it. */
  async isLiveDaemonSet(namespace: string, name: string, uid: string): Promise<boolean> {
    if (this.daemonSets.get(name, namespace)?.metadata?.uid === uid) return true;
    try {
      const ds = await this.apps.readNamespacedDaemonSet({ name, namespace }, WITHIN_ADMISSION);
      return ds.metadata?.uid === uid;
    } catch (e) {
      if (statusOf(e) === 404) return false;
      throw new Error(`reading DaemonSet ${namespace}/${name}: ${describeApiError(e)}`, { cause: e });
    }
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

/** A typed client's list call as one page of a Reflector's list. */
function listed<T>(
  call: (
    next: string | undefined,
  ) => Promise<{ items: T[]; metadata?: { _continue?: string; resourceVersion?: string } }>,
): PagedList<T> {
  return async (next) => {
    const page = await call(next);
    return { items: page.items, continue: page.metadata?._continue, resourceVersion: page.metadata?.resourceVersion };
  };
}

/** An object reduced to what a reservation asks of it: that it exists, under which uid. */
interface Named {
  metadata: { name?: string; namespace?: string; uid?: string };
}

function nameOnly(obj: { metadata?: { name?: string; namespace?: string; uid?: string } }): Named {
  const m = obj.metadata;
  return { metadata: { name: m?.name, namespace: m?.namespace, uid: m?.uid } };
}

/** The DaemonSets and Nodes, by name and uid alone: a Node's status (its images, its conditions) would fill memory. */
function namedWatches(kc: KubeConfig, apps: AppsV1Api, core: CoreV1Api, log?: Logger) {
  const named = { store: true, transform: nameOnly };
  const daemonSets = new Reflector<V1DaemonSet, Named>(
    kc,
    {
      what: 'daemonsets',
      path: '/apis/apps/v1/daemonsets',
      list: listed((next) => apps.listDaemonSetForAllNamespaces({ limit: PAGE, _continue: next }, OFF_ADMISSION)),
      ...named,
    },
    log,
  );
  const nodes = new Reflector<V1Node, Named>(
    kc,
    {
      what: 'nodes',
      path: '/api/v1/nodes',
      list: listed((next) => core.listNode({ limit: PAGE, _continue: next }, OFF_ADMISSION)),
      ...named,
    },
    log,
  );
  return { daemonSets, nodes };
}
