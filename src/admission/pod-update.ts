import { bandwidthProblems } from '../cni/bandwidth.js';
import { ALLOCATED_KEY, PREFIX } from '../intent/keys.js';
import type { Problem } from '../intent/types.js';
import { addressList, parseAddress } from '../net/address.js';
import { isPlacementKey, NETPIN_LABELS } from './checks.js';
import type { Admit } from './context.js';
import { viewStanding, type StandingPod } from './pod-view.js';
import { allowed, patched, refused, type Verdict } from './respond.js';
import type { AdmissionRequest, KubeObject } from './review.js';

const RECREATE =
  'delete the pod and create it again with the new value; for a Deployment or StatefulSet, change its pod template and let it roll out';

/** Pod UPDATE, validating: what netpin wrote or pinned stays as it was for the pod's whole life. */
export function validatePodUpdate(req: AdmissionRequest, admit: Admit): Verdict {
  const before = viewStanding(req, req.oldObject ?? {}, admit);
  const after = viewStanding(req, req.object!, admit);
  const problems = updateProblems(before, after, after.annotations, admit);
  return problems.length ? refused(problems) : allowed();
}

/** Pod UPDATE, mutating: a changed value the CNI applies live is rendered again; anything else netpin's is refused. */
export function mutatePodUpdate(req: AdmissionRequest, admit: Admit): Verdict {
  const before = viewStanding(req, req.oldObject ?? {}, admit);
  const after = viewStanding(req, req.object!, admit);
  const { dialect } = admit;
  const changed = changedKeys(before.annotations, after.annotations).filter((k) => dialect.liveKeys.includes(k));
  if (changed.length === 0) {
    const problems = updateProblems(before, after, after.annotations, admit);
    return problems.length ? refused(problems) : allowed();
  }
  const live = liveProblems(after, admit);
  if (live.length) return refused(live);
  const annotations = { ...after.pod.metadata?.annotations };
  // Where the pod's addresses are stays as it is, with what the CNI wrote back: no live key moves it.
  const again = (key: string) => !isPlacementKey(key, dialect);
  for (const key of Object.keys(before.rendering?.annotations ?? {}).filter(again)) delete annotations[key];
  // A pod whose intent went, or whose record does not parse, renders what is left of its intent.
  const rendered =
    after.rendering ??
    dialect.render(
      after.parsed.intent,
      after.shape,
      typeof after.placement === 'string' ? { pools: [] } : after.placement,
    );
  for (const [key, value] of Object.entries(rendered.annotations)) if (again(key)) annotations[key] = value;
  const mutated: KubeObject = { ...after.pod, metadata: { ...after.pod.metadata, annotations } };
  // The mutated pod differs from `after` only in the CNI's keys: same intent, records and rendering.
  const problems = updateProblems(before, after, annotations, admit);
  if (problems.length) return refused(problems);
  return patched(
    after.pod,
    mutated,
    rendered.warnings.map((w) => `netpin: ${w}`),
  );
}

/**
 * What the CNI says of a running pod's new intent, after a live key changed: judged with the pools
 * of what netpin gave the pod, its egress address lying in one. Other changes are updateProblems'.
 */
function liveProblems(after: StandingPod, admit: Admit): Problem[] {
  const { intent, problems } = after.parsed;
  if (problems.length) return problems;
  const given = typeof after.placement === 'string' ? { pools: [] } : after.placement;
  const egressPools = addressList(given.egress ?? {}).flatMap((a) => admit.index.poolOf(a) ?? []);
  return admit.dialect.check(intent, after.shape, given.pools, egressPools);
}

/**
 * What a running pod may not change: netpin's intent and record (but for the keys its CNI
 * applies live), its labels, the CNI's placement keys (but for the CNI's own write-back),
 * and every key netpin rendered, which must keep what the intent renders. `a1`: the annotations
 * the pod is to have, `after`'s or the mutated ones.
 */
function updateProblems(before: StandingPod, after: StandingPod, a1: Record<string, string>, admit: Admit): Problem[] {
  const { dialect } = admit;
  const a0 = before.annotations;
  const problems: Problem[] = [];
  const changed = changedKeys(a0, a1);
  for (const key of changed.filter((k) => k.startsWith(PREFIX) && !dialect.liveKeys.includes(k))) {
    problems.push({
      key,
      message: `cannot change on a running pod: ${key === ALLOCATED_KEY ? "it records the addresses netpin's ledger holds for this pod" : `${dialect.title} reads it only when the pod is created`}`,
      fix: RECREATE,
    });
  }
  const l0 = before.labels ?? {};
  const l1 = after.labels ?? {};
  for (const label of NETPIN_LABELS.filter((l) => l0[l] !== l1[l])) {
    problems.push({
      key: label,
      message: 'is a label netpin set on this pod and cannot change on a running pod',
      fix: `restore ${label}=${l0[label] ?? '(absent)'}, or ${RECREATE}`,
    });
  }
  const rendered = after.rendering?.annotations ?? {};
  const owned = new Set([...Object.keys(before.rendering?.annotations ?? {}), ...Object.keys(rendered)]);
  for (const key of changed.filter((k) => !k.startsWith(PREFIX))) {
    const placement = isPlacementKey(key, dialect);
    if (!placement && !owned.has(key)) continue;
    if (placement ? dialect.isWriteBack(key, rendered[key], a0[key], a1[key]) : a1[key] === rendered[key]) {
      if (placement) problems.push(...writeBackProblems(key, a1[key]!, a1[ALLOCATED_KEY], admit));
      continue;
    }
    problems.push({
      key,
      message: `cannot change on a running pod: ${placement ? `${dialect.title} reads it only when the pod is created` : 'netpin wrote it from the netpin.io/ annotations'}`,
      fix: RECREATE,
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
function writeBackProblems(key: string, value: string, allocated: string | undefined, admit: Admit): Problem[] {
  const given = new Set((allocated ?? '').split(',').map((a) => parseAddress(a)?.toString()));
  const { title } = admit.dialect;
  return value.split(',').flatMap((text) => {
    const ip = parseAddress(text);
    const pool = ip && !given.has(ip.toString()) ? admit.index.poolOf(ip) : undefined;
    if (!ip || !pool) return [];
    return [
      {
        key,
        message: `names ${ip.toString()}, an address of IPPool ${pool.name} that netpin did not give this pod: ${title} writes back the addresses the pod was given, and of another family only one from its own IPAM`,
        fix: `remove ${ip.toString()} from ${key}: a pod gets an address of IPPool ${pool.name} when it is created with netpin.io/ip or netpin.io/pool. If ${title} picked it by itself, keep IPPool ${pool.name}'s range out of what ${title} assigns`,
      },
    ];
  });
}

function changedKeys(a: Record<string, string>, b: Record<string, string>): string[] {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => a[k] !== b[k]);
}
