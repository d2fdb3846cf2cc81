import { bandwidthProblems } from '../cni/bandwidth.js';
import type { Dialect, WorkloadShape } from '../cni/dialect.js';
import { EGRESS_LABEL } from '../cni/egress.js';
import { ALLOCATED_KEY, EGRESS_ALLOCATED_KEY, hasIntentKeys, PINNED_LABEL, PREFIX } from '../intent/keys.js';
import { parseDual, parseIntent } from '../intent/parse.js';
import { type EgressMode, type Intent, type Problem } from '../intent/types.js';
import { addressList, formatDual, parseAddress } from '../net/address.js';
import type { EgressResult, Placement } from '../ipam/allocator.js';
import type { Claim, EgressOwner, Owner } from '../ipam/claim.js';
import type { Pool } from '../ipam/pool.js';
import { shown } from '../net/shown.js';
import { checkIntent, renderProblems, type AdmissionDeps, type CheckedIntent } from './context.js';
import { allowed, denied, patched, type Verdict } from './respond.js';
import type { AdmissionRequest, KubeObject } from './review.js';

/** Labels netpin puts on the pods it admits; nobody else may write or change them. */
const NETPIN_LABELS = [PINNED_LABEL, EGRESS_LABEL];

/**
 * netpin's labels on a new pod: absent, or what netpin sets (`expected`). netpin.io/egress is what
 * the CNI's egress resources (Antrea's Egress, Cilium's policy) select the pods of an egress address
 * by: written by hand it would join another workload's egress address.
 */
export function handWrittenLabels(
  labels: Record<string, string> | undefined,
  expected: Record<string, string>,
): Problem[] {
  return NETPIN_LABELS.filter((l) => labels?.[l] !== undefined && labels[l] !== expected[l]).map((label) => ({
    key: label,
    message: `is netpin's label, set here by hand to ${shown(labels![label]!)}: ${
      label === EGRESS_LABEL
        ? "the CNI's egress resources select the pods that share an egress address by it, so it would join another workload's egress address"
        : 'netpin sets it on the pods it pins an address for'
    }`,
    fix: `remove the label ${label}: netpin sets it${label === EGRESS_LABEL ? ' on the pods it gives an egress address (netpin.io/egress-pool or netpin.io/egress-ip)' : ''}`,
  }));
}

/**
 * A pod named `<sts>-<k>` whose controller is StatefulSet `<sts>` takes ordinal k's reserved address
 * and shares the StatefulSet's egress address. Anyone who may create a pod may write any
 * ownerReference, so the reference must name the live StatefulSet by its uid. Without a view that
 * knows StatefulSets (--ledger memory), there is nothing to check it against, and it is trusted.
 */
async function ownerProblems(pod: KubeObject, namespace: string, deps: AdmissionDeps): Promise<Problem[]> {
  const sts = statefulSetOf(pod);
  if (!sts || !deps.cluster.isLiveStatefulSet) return [];
  if (sts.uid !== undefined && (await deps.cluster.isLiveStatefulSet(namespace, sts.name, sts.uid))) return [];
  const name = shown(sts.name);
  return [
    {
      key: 'metadata.ownerReferences',
      message: `names StatefulSet ${name} with uid ${shown(sts.uid ?? '')} as the controller of pod ${shown(
        pod.metadata?.name ?? '',
      )}, and no live StatefulSet of namespace ${namespace} has that name and uid: a StatefulSet's pod takes its ordinal's reserved address, so only the StatefulSet's own pods may name it`,
      fix: `let StatefulSet ${name} create its pods, or remove the ownerReference: a pod of its own gets an address of its own`,
    },
  ];
}

/** netpin.io/allocated on a pod netpin pins no address for: nothing netpin gave, so nothing to check it against. */
const STRAY_ALLOCATED: Problem = {
  key: ALLOCATED_KEY,
  message: 'is set, but netpin pins no address for this pod',
  fix: 'do not write netpin.io/allocated by hand: netpin writes it',
};

/**
 * netpin's records on a pod without a netpin intent: written by hand (or copied from another pod),
 * they would hold an address in every replica's index that no claim stands for.
 */
function strayRecords(annotations: Record<string, string>): Problem[] {
  return [ALLOCATED_KEY, EGRESS_ALLOCATED_KEY]
    .filter((k) => annotations[k] !== undefined)
    .map((key) => ({
      key,
      message: "is set, but the pod has no netpin.io/ intent: it is netpin's record of what it gave",
      fix: `do not write ${key} by hand: netpin writes it`,
    }));
}

/**
 * Pod CREATE: refuse what the validating webhook would, then allocate and write the CNI's
 * annotations. UPDATE: re-render what the CNI applies live. DELETE: release, for the memory ledger.
 */
export async function mutatePod(req: AdmissionRequest, deps: AdmissionDeps): Promise<Verdict> {
  if (req.operation === 'DELETE') return releasePod(req, deps);
  if (req.operation === 'UPDATE') return mutatePodUpdate(req, deps);
  if (req.operation !== 'CREATE') return allowed();
  const pod = req.object!;
  const annotations = pod.metadata?.annotations;
  if (!hasIntentKeys(annotations)) {
    const stray = [...strayRecords(annotations ?? {}), ...handWrittenLabels(pod.metadata?.labels, {})];
    return stray.length ? denied(renderProblems(stray, deps.dialect)) : allowed();
  }

  const namespace = namespaceOf(req, pod);
  const forged = await ownerProblems(pod, namespace, deps);
  if (forged.length) return denied(renderProblems(forged, deps.dialect));
  const sts = statefulSetOf(pod);
  const shape = podShape(pod);
  // Everything that would refuse the pod is found before anything is claimed: a refused pod
  // must not hold an address, or a controller retrying it drains the pool.
  const { checked, problems } = await preflight(annotations, shape, namespace, deps, true);
  if (problems.length || !checked) return denied(renderProblems(problems, deps.dialect));
  const { intent, plan } = checked;

  let placement: Placement = { pools: plan.pools };
  let made: Claim[] = [];
  if (deps.dialect.pinsAddresses(intent, shape)) {
    const owner: Owner = sts
      ? { kind: 'StatefulSet', namespace, name: sts.name, ordinal: sts.ordinal }
      : { kind: 'Pod', namespace, name: pod.metadata?.name ?? '', uid: req.uid };
    const start = sts ? (deps.cluster.statefulSet(namespace, sts.name)?.ordinalsStart ?? 0) : 0;
    const result = await deps.allocator.allocate({
      intent,
      namespace,
      namespaceLabels: deps.cluster.namespaceLabels(namespace),
      owner,
      entry: sts && intent.ips ? sts.ordinal - start : undefined,
      dryRun: req.dryRun === true,
      plan,
    });
    if (!result.ok) return denied(renderProblems(result.problems, deps.dialect));
    placement = result.allocation;
    made = result.fresh;
  }

  if (intent.egress) {
    const given = await giveEgress(req, pod, intent, plan, deps);
    if (!given.ok) {
      for (const c of made) await deps.allocator.ledger.release(c);
      return denied(renderProblems(given.problems, deps.dialect));
    }
    placement = { ...placement, egress: given.addresses };
    made = [...made, ...given.fresh];
  }
  const rendering = deps.dialect.render(intent, shape, placement);
  const extraLabels = placement.addresses ? { ...rendering.labels, [PINNED_LABEL]: 'true' } : rendering.labels;
  // A race may have given another address than the preflight predicted; netpin's labels are known only now.
  const conflicts = [
    ...handWrittenProblems(annotations ?? {}, rendering.annotations, deps),
    ...handWrittenLabels(pod.metadata?.labels, extraLabels),
  ];
  if (conflicts.length) {
    for (const c of made) await deps.allocator.ledger.release(c);
    return denied(renderProblems(conflicts, deps.dialect));
  }
  const newAnnotations = { ...annotations, ...rendering.annotations };
  if (placement.addresses) newAnnotations[ALLOCATED_KEY] = formatDual(placement.addresses);
  if (placement.egress) newAnnotations[EGRESS_ALLOCATED_KEY] = formatDual(placement.egress);
  const labels = Object.keys(extraLabels).length ? { ...pod.metadata?.labels, ...extraLabels } : pod.metadata?.labels;
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

/** The pod's egress address: claimed for its egress owner when it comes from an egress pool. */
async function giveEgress(
  req: AdmissionRequest,
  pod: KubeObject,
  intent: Intent,
  plan: CheckedIntent['plan'],
  deps: AdmissionDeps,
): Promise<EgressResult> {
  const egress = intent.egress!;
  if (plan.egressPools.length === 0) return { ok: true, addresses: egress.ip!, fresh: [] };
  const namespace = namespaceOf(req, pod);
  return deps.allocator.allocateEgress({
    intent,
    namespace,
    namespaceLabels: deps.cluster.namespaceLabels(namespace),
    owner: egressOwner(pod, namespace, egress.mode, req.uid),
    dryRun: req.dryRun === true,
    plan,
  });
}

/**
 * Who shares a pod's egress address: the pods of its Deployment (or bare ReplicaSet), or of its
 * StatefulSet; in eip mode each ordinal has its own; a bare pod has its own.
 */
function egressOwner(pod: KubeObject, namespace: string, mode: EgressMode, uid: string): EgressOwner {
  const sts = statefulSetOf(pod);
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

/**
 * Pod CREATE and UPDATE, after every mutating webhook. CREATE: the values containerd parses
 * must be valid, and what netpin wrote must still be there, unchanged by hand or by another
 * webhook. UPDATE: what netpin wrote or pinned stays as it was for the pod's whole life.
 */
export async function validatePod(req: AdmissionRequest, deps: AdmissionDeps): Promise<Verdict> {
  if (req.operation === 'UPDATE') {
    const problems = updateProblems(req.oldObject ?? {}, req.object!, deps);
    return problems.length ? denied(renderProblems(problems, deps.dialect)) : allowed();
  }
  if (req.operation !== 'CREATE') return allowed();
  const pod = req.object!;
  const annotations = pod.metadata?.annotations ?? {};
  const problems: Problem[] = bandwidthProblems(annotations);
  if (!hasIntentKeys(annotations)) problems.push(...strayRecords(annotations));
  else problems.push(...(await ownerProblems(pod, namespaceOf(req, pod), deps)));
  const expected = hasIntentKeys(annotations)
    ? await expectedRendering(req, pod, deps, problems)
    : { annotations: {}, labels: {} };
  // When the pod is refused for what netpin cannot render, what it rendered would only be repeated back.
  if (expected) {
    problems.push(...handWrittenProblems(annotations, expected.annotations, deps));
    problems.push(...handWrittenLabels(pod.metadata?.labels, expected.labels));
  }
  if (problems.length) return denied(renderProblems(problems, deps.dialect));
  if (!req.dryRun) recordAllocation(req, pod, deps);
  return allowed();
}

/**
 * That the pod got addresses from netpin, once it exists. Told from the validating webhook: the mutating
 * one allocated, but the pod had no uid yet, and often no name (generateName); here it has both.
 */
function recordAllocation(req: AdmissionRequest, pod: KubeObject, deps: AdmissionDeps): void {
  const annotations = pod.metadata?.annotations ?? {};
  const index = deps.allocator.ledger.index;
  const from = (value: string | undefined) =>
    (value ?? '').split(',').flatMap((text) => {
      const ip = parseAddress(text.trim());
      const pool = ip && index.poolOf(ip);
      return ip ? [pool ? `${ip.toString()} from IPPool ${pool.name}` : ip.toString()] : [];
    });
  const pinned = from(annotations[ALLOCATED_KEY]);
  const given = [...pinned, ...from(annotations[EGRESS_ALLOCATED_KEY]).map((a) => `egress address ${a}`)];
  if (given.length === 0) return;
  const sts = pinned.length ? statefulSetOf(pod) : undefined;
  deps.events?.recordWhenCreated({
    regarding: {
      apiVersion: 'v1',
      kind: 'Pod',
      namespace: namespaceOf(req, pod),
      name: pod.metadata?.name ?? '',
      uid: pod.metadata?.uid,
    },
    type: 'Normal',
    reason: 'Allocated',
    action: 'Allocate',
    note: `Allocated ${given.join(', ')}${sts ? ` (the reservation of StatefulSet ${sts.name}, ordinal ${sts.ordinal})` : ''}`,
  });
}

/**
 * What a pod, or a workload's pod template, with these annotations would be refused for at
 * CREATE, found without claiming: containerd's bandwidth values, the intent (syntax, the CNI,
 * pools and namespace), and CNI annotations written by hand. `rendersAfter`: the caller renders
 * and checks hand-written annotations itself once it has claimed, so the dry render here is needed
 * only when there is a claim to spare.
 */
export async function preflight(
  annotations: Record<string, string> | undefined,
  shape: WorkloadShape,
  namespace: string,
  deps: AdmissionDeps,
  rendersAfter = false,
) {
  const a = annotations ?? {};
  const problems = bandwidthProblems(a);
  if (!hasIntentKeys(a)) {
    problems.push(...strayRecords(a), ...handWrittenProblems(a, {}, deps));
    return { checked: undefined, problems };
  }
  const checked = await checkIntent(a, shape, namespace, deps);
  problems.push(...checked.problems);
  // The validating webhook refuses it; the mutating one leaves it in place when it pins nothing.
  if (
    checked.problems.length === 0 &&
    a[ALLOCATED_KEY] !== undefined &&
    !deps.dialect.pinsAddresses(checked.intent, shape)
  )
    problems.push(STRAY_ALLOCATED);
  const claims = deps.dialect.pinsAddresses(checked.intent, shape) || checked.intent.egress !== undefined;
  if (checked.problems.length === 0 && (claims || !rendersAfter)) {
    const expected = deps.dialect.render(
      checked.intent,
      shape,
      await predictedPlacement(a, checked, shape, namespace, deps),
    ).annotations;
    problems.push(...handWrittenProblems(a, expected, deps));
  }
  return { checked, problems };
}

/**
 * The placement a pod would get, for judging placement keys written by hand: only then is it
 * worth a dry-run allocation, since without addresses nothing else netpin renders differs.
 */
async function predictedPlacement(
  annotations: Record<string, string>,
  checked: CheckedIntent,
  shape: WorkloadShape,
  namespace: string,
  deps: AdmissionDeps,
): Promise<Placement> {
  const { intent, plan } = checked;
  const handWritten = placementKeysIn(annotations, deps.dialect).length > 0;
  if (!handWritten || !deps.dialect.pinsAddresses(intent, shape)) return { pools: plan.pools };
  const preview = await deps.allocator.allocate({
    intent,
    namespace,
    namespaceLabels: deps.cluster.namespaceLabels(namespace),
    owner: { kind: 'Pod', namespace, name: '' },
    dryRun: true,
    plan,
  });
  return preview.ok ? preview.allocation : { pools: plan.pools };
}

/**
 * The annotations and netpin's labels the netpin intent renders for this pod, checked against what
 * the pod carries; problems go to `problems`. Undefined when it cannot be told, which is a problem.
 */
async function expectedRendering(
  req: AdmissionRequest,
  pod: KubeObject,
  deps: AdmissionDeps,
  problems: Problem[],
): Promise<{ annotations: Record<string, string>; labels: Record<string, string> } | undefined> {
  const annotations = pod.metadata?.annotations ?? {};
  const shape = podShape(pod);
  const checked = await checkIntent(annotations, shape, namespaceOf(req, pod), deps);
  problems.push(...checked.problems);
  if (checked.problems.length) return undefined;
  const pins = deps.dialect.pinsAddresses(checked.intent, shape);
  if (!pins && annotations[ALLOCATED_KEY] !== undefined) {
    problems.push(STRAY_ALLOCATED);
    return undefined;
  }
  if (pins && annotations[ALLOCATED_KEY] === undefined) {
    problems.push({
      key: ALLOCATED_KEY,
      message: 'netpin has not pinned this pod: its mutating webhook did not run',
      fix: 'check that the MutatingWebhookConfiguration of netpin selects this namespace, then create the pod again',
    });
    return undefined;
  }
  if (checked.intent.egress?.pools && annotations[EGRESS_ALLOCATED_KEY] === undefined) {
    problems.push({
      key: EGRESS_ALLOCATED_KEY,
      message: 'netpin has not given this pod its egress address: its mutating webhook did not run',
      fix: 'check that the MutatingWebhookConfiguration of netpin selects this namespace, then create the pod again',
    });
    return undefined;
  }
  const placement = placementOf(annotations, checked.intent, checked.plan.pools, deps);
  if (typeof placement === 'string') {
    problems.push({
      key: ALLOCATED_KEY,
      message: placement,
      fix: 'do not write netpin.io/allocated by hand: netpin writes it',
    });
    return undefined;
  }
  const rendering = deps.dialect.render(checked.intent, shape, placement);
  const expected = rendering.annotations;
  for (const key of Object.keys(expected).filter((k) => annotations[k] === undefined)) {
    problems.push({
      key,
      message: 'is missing although the netpin intent needs it: another webhook removed it',
      fix: 'find the webhook that strips annotations, or remove the netpin.io/ annotations',
    });
  }
  const labels = placement.addresses ? { ...rendering.labels, [PINNED_LABEL]: 'true' } : rendering.labels;
  return { annotations: expected, labels };
}

/**
 * Where a pod's addresses came from: netpin.io/allocated and the pools holding it, else the pools
 * named; its egress from netpin.io/egress-allocated, else the fixed netpin.io/egress-ip.
 */
function placementOf(
  annotations: Record<string, string>,
  intent: Intent,
  named: Pool[],
  deps: AdmissionDeps,
): Placement | string {
  const recorded = annotations[EGRESS_ALLOCATED_KEY];
  const egress = recorded === undefined ? intent.egress?.ip : parseDual(recorded);
  if (typeof egress === 'string') return egress;
  const allocated = annotations[ALLOCATED_KEY];
  if (allocated === undefined) return { pools: named, ...(egress && { egress }) };
  const addresses = parseDual(allocated);
  if (typeof addresses === 'string') return addresses;
  const index = deps.allocator.ledger.index;
  return {
    addresses,
    pools: addressList(addresses)
      .map((a) => index.poolOf(a))
      .filter((p): p is Pool => p !== undefined),
    ...(egress && { egress }),
  };
}

/**
 * Whether `key` is one of the CNI's placement keys. `*.` at the start of one stands for any prefix
 * that ends in a dot: Kube-OVN's per-attachment keys `<nad>.<namespace>.ovn.kubernetes.io/ip_address`.
 */
function isPlacementKey(key: string, dialect: Dialect): boolean {
  return dialect.placementKeys.some((k) =>
    k.startsWith('*.') ? key.length > k.length - 1 && key.endsWith(k.slice(1)) : key === k,
  );
}

/** The placement keys a pod's annotations hold. */
function placementKeysIn(annotations: Record<string, string>, dialect: Dialect): string[] {
  return Object.keys(annotations).filter((k) => isPlacementKey(k, dialect));
}

/**
 * CNI annotations the user wrote by hand: a placement key netpin does not write here would bypass
 * the ledger and the pools' namespaceSelectors, so another owner could be handed the same address;
 * any other rendered key must hold what the intent renders.
 */
function handWrittenProblems(
  annotations: Record<string, string>,
  expected: Record<string, string>,
  deps: AdmissionDeps,
): Problem[] {
  const problems: Problem[] = [];
  for (const key of placementKeysIn(annotations, deps.dialect)) {
    if (expected[key] === undefined) {
      problems.push({
        key,
        message: `is written by hand, so netpin's ledger does not know the address and no IPPool namespaceSelector applies`,
        fix: 'write netpin.io/ip, netpin.io/ips or netpin.io/pool instead (netpin.io/egress-ip or netpin.io/egress-pool for an egress address), and netpin writes this annotation',
      });
    }
  }
  for (const [key, value] of Object.entries(expected)) {
    if (annotations[key] !== undefined && annotations[key] !== value) {
      problems.push({
        key,
        message: `is set by hand to ${shown(annotations[key])}, but the netpin intent needs ${shown(value)}`,
        fix: `remove ${key} and let netpin write it, or remove the netpin.io/ annotations`,
      });
    }
  }
  return problems;
}

/** Pod UPDATE, mutating: a changed value the CNI applies live is rendered again; anything else netpin's is refused. */
function mutatePodUpdate(req: AdmissionRequest, deps: AdmissionDeps): Verdict {
  const before = req.oldObject ?? {};
  const after = req.object!;
  const live = liveIntent(before, after, deps);
  if (!live) {
    const problems = updateProblems(before, after, deps);
    return problems.length ? denied(renderProblems(problems, deps.dialect)) : allowed();
  }
  if (live.problems.length) return denied(renderProblems(live.problems, deps.dialect));
  const { intent } = live;
  const annotations = { ...after.metadata?.annotations };
  // Where the pod's addresses are stays as it is, with what the CNI wrote back: no live key moves it.
  const again = (key: string) => !isPlacementKey(key, deps.dialect);
  for (const key of Object.keys(renderedFor(before, deps)).filter(again)) delete annotations[key];
  const placement = placementFor(annotations, intent, deps);
  const rendered = deps.dialect.render(
    intent,
    podShape(after),
    typeof placement === 'string' ? { pools: [] } : placement,
  );
  for (const [key, value] of Object.entries(rendered.annotations)) if (again(key)) annotations[key] = value;
  const mutated: KubeObject = { ...after, metadata: { ...after.metadata, annotations } };
  const problems = updateProblems(before, mutated, deps);
  if (problems.length) return denied(renderProblems(problems, deps.dialect));
  return patched(
    after,
    mutated,
    rendered.warnings.map((w) => `netpin: ${w}`),
  );
}

/**
 * The new intent of a running pod whose live keys changed, checked against the CNI; undefined
 * when no live key changed. Other changes are left to updateProblems.
 */
function liveIntent(
  before: KubeObject,
  after: KubeObject,
  deps: AdmissionDeps,
): { intent: Intent; problems: Problem[] } | undefined {
  const changed = changedKeys(before.metadata?.annotations, after.metadata?.annotations).filter((k) =>
    deps.dialect.liveKeys.includes(k),
  );
  if (changed.length === 0) return undefined;
  const { intent, problems } = parseIntent(after.metadata?.annotations);
  if (problems.length) return { intent, problems };
  // The CNI judges the intent with the pools of what netpin gave the pod: its egress address lies in one.
  const placement = placementFor(after.metadata?.annotations ?? {}, intent, deps);
  const index = deps.allocator.ledger.index;
  const given = typeof placement === 'string' ? { pools: [] } : placement;
  const egressPools = addressList(given.egress ?? {}).flatMap((a) => index.poolOf(a) ?? []);
  problems.push(...deps.dialect.check(intent, podShape(after), given.pools, egressPools));
  return { intent, problems };
}

/**
 * What a running pod may not change: netpin's intent and record (but for the keys its CNI
 * applies live), its labels, the CNI's placement keys (but for the CNI's own write-back),
 * and every key netpin rendered, which must keep what the intent renders.
 */
function updateProblems(before: KubeObject, after: KubeObject, deps: AdmissionDeps): Problem[] {
  const a0 = before.metadata?.annotations ?? {};
  const a1 = after.metadata?.annotations ?? {};
  const recreate =
    'delete the pod and create it again with the new value; for a Deployment or StatefulSet, change its pod template and let it roll out';
  const problems: Problem[] = [];
  const changed = changedKeys(a0, a1);
  for (const key of changed.filter((k) => k.startsWith(PREFIX) && !deps.dialect.liveKeys.includes(k))) {
    problems.push({
      key,
      message: `cannot change on a running pod: ${key === ALLOCATED_KEY ? "it records the addresses netpin's ledger holds for this pod" : `${deps.dialect.title} reads it only when the pod is created`}`,
      fix: recreate,
    });
  }
  const l0 = before.metadata?.labels ?? {};
  const l1 = after.metadata?.labels ?? {};
  for (const label of NETPIN_LABELS.filter((l) => l0[l] !== l1[l])) {
    problems.push({
      key: label,
      message: 'is a label netpin set on this pod and cannot change on a running pod',
      fix: `restore ${label}=${l0[label] ?? '(absent)'}, or ${recreate}`,
    });
  }
  const rendered = renderedFor(after, deps);
  const owned = new Set([...Object.keys(renderedFor(before, deps)), ...Object.keys(rendered)]);
  for (const key of changed.filter((k) => !k.startsWith(PREFIX))) {
    const placement = isPlacementKey(key, deps.dialect);
    if (!placement && !owned.has(key)) continue;
    if (placement ? deps.dialect.isWriteBack(key, rendered[key], a0[key], a1[key]) : a1[key] === rendered[key]) {
      if (placement) problems.push(...writeBackProblems(key, a1[key]!, a1[ALLOCATED_KEY], deps));
      continue;
    }
    problems.push({
      key,
      message: `cannot change on a running pod: ${placement ? `${deps.dialect.title} reads it only when the pod is created` : 'netpin wrote it from the netpin.io/ annotations'}`,
      fix: recreate,
    });
  }
  problems.push(
    ...bandwidthProblems(Object.fromEntries(changed.filter((k) => a1[k] !== undefined).map((k) => [k, a1[k]!]))),
  );
  return problems;
}

/**
 * What the CNI writes back names only addresses netpin gave the pod (netpin.io/allocated), or ones of
 * no netpin pool, which the CNI's own IPAM gave: a pod must not name, and so be counted as using, an
 * address of a pool that netpin may give another.
 */
function writeBackProblems(key: string, value: string, allocated: string | undefined, deps: AdmissionDeps): Problem[] {
  const given = new Set((allocated ?? '').split(',').map((a) => parseAddress(a)?.toString()));
  const index = deps.allocator.ledger.index;
  return value.split(',').flatMap((text) => {
    const ip = parseAddress(text);
    const pool = ip && !given.has(ip.toString()) ? index.poolOf(ip) : undefined;
    if (!ip || !pool) return [];
    return [
      {
        key,
        message: `names ${ip.toString()}, an address of IPPool ${pool.name} that netpin did not give this pod: ${deps.dialect.title} writes back the addresses the pod was given, and of another family only one from its own IPAM`,
        fix: `remove ${ip.toString()} from ${key}: a pod gets an address of IPPool ${pool.name} when it is created with netpin.io/ip or netpin.io/pool. If ${deps.dialect.title} picked it by itself, keep IPPool ${pool.name}'s range out of what ${deps.dialect.title} assigns`,
      },
    ];
  });
}

/** The CNI annotations netpin renders for a pod as it stands; none when its intent does not parse. */
function renderedFor(pod: KubeObject, deps: AdmissionDeps): Record<string, string> {
  const annotations = pod.metadata?.annotations ?? {};
  if (!hasIntentKeys(annotations)) return {};
  const { intent, problems } = parseIntent(annotations);
  if (problems.length) return {};
  const placement = placementFor(annotations, intent, deps);
  return typeof placement === 'string' ? {} : deps.dialect.render(intent, podShape(pod), placement).annotations;
}

/** placementOf for a pod already admitted, whose named pools are looked up again. */
function placementFor(annotations: Record<string, string>, intent: Intent, deps: AdmissionDeps): Placement | string {
  const index = deps.allocator.ledger.index;
  return placementOf(
    annotations,
    intent,
    (intent.pools ?? []).map((n) => index.pool(n)).filter((p): p is Pool => p !== undefined),
    deps,
  );
}

function changedKeys(a: Record<string, string> | undefined, b: Record<string, string> | undefined): string[] {
  const x = a ?? {};
  const y = b ?? {};
  return [...new Set([...Object.keys(x), ...Object.keys(y)])].filter((k) => x[k] !== y[k]);
}

async function releasePod(req: AdmissionRequest, deps: AdmissionDeps): Promise<Verdict> {
  const pod = req.oldObject;
  if (!deps.releaseOnDelete || req.dryRun || !pod || statefulSetOf(pod)) return allowed();
  const namespace = namespaceOf(req, pod);
  const index = deps.allocator.ledger.index;
  const mine = new Set((pod.metadata?.annotations?.[ALLOCATED_KEY] ?? '').split(','));
  const own = (o: Owner) =>
    (o.kind === 'Pod' || (o.kind === 'Egress' && o.workload === 'Pod')) && o.namespace === namespace;
  for (const claim of [...index.allClaims()]) {
    if (
      own(claim.owner) &&
      (claim.owner.name === req.name || (claim.owner.kind === 'Pod' && mine.has(claim.ip.toString())))
    ) {
      await deps.allocator.ledger.release(claim);
    }
  }
  return allowed();
}

function namespaceOf(req: AdmissionRequest, pod: KubeObject): string {
  return req.namespace ?? pod.metadata?.namespace ?? 'default';
}

function podShape(pod: KubeObject): WorkloadShape {
  return { kind: 'Pod', replicas: 1, statefulSet: statefulSetOf(pod) !== undefined };
}

/**
 * The StatefulSet the pod names as its controller and its ordinal, from the owner reference and the
 * `<sts>-<k>` name; `uid` is the reference's, which ownerProblems holds against the live StatefulSet.
 */
function statefulSetOf(pod: KubeObject): { name: string; ordinal: number; uid?: string } | undefined {
  const ref = pod.metadata?.ownerReferences?.find((r) => r.controller && r.kind === 'StatefulSet');
  const name = pod.metadata?.name;
  if (!ref || !name?.startsWith(`${ref.name}-`)) return undefined;
  const suffix = name.slice(ref.name.length + 1);
  return /^(0|[1-9]\d*)$/.test(suffix) ? { name: ref.name, ordinal: Number(suffix), uid: ref.uid } : undefined;
}
