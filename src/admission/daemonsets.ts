// A DaemonSet claims nothing at apply: each of its pods is pinned by the DaemonSet controller to one
// node, and the first pod for a node claims the address the DaemonSet keeps for that node. At apply,
// the pod template gets the checks its pods would get, and a fixed address is refused: a DaemonSet
// runs one pod per node, and how many nodes it will run on is not known when it is applied.
import type { WorkloadShape } from '../cni/dialect.js';
import { hasIntentKeys, KEYS } from '../intent/keys.js';
import type { Problem } from '../intent/types.js';
import { shown } from '../net/shown.js';
import { handWrittenLabels } from './checks.js';
import type { Admit } from './context.js';
import { namespaceOf } from './pod-view.js';
import { allowed, refused, type Verdict } from './respond.js';
import type { AdmissionRequest, KubeObject } from './review.js';
import { templateProblems } from './workloads.js';

/** A DaemonSet's pod is admitted as one pod of its own, its address kept for its node. */
const POD_SHAPE: WorkloadShape = { kind: 'Pod', replicas: 1, statefulSet: false };

/** What netpin reads of a DaemonSet: its template's metadata, and how many pods a rollout adds per node. */
function templateOf(obj: KubeObject | undefined) {
  const meta = obj?.spec?.template?.metadata as
    { annotations?: Record<string, string>; labels?: Record<string, string> } | undefined;
  const strategy = obj?.spec?.updateStrategy as { type?: string; rollingUpdate?: { maxSurge?: unknown } } | undefined;
  // The API server's defaults: RollingUpdate, maxSurge 0.
  const surge = strategy?.type === 'OnDelete' ? 0 : (strategy?.rollingUpdate?.maxSurge ?? 0);
  return { annotations: meta?.annotations ?? {}, labels: meta?.labels, surge };
}

/**
 * A surge pod would wait for its node's address while the old pod, which the controller deletes only
 * once the surge pod is ready, keeps it: the rollout would never end. Any surge but 0 rounds up to a
 * pod on some node.
 */
function surgeProblems(name: string, surge: unknown): Problem[] {
  if (surge === 0 || surge === '0' || surge === '0%') return [];
  return [
    {
      key: KEYS.pool,
      message: `DaemonSet ${name} sets updateStrategy.rollingUpdate.maxSurge ${shown(String(surge))}: a node's new pod would wait for the address its old pod keeps until the new one is ready, so the rollout would never end`,
      fix: 'set spec.updateStrategy.rollingUpdate.maxSurge to 0 (the default): each node then gives its address from the old pod to the new',
    },
  ];
}

/** apps/v1 DaemonSet CREATE/UPDATE: refuse at apply what its pods could never get. */
export async function admitDaemonSet(req: AdmissionRequest, admit: Admit): Promise<Verdict> {
  if (req.operation !== 'CREATE' && req.operation !== 'UPDATE') return allowed();
  const obj = req.object!;
  const t = templateOf(obj);
  // The DaemonSet controller writes its status through the object too: an UPDATE that leaves the
  // template's metadata as it was is not judged again, so that a pool deleted since never blocks it.
  if (req.operation === 'UPDATE' && req.oldObject && JSON.stringify(templateOf(req.oldObject)) === JSON.stringify(t))
    return allowed();
  const labels = handWrittenLabels(t.labels, {});
  if (labels.length) return refused(labels);
  const warnings = hasIntentKeys(obj.metadata?.annotations ?? {})
    ? [
        "netpin: the netpin.io/ annotations on the DaemonSet's own metadata are ignored; put them under spec.template.metadata.annotations",
      ]
    : [];
  const { checked, problems } = await templateProblems(t.annotations, namespaceOf(req, obj), POD_SHAPE, admit);
  if (checked) {
    const name = obj.metadata?.name ?? '';
    problems.push(...fixedProblems(name, checked.intent.ip !== undefined, checked.intent.ips !== undefined));
    if (checked.intent.pools) problems.push(...surgeProblems(name, t.surge));
  }
  return problems.length ? refused(problems, warnings) : allowed(warnings);
}

/** A fixed address serves one pod; a DaemonSet runs one on every node it fits. */
function fixedProblems(name: string, ip: boolean, ips: boolean): Problem[] {
  const key = ips ? KEYS.ips : ip ? KEYS.ip : undefined;
  if (!key) return [];
  return [
    {
      key,
      message: `DaemonSet ${name} runs one pod on every node it fits, and how many that is is not known at apply: fixed addresses cannot be given out one per node`,
      fix: "use netpin.io/pool: each node gets an address of the pool, kept for that node across its pod's restarts and rollouts",
    },
  ];
}
