import type { WorkloadShape } from '../cni/dialect.js';
import { workloadInfo, type WorkloadInfo, type WorkloadKind } from '../cluster/view.js';
import { hasIntentKeys } from '../intent/keys.js';
import { parseIntent } from '../intent/parse.js';
import type { Problem } from '../intent/types.js';
import type { Placement } from '../ipam/allocator.js';
import type { PodQuota } from '../ipam/ledger.js';
import { SCALE_DOWN_RELEASE, scaleDownRelease } from '../ipam/scale-down.js';
import { checkAnnotations, handWrittenLabels, handWrittenProblems, placementKeysIn } from './checks.js';
import type { Admit, CheckedIntent } from './context.js';
import { quotaProblems, recordReservation, releaseWorkload, reserveOrdinals } from './ordinals.js';
import { defaultedAnnotations, sourced } from './namespace-default.js';
import { namespaceOf } from './pod-view.js';
import { allowed, isRefusal, refused, type Verdict } from './respond.js';
import type { AdmissionRequest } from './review.js';
import { addressKey, countable, replicaProblems, type Was, type Workload } from './workload-counts.js';
import { ledgerProblems, limitProblems, needsMore } from './workload-room.js';

/**
 * The most ordinals one StatefulSet may have reserved. Each is an IPClaim in the API server and an
 * allocation started at once in this process: spec.replicas may be up to 2^31 - 1, and 2 billion
 * allocations exhaust the heap long before any pool. Ten thousand pinned pods in one StatefulSet is
 * already far past what a cluster runs.
 */
const MAX_RESERVED_ORDINALS = 10_000;

/**
 * Deployment and StatefulSet CREATE/UPDATE: refuse at `kubectl apply` what their
 * pods could never get. With `reserve`, a StatefulSet's ordinals are claimed in
 * order, so that ordinal k holds the k-th free address (or entry k of the list).
 */
export async function admitWorkload(req: AdmissionRequest, admit: Admit, reserve: boolean): Promise<Verdict> {
  if (req.operation === 'DELETE') return reserve ? releaseWorkload(req, admit) : allowed();
  if (req.operation !== 'CREATE' && req.operation !== 'UPDATE') return allowed();
  const obj = req.object!;
  const kind = req.kind.kind as WorkloadKind;
  const w: Workload = {
    kind,
    namespace: namespaceOf(req, obj),
    name: obj.metadata?.name ?? req.name ?? '',
    ...workloadInfo(kind, obj.spec),
  };
  // Each of its pods would be refused at creation: said at apply instead.
  const labels = handWrittenLabels(obj.spec?.template?.metadata?.labels, {});
  if (labels.length) return refused(labels);
  const warnings: string[] = [];
  const own = { ...obj.metadata?.annotations };
  if (kind === 'StatefulSet') {
    const release = scaleDownRelease(own);
    if (typeof release === 'object')
      return refused([
        {
          key: SCALE_DOWN_RELEASE,
          message: release.problem,
          fix: `write how long the ordinals above a new, lower spec.replicas keep their addresses (${SCALE_DOWN_RELEASE}: 1h), "never" to keep them while the StatefulSet exists, or remove the annotation for 1h`,
        },
      ]);
    delete own[SCALE_DOWN_RELEASE];
  }
  if (hasIntentKeys(own)) {
    warnings.push(
      `netpin: the netpin.io/ annotations on the ${w.kind}'s own metadata are ignored; put them under spec.template.metadata.annotations`,
    );
  }
  if (reserve && !req.dryRun) admit.cluster.rememberWorkload?.(w.kind, w.namespace, w.name, w);
  const prior = req.operation === 'UPDATE' && req.oldObject ? workloadInfo(kind, req.oldObject.spec) : undefined;
  return judge(w, prior, req, admit, reserve, warnings);
}

/**
 * The scale subresource of a Deployment or StatefulSet: `kubectl scale` and the
 * HorizontalPodAutoscaler never pass through the workload's own UPDATE, and the Scale
 * object has no template, so the intent comes from the workload as the cluster knows it.
 */
export async function admitScale(req: AdmissionRequest, admit: Admit, reserve: boolean): Promise<Verdict> {
  if (req.operation !== 'UPDATE') return allowed();
  const namespace = req.namespace ?? 'default';
  const name = req.name ?? req.object?.metadata?.name ?? '';
  const kind: WorkloadKind = req.resource?.resource === 'statefulsets' ? 'StatefulSet' : 'Deployment';
  const info =
    kind === 'StatefulSet'
      ? admit.cluster.statefulSet(namespace, name)
      : await admit.cluster.deployment(namespace, name);
  const replicas = req.object?.spec?.replicas;
  if (!info || typeof replicas !== 'number') return allowed();
  const w: Workload = { ...info, replicas, kind, namespace, name };
  if (reserve && !req.dryRun) admit.cluster.rememberWorkload?.(kind, namespace, name, w);
  // The Scale as stored says how many replicas there were; the template is the workload's own.
  const stored = req.oldObject?.spec?.replicas;
  const prior = { ...info, replicas: typeof stored === 'number' ? stored : info.replicas };
  return judge(w, prior, req, admit, reserve, []);
}

/**
 * The template read as its pods would be at CREATE, with the namespace's defaults where it names no
 * source of its own; the refusals of a default name the namespace. `prior` is read with today's
 * defaults too: a changed default alone is no change of the template, which an UPDATE may keep.
 */
async function judge(
  w: Workload,
  prior: WorkloadInfo | undefined,
  req: AdmissionRequest,
  admit: Admit,
  reserve: boolean,
  warnings: string[],
): Promise<Verdict> {
  const of = (info: WorkloadInfo) =>
    defaultedAnnotations(info.templateAnnotations ?? {}, w.namespace, info.hostNetwork === true, admit);
  const now = of(w);
  const before = prior && { ...prior, templateAnnotations: of(prior).annotations };
  const verdict = await judgeTemplate(
    { ...w, templateAnnotations: now.annotations },
    before,
    req,
    admit,
    reserve,
    warnings,
  );
  if (!isRefusal(verdict) || now.defaulted.length === 0) return verdict;
  return { ...verdict, problems: sourced(verdict.problems, now.defaulted, w.namespace) };
}

/** `prior`: the workload as it was before an UPDATE or a scale, undefined at CREATE. */
async function judgeTemplate(
  w: Workload,
  prior: WorkloadInfo | undefined,
  req: AdmissionRequest,
  admit: Admit,
  reserve: boolean,
  warnings: string[],
): Promise<Verdict> {
  // Counts the API server will refuse (replicas: 0.5, a negative ordinals.start, ...) are its to refuse,
  // in its own words, after the webhooks: netpin counts pods and addresses only in whole numbers.
  if (!countable(w)) return allowed(warnings);
  const shape: WorkloadShape = { kind: w.kind, replicas: w.replicas, statefulSet: w.kind === 'StatefulSet' };
  // Every check a pod of this template would get at CREATE, so that the controller never loops on refusals.
  const { checked, problems } = await templateProblems(w.templateAnnotations ?? {}, w.namespace, shape, admit);
  if (!checked) return problems.length ? refused(problems, warnings) : allowed(warnings);
  const was: Was | undefined =
    prior && countable(prior) ? { ...prior, intent: parseIntent(prior.templateAnnotations).intent } : undefined;
  const { intent, plan } = checked;
  problems.push(...replicaProblems(w, intent));
  const pins = admit.dialect.pinsAddresses(intent, shape, plan.pools);
  const reserving = pins && w.kind === 'StatefulSet' && reserve && !req.dryRun;
  if (pins && w.kind === 'StatefulSet' && w.replicas > MAX_RESERVED_ORDINALS) {
    problems.push({
      key: addressKey(intent),
      message: `StatefulSet ${w.name} has ${w.replicas} replicas, and netpin reserves an address for ${MAX_RESERVED_ORDINALS} ordinals at most`,
      fix: `lower spec.replicas to ${MAX_RESERVED_ORDINALS} or fewer, or split the StatefulSet`,
    });
  }
  // Reserving ordinals asks the ledger the same for real, and names the ordinal it cannot serve.
  // What a namespace may hold: the pools' spec.namespaceLimit first (the tighter rule where it is set),
  // and for a StatefulSet's reservations its pods quota.
  const grows = needsMore(w, was, intent);
  if (pins && grows && problems.length === 0) problems.push(...limitProblems(w, was, checked, admit));
  if (pins && !reserving && problems.length === 0) problems.push(...ledgerProblems(w, was, intent, plan, admit));
  let quota: PodQuota | undefined;
  if (pins && grows && w.kind === 'StatefulSet' && reserve && problems.length === 0) {
    quota = await admit.ledger.podQuota?.(w.namespace);
    if (quota) problems.push(...quotaProblems(w, intent, quota, admit));
  }
  if (problems.length) return refused(problems, warnings);
  if (reserving) {
    const r = await reserveOrdinals(w, intent, plan, admit, quota, was);
    if (r.problems) return refused(r.problems, warnings);
    if (r.reserved) {
      warnings.push(`netpin: reserved ${r.reserved}`);
      recordReservation(
        req,
        w,
        `Reserved ${r.reserved} from IPPool ${plan.pools.map((p) => p.name).join(', ')}`,
        admit,
      );
    }
  }
  return allowed(warnings);
}

/**
 * What a pod of the template would be refused for at CREATE, found without claiming: the checks
 * pods share (checkAnnotations), and CNI annotations written by hand, against one rendering.
 */
export async function templateProblems(
  annotations: Record<string, string>,
  namespace: string,
  shape: WorkloadShape,
  admit: Admit,
): Promise<{ checked: CheckedIntent | undefined; problems: Problem[] }> {
  const parsed = parseIntent(annotations);
  const found = await checkAnnotations(annotations, shape, namespace, parsed, admit);
  const { checked } = found;
  if (checked && checked.problems.length === 0) {
    const placement = await predictedPlacement(annotations, checked, shape, namespace, admit);
    const expected = admit.dialect.render(checked.intent, shape, placement).annotations;
    found.problems.push(...handWrittenProblems(annotations, expected, admit.dialect));
  }
  return found;
}

/**
 * The placement a pod of the template would get, for judging placement keys written by hand: only
 * then is it worth a dry-run allocation, since without addresses nothing else netpin renders differs.
 */
async function predictedPlacement(
  annotations: Record<string, string>,
  { intent, plan }: CheckedIntent,
  shape: WorkloadShape,
  namespace: string,
  admit: Admit,
): Promise<Placement> {
  const handWritten = placementKeysIn(annotations, admit.dialect).length > 0;
  if (!handWritten || !admit.dialect.pinsAddresses(intent, shape, plan.pools)) return { pools: plan.pools };
  const preview = await admit.allocator.allocate({
    intent,
    namespace,
    namespaceLabels: admit.cluster.namespaceLabels(namespace),
    owner: { kind: 'Pod', namespace, name: '' },
    dryRun: true,
    plan,
  });
  return preview.ok ? preview.allocation : { pools: plan.pools };
}
