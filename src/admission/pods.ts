import { ALLOCATED_KEY, hasIntentKeys, PINNED_LABEL } from '../intent/keys.js';
import { parseDual, parseRate } from '../intent/parse.js';
import { addressList, formatDual, type Problem } from '../intent/types.js';
import type { Pool } from '../ipam/pool.js';
import type { Claim, Owner } from '../ipam/ledger.js';
import { checkIntent, renderProblems, type AdmissionDeps } from './context.js';
import { allowed, denied, patched, type Verdict } from './respond.js';
import type { AdmissionRequest, KubeObject } from './review.js';

const BANDWIDTH_KEYS = ['kubernetes.io/ingress-bandwidth', 'kubernetes.io/egress-bandwidth'];

/** Pod CREATE: allocate, then write the CNI's annotations. DELETE: release, for the memory ledger. */
export async function mutatePod(req: AdmissionRequest, deps: AdmissionDeps): Promise<Verdict> {
  if (req.operation === 'DELETE') return releasePod(req, deps);
  if (req.operation !== 'CREATE') return allowed();
  const pod = req.object!;
  const annotations = pod.metadata?.annotations;
  if (!hasIntentKeys(annotations)) return allowed();

  const namespace = req.namespace ?? pod.metadata?.namespace ?? 'default';
  const sts = statefulSetOf(pod);
  const shape = { kind: 'Pod', replicas: 1, statefulSet: sts !== undefined } as const;
  const { intent, pools, plan, problems } = checkIntent(annotations, shape, namespace, deps);
  if (problems.length) return denied(renderProblems(problems, deps.dialect));

  let allocation;
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
    allocation = result.allocation;
    made = result.fresh;
  }

  const rendering = deps.dialect.render(intent, allocation?.pools ?? pools, allocation);
  const conflicts = handWritten(annotations ?? {}, rendering.annotations);
  if (conflicts.length) {
    // The pod will not be created: give back what this request claimed, or it would be held for nothing.
    for (const c of made) await deps.allocator.ledger.release(c);
    return denied(renderProblems(conflicts, deps.dialect));
  }
  const newAnnotations = { ...annotations, ...rendering.annotations };
  if (allocation) newAnnotations[ALLOCATED_KEY] = formatDual(allocation.addresses);
  const extraLabels = allocation ? { ...rendering.labels, [PINNED_LABEL]: 'true' } : rendering.labels;
  const labels = Object.keys(extraLabels).length ? { ...pod.metadata?.labels, ...extraLabels } : pod.metadata?.labels;
  const mutated: KubeObject = { ...pod, metadata: { ...pod.metadata, annotations: newAnnotations, ...(labels ? { labels } : {}) } };
  return patched(pod, mutated, rendering.warnings.map((w) => `netpin: ${w}`));
}

/**
 * Pod CREATE, after every mutating webhook: the values containerd parses must be
 * valid, and what netpin wrote must still be there, unchanged by hand or by another webhook.
 */
export function validatePod(req: AdmissionRequest, deps: AdmissionDeps): Verdict {
  if (req.operation !== 'CREATE') return allowed();
  const pod = req.object!;
  const annotations = pod.metadata?.annotations ?? {};
  const problems: Problem[] = bandwidthProblems(annotations);
  const expected = hasIntentKeys(annotations) ? expectedAnnotations(req, pod, deps, problems) : {};
  for (const key of deps.dialect.addressKeys) {
    // In an opted-in namespace, an address or pool chosen by hand would bypass the ledger and the
    // pools' namespaceSelectors: another owner could be handed the same address.
    if (annotations[key] !== undefined && expected[key] === undefined) {
      problems.push({
        key,
        message: `is written by hand, so netpin's ledger does not know the address and no IPPool namespaceSelector applies`,
        fix: 'write netpin.io/ip, netpin.io/ips or netpin.io/pool instead, and netpin writes this annotation',
      });
    }
  }
  return problems.length ? denied(renderProblems(problems, deps.dialect)) : allowed();
}

/** What the netpin intent renders for this pod, checked against what the pod carries; problems go to `problems`. */
function expectedAnnotations(req: AdmissionRequest, pod: KubeObject, deps: AdmissionDeps, problems: Problem[]): Record<string, string> {
  const annotations = pod.metadata?.annotations ?? {};
  const namespace = req.namespace ?? pod.metadata?.namespace ?? 'default';
  const shape = { kind: 'Pod', replicas: 1, statefulSet: statefulSetOf(pod) !== undefined } as const;
  const checked = checkIntent(annotations, shape, namespace, deps);
  problems.push(...checked.problems);
  if (checked.problems.length) return {};
  const pins = deps.dialect.pinsAddresses(checked.intent, shape);
  const allocated = annotations[ALLOCATED_KEY];
  if (pins && allocated === undefined) {
    problems.push({ key: ALLOCATED_KEY, message: 'netpin has not pinned this pod: its mutating webhook did not run', fix: 'check that the MutatingWebhookConfiguration of netpin selects this namespace, then create the pod again' });
    return {};
  }
  const addresses = pins ? parseDual(allocated!) : undefined;
  if (typeof addresses === 'string') {
    problems.push({ key: ALLOCATED_KEY, message: addresses, fix: 'do not write netpin.io/allocated by hand: netpin writes it' });
    return {};
  }
  const index = deps.allocator.ledger.index;
  const allocation = addresses && {
    addresses,
    pools: addressList(addresses).map((a) => index.poolOf(a)).filter((p): p is Pool => p !== undefined),
  };
  const expected = deps.dialect.render(checked.intent, allocation?.pools ?? checked.pools, allocation).annotations;
  for (const key of Object.keys(expected).filter((k) => annotations[k] === undefined)) {
    problems.push({ key, message: 'is missing although the netpin intent needs it: another webhook removed it', fix: 'find the webhook that strips annotations, or remove the netpin.io/ annotations' });
  }
  problems.push(...handWritten(annotations, expected));
  return expected;
}

/** CNI keys the user wrote by hand that disagree with what the intent renders. */
function handWritten(annotations: Record<string, string>, rendered: Record<string, string>): Problem[] {
  return Object.entries(rendered)
    .filter(([key, value]) => annotations[key] !== undefined && annotations[key] !== value)
    .map(([key, value]) => ({
      key,
      message: `is set by hand to ${JSON.stringify(annotations[key])}, but the netpin intent needs ${JSON.stringify(value)}`,
      fix: `remove ${key} and let netpin write it, or remove the netpin.io/ annotations`,
    }));
}

/** containerd refuses the whole sandbox for a bad value here, under every CNI, long after admission. */
export function bandwidthProblems(annotations: Record<string, string>): Problem[] {
  const out: Problem[] = [];
  for (const key of BANDWIDTH_KEYS) {
    const v = annotations[key];
    const r = v === undefined ? undefined : parseRate(v);
    if (typeof r === 'string') {
      out.push({ key, message: `${r}, so containerd would refuse the pod sandbox`, fix: 'write bits per second as a quantity such as 10M, or use netpin.io/ingress-rate and netpin.io/egress-rate' });
    }
  }
  return out;
}

async function releasePod(req: AdmissionRequest, deps: AdmissionDeps): Promise<Verdict> {
  const pod = req.oldObject;
  if (!deps.releaseOnDelete || req.dryRun || !pod || statefulSetOf(pod)) return allowed();
  const namespace = req.namespace ?? pod.metadata?.namespace ?? 'default';
  const index = deps.allocator.ledger.index;
  const mine = new Set((pod.metadata?.annotations?.[ALLOCATED_KEY] ?? '').split(','));
  for (const claim of [...index.allClaims()]) {
    if (claim.owner.kind === 'Pod' && claim.owner.namespace === namespace && (claim.owner.name === req.name || mine.has(claim.ip.toString()))) {
      await deps.allocator.ledger.release(claim);
    }
  }
  return allowed();
}

/** The StatefulSet that controls this pod and its ordinal, from the owner reference and the `<sts>-<k>` name. */
export function statefulSetOf(pod: KubeObject): { name: string; ordinal: number } | undefined {
  const ref = pod.metadata?.ownerReferences?.find((r) => r.controller && r.kind === 'StatefulSet');
  const name = pod.metadata?.name;
  if (!ref || !name?.startsWith(`${ref.name}-`)) return undefined;
  const suffix = name.slice(ref.name.length + 1);
  return /^(0|[1-9]\d*)$/.test(suffix) ? { name: ref.name, ordinal: Number(suffix) } : undefined;
}
