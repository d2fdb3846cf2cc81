import type { Rendering } from '../cni/dialect.js';
import { ALLOCATED_KEY, EGRESS_ALLOCATED_KEY, KEYS, PREFIX } from '../intent/keys.js';
import type { EgressMode, Problem } from '../intent/types.js';
import type { EgressResult, Placement } from '../ipam/allocator.js';
import type { Claim, EgressOwner, Owner } from '../ipam/claim.js';
import { addressList, formatDual } from '../net/address.js';
import {
  checkAnnotations,
  handWrittenLabels,
  handWrittenProblems,
  netpinLabels,
  ownerProblems,
  strayRecords,
} from './checks.js';
import type { Admit, CheckedIntent } from './context.js';
import { addressKey } from './workload-counts.js';
import { viewPod, type DaemonSetRef, type PodView } from './pod-view.js';
import { sourced } from './namespace-default.js';
import { allowed, isRefusal, patched, refused, type Verdict } from './respond.js';
import type { AdmissionRequest, KubeObject } from './review.js';

/** What a pod is given: where its addresses are, and the claims this request made for it. */
interface Given {
  placement: Placement;
  fresh: Claim[];
}

/**
 * Pod CREATE, mutating: refuse what the validating webhook would, then allocate and write the CNI's
 * annotations. Everything that would refuse the pod is found before anything is claimed: a refused
 * pod must not hold an address, or a controller retrying it drains the pool.
 */
export async function mutatePodCreate(req: AdmissionRequest, admit: Admit): Promise<Verdict> {
  const view = viewPod(req, req.object!, admit);
  const verdict = await mutateView(req, view, admit);
  if (!isRefusal(verdict) || view.defaulted.length === 0) return verdict;
  return { ...verdict, problems: sourced(verdict.problems, view.defaulted, view.namespace) };
}

/** The pod's admission, read with its namespace's defaults: the keys it takes from there are written on it too. */
async function mutateView(req: AdmissionRequest, view: PodView, admit: Admit): Promise<Verdict> {
  if (!view.hasIntent) {
    const stray = [...strayRecords(view.annotations), ...handWrittenLabels(view.labels, {})];
    return stray.length ? refused(stray) : allowed();
  }
  const forged = await ownerProblems(view, admit);
  if (forged.length) return refused(forged);
  const { checked, problems } = await checkAnnotations(
    view.annotations,
    view.shape,
    view.namespace,
    view.parsed,
    admit,
  );
  if (problems.length || !checked) return refused(problems);

  const pins = admit.dialect.pinsAddresses(checked.intent, view.shape, checked.plan.pools);
  // Rendered once, before any claim: for the placement a dry run of the same claims predicts (egress
  // included, so that no clash is found only after claiming), which the claims give unless a race moved them.
  let predicted: { placement: Placement; rendering: Rendering } | undefined;
  if ((pins || checked.intent.egress) && mayClash(view)) {
    const placement = await predict(req, view, checked, pins, admit);
    const rendering = admit.dialect.render(checked.intent, view.shape, placement);
    const clashes = handWrittenProblems(view.annotations, rendering.annotations, admit.dialect);
    if (clashes.length) return refused(clashes);
    predicted = { placement, rendering };
  }
  const given = await give(req, view, checked, pins, false, admit);
  if ('problems' in given) return refused(given.problems);
  const { placement, fresh } = given;
  const blocked = req.dryRun ? [] : await objectsFor(placement, checked, admit);
  if (blocked.length) {
    for (const c of fresh) await admit.ledger.release(c);
    return refused(blocked);
  }
  const rendering = predicted && samePlacement(predicted.placement, placement) ? predicted.rendering : undefined;
  return written(
    view,
    placement,
    rendering ?? admit.dialect.render(checked.intent, view.shape, placement),
    fresh,
    admit,
  );
}

/** The pod with netpin's annotations and labels; refused, and its claims given back, if the pod holds others by hand. */
async function written(
  view: PodView,
  placement: Placement,
  rendering: Rendering,
  fresh: Claim[],
  admit: Admit,
): Promise<Verdict> {
  const { pod, annotations } = view;
  const extraLabels = netpinLabels(rendering, placement);
  // A race may have given another address than the prediction; netpin's labels are known only now.
  const conflicts = [
    ...handWrittenProblems(annotations, rendering.annotations, admit.dialect),
    ...handWrittenLabels(view.labels, extraLabels),
  ];
  if (conflicts.length) {
    for (const c of fresh) await admit.ledger.release(c);
    return refused(conflicts);
  }
  // `annotations`, not the pod's own: a default it took is written on it, so that it keeps it for life.
  const newAnnotations = { ...annotations, ...rendering.annotations };
  if (placement.addresses) newAnnotations[ALLOCATED_KEY] = formatDual(placement.addresses);
  if (placement.egress) newAnnotations[EGRESS_ALLOCATED_KEY] = formatDual(placement.egress);
  const labels = Object.keys(extraLabels).length ? { ...view.labels, ...extraLabels } : view.labels;
  const mutated: KubeObject = {
    ...pod,
    metadata: { ...pod.metadata, annotations: newAnnotations, ...(labels ? { labels } : {}) },
  };
  return patched(
    pod,
    mutated,
    rendering.warnings.map((w) => `netpin: ${w}`),
  );
}

/**
 * The cluster objects the placement needs, made before the pod can start. A failed call refuses
 * nothing: the leader's next sync makes them, while the pod waits for them on its node.
 */
async function objectsFor(placement: Placement, { intent }: CheckedIntent, admit: Admit): Promise<Problem[]> {
  if (!admit.objects || !placement.addresses) return [];
  let inTheWay: string[];
  try {
    inTheWay = await admit.objects(placement);
  } catch (e) {
    admit.log?.warn({ err: e }, 'could not make the objects a pod needs; the leader makes them');
    return [];
  }
  return inTheWay.map((what) => ({
    key: addressKey(intent),
    message: `${what} exists without netpin's label, and ${admit.dialect.title} would give the pod's address through it as it stands: netpin touches only objects it made`,
    fix: `remove ${what}, or choose another address`,
  }));
}

/**
 * Whether the pod carries annotations of its own that the rendering could clash with. netpin renders
 * no netpin.io/ key, so a pod with only those needs no rendering before its claims.
 */
function mayClash(view: PodView): boolean {
  return Object.keys(view.annotations).some((k) => !k.startsWith(PREFIX));
}

/** The placement the claims would give, asked of the ledger as a dry run; the pools alone when it would refuse. */
async function predict(
  req: AdmissionRequest,
  view: PodView,
  checked: CheckedIntent,
  pins: boolean,
  admit: Admit,
): Promise<Placement> {
  const given = await give(req, view, checked, pins, true, admit);
  return 'problems' in given ? { pools: checked.plan.pools } : given.placement;
}

function samePlacement(a: Placement, b: Placement): boolean {
  const text = (p: Placement) => [p.addresses && formatDual(p.addresses), p.egress && formatDual(p.egress)].join(' ');
  return text(a) === text(b) && a.pools.length === b.pools.length && a.pools.every((p, i) => p === b.pools[i]);
}

/** The pod's addresses and its egress address; with `dryRun`, what they would be. */
async function give(
  req: AdmissionRequest,
  view: PodView,
  checked: CheckedIntent,
  pins: boolean,
  dryRun: boolean,
  admit: Admit,
): Promise<Given | { problems: Problem[] }> {
  const { intent, plan } = checked;
  let placement: Placement = { pools: plan.pools };
  let fresh: Claim[] = [];
  const { namespace, statefulSet: sts, daemonSet: ds } = view;
  const namespaceLabels = admit.cluster.namespaceLabels(namespace);
  const dry = dryRun || req.dryRun === true;
  if (pins) {
    const owner: Owner = sts
      ? { kind: 'StatefulSet', namespace, name: sts.name, ordinal: sts.ordinal }
      : ds
        ? { kind: 'DaemonSet', namespace, name: ds.name, node: ds.node }
        : { kind: 'Pod', namespace, name: view.pod.metadata?.name ?? '', uid: req.uid };
    const start = sts ? (admit.cluster.statefulSet(namespace, sts.name)?.ordinalsStart ?? 0) : 0;
    const entry = sts && intent.ips ? sts.ordinal - start : undefined;
    const result = await admit.allocator.allocate({
      intent,
      namespace,
      namespaceLabels,
      owner,
      entry,
      dryRun: dry,
      plan,
    });
    if (!result.ok) return result;
    placement = result.allocation;
    fresh = result.fresh;
    const busy = ds ? nodeAddressBusy(view, ds, placement, admit) : [];
    if (busy.length) return { problems: busy };
  }
  if (intent.egress) {
    const egress = await giveEgress(req, view, checked, dry, admit);
    if (!egress.ok) {
      for (const c of fresh) await admit.ledger.release(c);
      return egress;
    }
    placement = { ...placement, egress: egress.addresses };
    fresh = [...fresh, ...egress.fresh];
  }
  return { placement, fresh };
}

/**
 * A node's DaemonSet address stays with the pod that uses it until that pod is gone: the DaemonSet
 * controller makes a node's new pod while the old one still terminates (kubernetes
 * pkg/controller/daemon/daemon_controller.go podsShouldBeOnNode skips pods being deleted). The
 * claim stays the DaemonSet's; the controller retries the refused create.
 */
function nodeAddressBusy(view: PodView, ds: DaemonSetRef, placement: Placement, admit: Admit): Problem[] {
  const self = `${view.namespace}/${view.pod.metadata?.name ?? ''}`;
  return addressList(placement.addresses ?? {}).flatMap((ip) => {
    const other = admit.index.usersOf(ip).find((p) => p !== self);
    if (!other) return [];
    return [
      {
        key: KEYS.pool,
        message: `${ip.toString()}, the address DaemonSet ${ds.name} keeps for node ${ds.node}, is still used by pod ${other}, which has not ended yet`,
        fix: `wait: the DaemonSet controller creates the pod again once ${other} is gone`,
      },
    ];
  });
}

/** The pod's egress address: claimed for its egress owner when it comes from an egress pool. */
async function giveEgress(
  req: AdmissionRequest,
  view: PodView,
  { intent, plan }: CheckedIntent,
  dryRun: boolean,
  admit: Admit,
): Promise<EgressResult> {
  const egress = intent.egress!;
  if (plan.egressPools.length === 0) return { ok: true, addresses: egress.ip!, fresh: [] };
  return admit.allocator.allocateEgress({
    intent,
    namespace: view.namespace,
    namespaceLabels: admit.cluster.namespaceLabels(view.namespace),
    owner: egressOwner(view, egress.mode, req.uid),
    dryRun,
    plan,
  });
}

/**
 * Who shares a pod's egress address: the pods of its Deployment (or bare ReplicaSet), or of its
 * StatefulSet; in eip mode each ordinal has its own; a bare pod has its own.
 */
function egressOwner({ pod, namespace, statefulSet: sts }: PodView, mode: EgressMode, uid: string): EgressOwner {
  if (sts)
    return {
      kind: 'Egress',
      namespace,
      workload: 'StatefulSet',
      name: sts.name,
      ...(mode === 'eip' ? { ordinal: sts.ordinal } : {}),
    };
  const rs = pod.metadata?.ownerReferences?.find((r) => r.controller && r.kind === 'ReplicaSet');
  if (rs) {
    // A Deployment names its ReplicaSets <deployment>-<pod-template-hash>.
    const hash = pod.metadata?.labels?.['pod-template-hash'];
    return hash && rs.name.endsWith(`-${hash}`)
      ? { kind: 'Egress', namespace, workload: 'Deployment', name: rs.name.slice(0, -hash.length - 1) }
      : { kind: 'Egress', namespace, workload: 'ReplicaSet', name: rs.name };
  }
  return { kind: 'Egress', namespace, workload: 'Pod', name: pod.metadata?.name || `uid-${uid}` };
}
