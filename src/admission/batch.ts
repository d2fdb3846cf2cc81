// Jobs and CronJobs claim nothing: their pods come and go, each admitted and given its address on its
// own, and a finished pod gives it back. At apply, the pod template gets the checks its pods would get,
// and a fixed address is refused where two pods of the object could want it at the same time.
import type { WorkloadShape } from '../cni/dialect.js';
import { hasIntentKeys, KEYS } from '../intent/keys.js';
import type { Intent, Problem } from '../intent/types.js';
import { formatDual } from '../net/address.js';
import { handWrittenLabels } from './checks.js';
import type { Admit } from './context.js';
import { namespaceOf } from './pod-view.js';
import { allowed, refused, type Verdict } from './respond.js';
import type { AdmissionRequest, KubeObject } from './review.js';
import { templateProblems } from './workloads.js';

export type BatchKind = 'Job' | 'CronJob';

/** A Job's pod is admitted as a bare pod is: one pod, an address of its own. */
const POD_SHAPE: WorkloadShape = { kind: 'Pod', replicas: 1, statefulSet: false };

/** Where the pod template lies, for messages. */
const TEMPLATE: Record<BatchKind, string> = { Job: 'spec.template', CronJob: 'spec.jobTemplate.spec.template' };

/** What netpin reads of a Job or CronJob. */
interface Batch {
  kind: BatchKind;
  name: string;
  annotations: Record<string, string>;
  labels: Record<string, string> | undefined;
  /** The Job's (the CronJob's jobTemplate's) spec.parallelism, as the API server defaults it: 1. */
  parallelism: unknown;
  /** A CronJob's spec.concurrencyPolicy, as the API server defaults it: Allow. */
  concurrencyPolicy?: unknown;
}

function batchOf(kind: BatchKind, obj: KubeObject): Batch {
  const job = kind === 'CronJob' ? obj.spec?.jobTemplate?.spec : obj.spec;
  return {
    kind,
    name: obj.metadata?.name ?? '',
    annotations: job?.template?.metadata?.annotations ?? {},
    labels: job?.template?.metadata?.labels,
    parallelism: job?.parallelism ?? 1,
    ...(kind === 'CronJob' && { concurrencyPolicy: obj.spec?.concurrencyPolicy ?? 'Allow' }),
  };
}

/** batch/v1 Job and CronJob CREATE/UPDATE: refuse at apply what their pods could never get. */
export async function admitBatch(req: AdmissionRequest, admit: Admit, kind: BatchKind): Promise<Verdict> {
  if (req.operation !== 'CREATE' && req.operation !== 'UPDATE') return allowed();
  const obj = req.object!;
  const b = batchOf(kind, obj);
  // The Job controller and the garbage collector edit these objects too: an UPDATE that leaves what
  // netpin reads as it was is not judged again, so that a pool deleted since never blocks them.
  if (req.operation === 'UPDATE' && req.oldObject && JSON.stringify(batchOf(kind, req.oldObject)) === JSON.stringify(b))
    return allowed();
  // Each of its pods would be refused at creation: said at apply instead.
  const labels = handWrittenLabels(b.labels, {});
  if (labels.length) return refused(labels);
  const warnings = hasIntentKeys(obj.metadata?.annotations ?? {})
    ? [
        `netpin: the netpin.io/ annotations on the ${kind}'s own metadata are ignored; put them under ${TEMPLATE[kind]}.metadata.annotations`,
      ]
    : [];
  const { checked, problems } = await templateProblems(b.annotations, namespaceOf(req, obj), POD_SHAPE, admit);
  if (checked)
    problems.push(
      ...concurrencyProblems(
        b,
        checked.intent,
        checked.plan.pools.map((p) => p.name),
      ),
    );
  return problems.length ? refused(problems, warnings) : allowed(warnings);
}

/**
 * Fixed addresses where pods of the object may run side by side: a Job with parallelism above 1, a
 * CronJob that may start a Job while the last one runs. Each pod after the first would be refused the
 * address, and the Job would retry it until its backoffLimit. Pool addresses serve any number of pods.
 */
function concurrencyProblems(b: Batch, intent: Intent, pools: string[]): Problem[] {
  const key = intent.ips ? KEYS.ips : intent.ip ? KEYS.ip : undefined;
  if (!key) return [];
  const what = intent.ip ? `one fixed address (${formatDual(intent.ip)})` : 'the fixed addresses of netpin.io/ips';
  const pool = `netpin.io/pool${pools.length ? `: ${pools.join(',')}` : ''}`;
  const job = b.kind === 'CronJob' ? 'spec.jobTemplate.spec.parallelism' : 'spec.parallelism';
  if (typeof b.parallelism === 'number' && b.parallelism > 1) {
    return [
      {
        key,
        message: `${b.kind} ${b.name} runs up to ${b.parallelism} pods at once (${job}: ${b.parallelism}), and ${what} would serve only the first: the others would be refused`,
        fix: `use ${pool}, so that each pod gets a free address of its own, or set ${job}: 1`,
      },
    ];
  }
  if (b.kind === 'CronJob' && b.concurrencyPolicy !== 'Forbid') {
    return [
      {
        key,
        message: `CronJob ${b.name} may start a Job while the last one still runs (spec.concurrencyPolicy: ${String(b.concurrencyPolicy)}), and the new pod would be refused ${what}`,
        fix: `set spec.concurrencyPolicy: Forbid, or use ${pool}`,
      },
    ];
  }
  return [];
}
