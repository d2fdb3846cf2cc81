import type { V1StatefulSet } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { dialectFor } from '../cni/index.js';
import { ApiServerProbe } from '../cluster/api-probe.js';
import { judgeApiServerBy } from '../cluster/deadline.js';
import { loadKubeConfig } from '../cluster/kube.js';
import { EgressController } from '../cluster/egress-controller.js';
import { EventRecorder, kubeEventWriter } from '../cluster/events.js';
import { KubeClusterView } from '../cluster/kube-view.js';
import { inUse, type PodRecord } from '../cluster/pod-tracker.js';
import { parseAddress } from '../net/address.js';
import { LeaseElector } from '../cluster/lease.js';
import { kubeReconcilerApi, Reconciler, statefulSetState } from '../cluster/reconciler.js';
import { Allocator } from '../ipam/allocator.js';
import { KubeLedger } from '../cluster/kube-ledger.js';
import type { ServeOptions } from './args.js';
import type { Backend } from './backend.js';

/** `--ledger kube`: claims in the API server, a view fed by watches, and the leader-elected reconciler. */
export async function kubeBackend(opts: ServeOptions, log: Logger): Promise<Backend> {
  const kc = loadKubeConfig(opts.kubeconfig);
  const dialect = dialectFor(opts.cni);
  const ledger = new KubeLedger(kc, log, opts.claimsPage);
  const events = new EventRecorder(kubeEventWriter(kc), { log });
  // Addresses pods use without a netpin claim are never handed out, as far as a tenant cannot forge
  // them (PodRecord.inUse); an Allocated event waits for its pod.
  const pod = (key: string, record: PodRecord | undefined, before: PodRecord | undefined) => {
    ledger.index.observe(
      key,
      (record ? inUse(record) : []).map((a) => parseAddress(a)!),
    );
    if (record) events.observed({ kind: 'Pod', namespace: record.namespace, name: record.name, uid: record.uid });
    else if (before) reconciler.podGone(before);
  };
  // A Reserved event waits for its StatefulSet.
  const statefulSet = ({ metadata: m }: V1StatefulSet) =>
    events.observed({ kind: 'StatefulSet', namespace: m?.namespace ?? '', name: m?.name ?? '', uid: m?.uid ?? '' });
  const view = new KubeClusterView(kc, dialect.addressKeys, { pod, statefulSet }, log);
  const elector = new LeaseElector(kc, { name: 'netpin-reconciler', namespace: opts.leaseNamespace }, log);
  const egress =
    dialect.name === 'antrea' || dialect.name === 'cilium'
      ? new EgressController(kc, ledger, dialect.name, opts.egressExcludedCidrs, log)
      : undefined;
  // Told of deleted pods by the view, which starts after it; it acts only once the view is complete.
  const reconciler = new Reconciler(
    kubeReconcilerApi(kc, dialect.addressKeys),
    ledger,
    {
      pods: view.pods,
      statefulSetExists: (namespace, name) => view.statefulSetExists(namespace, name),
      statefulSet: (namespace, name) => statefulSetState(view.statefulSets.get(name, namespace)),
      complete: () => ledger.complete() && view.complete(),
    },
    elector,
    {
      graceMs: opts.claimGraceSeconds * 1000,
      egressGraceMs: opts.egressGraceSeconds * 1000,
      intervalMs: 5_000,
      egress,
      events,
    },
    log,
  );
  await view.start();
  const probe = new ApiServerProbe(kc, log);
  judgeApiServerBy(() => probe.lastAnsweredAt);
  elector.start();
  reconciler.start();
  probe.start();
  return {
    deps: { dialect, allocator: new Allocator(ledger), cluster: view, releaseOnDelete: false, log, events },
    ledger,
    readiness: () => [...(ledger.synced ? [] : ['ledger not synced']), ...probe.problems],
    instrument: (metrics) => {
      ledger.metrics = metrics.ledger;
      reconciler.metrics = metrics.reconciler;
    },
    async stop() {
      await probe.stop();
      await reconciler.stop();
      events.stop();
      await elector.stop();
      await view.stop();
    },
  };
}
