import type { KubeConfig, V1StatefulSet } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Dialect } from '../cni/dialect.js';
import { dialectFor } from '../cni/index.js';
import { ApiServerProbe } from '../cluster/api-probe.js';
import { EventRecorder, kubeEventWriter } from '../cluster/events.js';
import { loadKubeConfig } from '../cluster/kube.js';
import { KubeLedger } from '../cluster/kube-ledger.js';
import { clusterIdentity } from '../cluster/clusterset/identity.js';
import { ClusterSetLedger } from '../cluster/clusterset/ledger.js';
import { Membership } from '../cluster/clusterset/membership.js';
import { ClusterSetRounds, HANDOVER_TO } from '../cluster/clusterset/rounds.js';
import { KubeClusterView } from '../cluster/kube-view.js';
import { LeaseElector } from '../cluster/lease.js';
import { inUse, type PodRecord } from '../cluster/pod-tracker.js';
import { kubeReconcilerApi, Reconciler, statefulSetState } from '../cluster/reconciler.js';
import { Allocator } from '../ipam/allocator.js';
import { ClaimIndex } from '../ipam/claim-index.js';
import { ResourceController } from '../cluster/resource-controller.js';
import { ciliumPinnedPools, pinnedPoolsFor } from '../cni/cilium-pools.js';
import { egressSet } from '../cni/egress.js';
import type { ManagedSet } from '../cni/managed.js';
import { parseAddress } from '../net/address.js';
import { Metrics } from '../transport/metrics.js';
import type { Backend } from './backend.js';
import type { ServeOptions } from './options.js';

/** `--ledger kube`: claims in the API server, a view fed by watches, and the leader-elected reconciler. */
export async function kubeBackend(opts: ServeOptions, log: Logger): Promise<Backend> {
  const kc = loadKubeConfig(opts.kubeconfig);
  const dialect = dialectFor(opts.cni);
  // Built first and handed to what fills them or reports to them: the index is what the watches fill
  // and the pool metrics read.
  const index = new ClaimIndex();
  const metrics = new Metrics(index);
  const probe = new ApiServerProbe(kc, log);
  const local = new KubeLedger(kc, log, opts.claimsPage, undefined, metrics.ledger, index);
  const set = opts.clusterSet && (await clusterSetLedger(kc, local, opts, log));
  const ledger = set?.ledger ?? local;
  const events = new EventRecorder(kubeEventWriter(kc), { log });
  // Told of deleted pods by the view, which starts after the reconciler exists.
  const view = clusterView(kc, dialect, ledger.index, events, (pod) => reconciler.podGone(pod), log);
  const controller = new ResourceController(kc, ledger, managedSets(dialect, opts), log);
  const resources = afterSweep(controller, set, view, log);
  const elector = new LeaseElector(kc, { name: 'netpin-reconciler', namespace: opts.leaseNamespace }, log);
  const reconciler = new Reconciler(
    kubeReconcilerApi(kc, dialect.addressKeys),
    ledger,
    {
      pods: view.pods,
      statefulSetExists: (namespace, name) => view.statefulSetExists(namespace, name),
      statefulSet: (namespace, name) => statefulSetState(view.statefulSets.get(name, namespace)),
      daemonSetKeeps: (namespace, name, node) => view.daemonSetKeeps(namespace, name, node),
      // It acts only once the view is complete.
      complete: () => ledger.complete() && view.complete(),
    },
    elector,
    {
      graceMs: opts.claimGraceSeconds * 1000,
      egressGraceMs: opts.egressGraceSeconds * 1000,
      intervalMs: 5_000,
      resources,
      events,
      metrics: metrics.reconciler,
    },
    log,
  );
  await view.start();
  elector.start();
  reconciler.start();
  probe.start();
  return {
    deps: {
      dialect,
      allocator: new Allocator(ledger),
      cluster: view,
      releaseOnDelete: false,
      log,
      events,
      ...(dialect.name === 'cilium'
        ? {
            objects: async (placement) =>
              (await controller.ensure(pinnedPoolsFor(placement.addresses, placement.pools))).map(
                (r) => `${r.kind} ${r.metadata.name}`,
              ),
          }
        : {}),
    },
    ledger,
    metrics,
    apiServer: probe,
    readiness: () => [...(ledger.synced ? [] : ['ledger not synced']), ...probe.problems],
    async stop() {
      await probe.stop();
      await reconciler.stop();
      events.stop();
      await elector.stop();
      await view.stop();
    },
  };
}

/** The cluster objects netpin keeps for this CNI: egress resources, and Cilium's single-address pools. */
function managedSets(dialect: Dialect, opts: ServeOptions): ManagedSet[] {
  if (dialect.name === 'antrea') return [egressSet('antrea', opts.egressExcludedCidrs)];
  if (dialect.name === 'cilium') return [egressSet('cilium', opts.egressExcludedCidrs), ciliumPinnedPools];
  return [];
}

/** After each sweep, on the leader: the objects claims need, then the ClusterSet's departures and handovers. */
function afterSweep(
  controller: ResourceController,
  set: Awaited<ReturnType<typeof clusterSetLedger>> | undefined,
  view: KubeClusterView,
  log: Logger,
): { sync(): Promise<void> } {
  const rounds =
    set &&
    new ClusterSetRounds(
      set.ledger,
      set.broker,
      set.leaveGraceMs,
      (namespace, name) => view.statefulSets.get(name, namespace)?.metadata?.annotations?.[HANDOVER_TO],
      undefined,
      log,
    );
  return {
    async sync() {
      await controller.sync();
      await rounds?.run();
    },
  };
}

/**
 * A ClusterSet member's ledger: this cluster's, and the broker's for the shared pools, over one index.
 * Without an id that can be read, netpin does not start: it never guesses which cluster it is.
 */
async function clusterSetLedger(
  kc: KubeConfig,
  local: KubeLedger,
  opts: ServeOptions,
  log: Logger,
): Promise<{ ledger: ClusterSetLedger; broker: KubeLedger; leaveGraceMs: number }> {
  const cs = opts.clusterSet!;
  const self = await clusterIdentity(kc, cs.clusterId);
  log.info({ cluster: self.id, source: self.source }, 'member of a ClusterSet');
  const brokerKc = loadKubeConfig(cs.kubeconfig);
  const broker = new KubeLedger(brokerKc, log, opts.claimsPage, undefined, undefined, local.index, {
    cluster: self.id,
    where: " in the ClusterSet's broker",
  });
  const ledger = new ClusterSetLedger(local, broker, new Membership(brokerKc, self, log), log);
  return { ledger, broker, leaveGraceMs: cs.leaveGraceSeconds * 1000 };
}

/** The watches of the cluster, and what each pod and StatefulSet they bring tells the ledger, the events and the reconciler. */
function clusterView(
  kc: KubeConfig,
  dialect: Dialect,
  index: ClaimIndex,
  events: EventRecorder,
  podGone: (pod: PodRecord) => void,
  log: Logger,
): KubeClusterView {
  // Addresses pods use without a netpin claim are never handed out, as far as a tenant cannot forge
  // them (PodRecord.inUse); an Allocated event waits for its pod.
  const pod = (key: string, record: PodRecord | undefined, before: PodRecord | undefined) => {
    index.observe(
      key,
      (record ? inUse(record) : []).map((a) => parseAddress(a)!),
    );
    if (record) events.observed({ kind: 'Pod', namespace: record.namespace, name: record.name, uid: record.uid });
    else if (before) podGone(before);
  };
  // A Reserved event waits for its StatefulSet.
  const statefulSet = ({ metadata: m }: V1StatefulSet) =>
    events.observed({ kind: 'StatefulSet', namespace: m?.namespace ?? '', name: m?.name ?? '', uid: m?.uid ?? '' });
  return new KubeClusterView(kc, dialect.addressKeys, { pod, statefulSet }, log);
}
