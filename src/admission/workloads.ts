import type { WorkloadShape } from '../cni/dialect.js';
import type { StatefulSetInfo } from '../cluster/view.js';
import { hasIntentKeys, KEYS } from '../intent/keys.js';
import { formatDual, type Intent, type Problem } from '../intent/types.js';
import type { Plan } from '../ipam/allocator.js';
import { ownerKey, type Owner } from '../ipam/ledger.js';
import { checkIntent, renderProblems, type AdmissionDeps } from './context.js';
import { allowed, denied, type Verdict } from './respond.js';
import type { AdmissionRequest, KubeObject } from './review.js';

interface Workload {
  kind: 'Deployment' | 'StatefulSet';
  namespace: string;
  name: string;
  replicas: number;
  ordinalsStart: number;
  template: Record<string, string> | undefined;
}

function readWorkload(req: AdmissionRequest, obj: KubeObject): Workload {
  const spec = obj.spec ?? {};
  const replicas = typeof spec.replicas === 'number' ? spec.replicas : 1;
  const start = typeof spec.ordinals?.start === 'number' ? spec.ordinals.start : 0;
  return {
    kind: req.kind.kind as Workload['kind'],
    namespace: req.namespace ?? obj.metadata?.namespace ?? 'default',
    name: obj.metadata?.name ?? req.name ?? '',
    replicas,
    ordinalsStart: start,
    template: spec.template?.metadata?.annotations,
  };
}

/**
 * Deployment and StatefulSet CREATE/UPDATE: refuse at `kubectl apply` what their
 * pods could never get. With `reserve`, a StatefulSet's ordinals are claimed in
 * order, so that ordinal k holds the k-th free address (or entry k of the list).
 */
export async function admitWorkload(req: AdmissionRequest, deps: AdmissionDeps, reserve: boolean): Promise<Verdict> {
  if (req.operation === 'DELETE') return reserve ? releaseStatefulSet(req, deps) : allowed();
  if (req.operation !== 'CREATE' && req.operation !== 'UPDATE') return allowed();
  const obj = req.object!;
  const w = readWorkload(req, obj);
  const warnings: string[] = [];
  if (hasIntentKeys(obj.metadata?.annotations)) {
    warnings.push(`netpin: the netpin.io/ annotations on the ${w.kind}'s own metadata are ignored; put them under spec.template.metadata.annotations`);
  }
  const info: StatefulSetInfo = { replicas: w.replicas, ordinalsStart: w.ordinalsStart, templateAnnotations: w.template };
  if (w.kind === 'StatefulSet' && reserve && !req.dryRun) deps.cluster.rememberStatefulSet?.(w.namespace, w.name, info);
  return admit(w, req, deps, reserve, warnings);
}

/**
 * The StatefulSet scale subresource: `kubectl scale` never passes through the
 * StatefulSet's own UPDATE, and the Scale object has no template, so the intent
 * comes from the StatefulSet as the cluster view knows it.
 */
export async function admitStatefulSetScale(req: AdmissionRequest, deps: AdmissionDeps, reserve: boolean): Promise<Verdict> {
  if (req.operation !== 'UPDATE') return allowed();
  const namespace = req.namespace ?? 'default';
  const name = req.name ?? req.object?.metadata?.name ?? '';
  const sts = deps.cluster.statefulSet(namespace, name);
  const replicas = req.object?.spec?.replicas;
  if (!sts || typeof replicas !== 'number') return allowed();
  if (reserve && !req.dryRun) deps.cluster.rememberStatefulSet?.(namespace, name, { ...sts, replicas });
  const w: Workload = { kind: 'StatefulSet', namespace, name, replicas, ordinalsStart: sts.ordinalsStart, template: sts.templateAnnotations };
  return admit(w, req, deps, reserve, []);
}

async function admit(w: Workload, req: AdmissionRequest, deps: AdmissionDeps, reserve: boolean, warnings: string[]): Promise<Verdict> {
  if (!hasIntentKeys(w.template)) return allowed(warnings);

  const shape: WorkloadShape = { kind: w.kind, replicas: w.replicas, statefulSet: w.kind === 'StatefulSet' };
  const { intent, plan, problems } = checkIntent(w.template, shape, w.namespace, deps);
  if (intent.ip && w.replicas > 1) {
    problems.push({
      key: KEYS.ip,
      message: `one fixed address cannot serve ${w.replicas} replicas: every replica after the first would wait in ContainerCreating`,
      fix: w.kind === 'StatefulSet' ? 'list one address per ordinal in netpin.io/ips, or use netpin.io/pool' : 'use netpin.io/pool or netpin.io/ips, or set replicas: 1',
    });
  }
  if (intent.ips && intent.ips.length < w.replicas) {
    problems.push({
      key: KEYS.ips,
      message: w.kind === 'StatefulSet'
        ? `has ${intent.ips.length} entries, but ordinals ${w.ordinalsStart}..${w.ordinalsStart + w.replicas - 1} need ${w.replicas} (entry 1 goes to ordinal ${w.ordinalsStart})`
        : `has ${intent.ips.length} entries for ${w.replicas} replicas`,
      fix: `list at least ${w.replicas} entries, or lower replicas to ${intent.ips.length}`,
    });
  }
  if (problems.length) return denied(renderProblems(problems, deps.dialect), warnings);

  if (w.kind === 'Deployment' && intent.ips && intent.ips.length === w.replicas) {
    warnings.push('netpin: netpin.io/ips has exactly one entry per replica, so a rolling update cannot surge; add spare entries or use strategy Recreate');
  }
  if (w.kind === 'StatefulSet' && reserve && !req.dryRun && deps.dialect.pinsAddresses(intent, shape)) {
    const r = await reserveOrdinals(w, intent, plan, deps);
    if (r.problems) return denied(renderProblems(r.problems, deps.dialect), warnings);
    warnings.push(...r.warnings);
  }
  return allowed(warnings);
}

async function reserveOrdinals(w: Workload, intent: Intent, plan: Plan | undefined, deps: AdmissionDeps) {
  const owners: Owner[] = Array.from({ length: w.replicas }, (_, k) => ({ kind: 'StatefulSet', namespace: w.namespace, name: w.name, ordinal: w.ordinalsStart + k }));
  const namespaceLabels = deps.cluster.namespaceLabels(w.namespace);
  // Started in ordinal order without waiting in between: each allocation takes its address before
  // its first write, so ordinal k still gets the k-th free address, and the writes overlap.
  const results = await Promise.allSettled(owners.map((owner, k) =>
    deps.allocator.allocate({
      intent,
      namespace: w.namespace,
      namespaceLabels,
      owner,
      entry: intent.ips ? k : undefined,
      dryRun: false,
      plan,
    }),
  ));
  const done = results.flatMap((r) => (r.status === 'fulfilled' && r.value.ok ? [r.value] : []));
  const failed = results.findIndex((r) => r.status === 'rejected' || !r.value.ok);
  if (failed >= 0) {
    // Claims this request made would only wait for the reconciler; give them back now.
    for (const r of done) for (const c of r.fresh) await deps.allocator.ledger.release(c);
    const r = results[failed]!;
    if (r.status === 'rejected') throw r.reason;
    const problems = r.value.ok ? [] : r.value.problems;
    return { problems: problems.map((p): Problem => ({ ...p, message: `${w.name}-${w.ordinalsStart + failed}: ${p.message}` })), warnings: [] };
  }
  const summary = done.map((r, k) => `${w.name}-${w.ordinalsStart + k}=${formatDual(r.allocation.addresses)}`);
  const shown = summary.length > 6 ? [...summary.slice(0, 3), '…', ...summary.slice(-2)] : summary;
  return { problems: undefined, warnings: done.some((r) => r.fresh.length > 0) ? [`netpin: reserved ${shown.join(' ')}`] : [] };
}

async function releaseStatefulSet(req: AdmissionRequest, deps: AdmissionDeps): Promise<Verdict> {
  if (req.kind.kind !== 'StatefulSet' || !deps.releaseOnDelete || req.dryRun) return allowed();
  const namespace = req.namespace ?? 'default';
  const name = req.name ?? req.oldObject?.metadata?.name ?? '';
  deps.cluster.rememberStatefulSet?.(namespace, name, undefined);
  const prefix = ownerKey({ kind: 'StatefulSet', namespace, name, ordinal: 0 }).replace(/\/0$/, '/');
  for (const claim of [...deps.allocator.ledger.index.allClaims()]) {
    if (ownerKey(claim.owner).startsWith(prefix)) await deps.allocator.ledger.release(claim);
  }
  return allowed();
}
