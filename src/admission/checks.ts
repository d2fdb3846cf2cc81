// The checks a pod and a workload's pod template share: what a pod of the template would be refused
// for at CREATE is said when the template is applied, with the same words.
import { bandwidthProblems } from '../cni/bandwidth.js';
import type { Dialect, Rendering, WorkloadShape } from '../cni/dialect.js';
import { EGRESS_LABEL } from '../cni/egress.js';
import { ALLOCATED_KEY, EGRESS_ALLOCATED_KEY, hasIntentKeys, IPAM_KEY, PINNED_LABEL } from '../intent/keys.js';
import type { ParsedIntent } from '../intent/parse.js';
import type { Problem } from '../intent/types.js';
import type { Placement } from '../ipam/allocator.js';
import { shown } from '../net/shown.js';
import { checkIntent, type Admit, type CheckedIntent } from './context.js';
import type { PodView } from './pod-view.js';

/** Labels netpin puts on the pods it admits; nobody else may write or change them. */
export const NETPIN_LABELS = [PINNED_LABEL, EGRESS_LABEL];

/** The labels netpin sets on a pod: the CNI's, and netpin.io/pinned when it pinned addresses. */
export function netpinLabels(rendering: Rendering, placement: Placement): Record<string, string> {
  return placement.addresses ? { ...rendering.labels, [PINNED_LABEL]: 'true' } : rendering.labels;
}

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
 * and shares the StatefulSet's egress address; a DaemonSet's pod for a node takes the node's reserved
 * address. Anyone who may create a pod may write any ownerReference, so the reference must name the
 * live workload by its uid. Without a view that knows them (--ledger memory), there is nothing to
 * check it against, and it is trusted.
 */
export async function ownerProblems(view: PodView, admit: Admit): Promise<Problem[]> {
  const { daemonSet: ds, statefulSet: sts } = view;
  if (ds)
    return liveOwnerProblems(view, 'DaemonSet', ds, "its node's", admit.cluster.isLiveDaemonSet?.bind(admit.cluster));
  if (sts)
    return liveOwnerProblems(
      view,
      'StatefulSet',
      sts,
      "its ordinal's",
      admit.cluster.isLiveStatefulSet?.bind(admit.cluster),
    );
  return [];
}

type IsLive = (namespace: string, name: string, uid: string) => Promise<boolean>;

async function liveOwnerProblems(
  view: PodView,
  kind: 'StatefulSet' | 'DaemonSet',
  ref: { name: string; uid?: string },
  whose: string,
  isLive: IsLive | undefined,
): Promise<Problem[]> {
  if (!isLive) return [];
  if (ref.uid !== undefined && (await isLive(view.namespace, ref.name, ref.uid))) return [];
  const name = shown(ref.name);
  return [
    {
      key: 'metadata.ownerReferences',
      message: `names ${kind} ${name} with uid ${shown(ref.uid ?? '')} as the controller of pod ${shown(
        view.pod.metadata?.name ?? '',
      )}, and no live ${kind} of namespace ${view.namespace} has that name and uid: a ${kind}'s pod takes ${whose} reserved address, so only the ${kind}'s own pods may name it`,
      fix: `let ${kind} ${name} create its pods, or remove the ownerReference: a pod of its own gets an address of its own`,
    },
  ];
}

/** netpin.io/allocated on a pod netpin pins no address for: nothing netpin gave, so nothing to check it against. */
export const STRAY_ALLOCATED: Problem = {
  key: ALLOCATED_KEY,
  message: 'is set, but netpin pins no address for this pod',
  fix: 'do not write netpin.io/allocated by hand: netpin writes it',
};

/**
 * netpin's records on a pod without a netpin intent: written by hand (or copied from another pod),
 * they would hold an address in every replica's index that no claim stands for.
 */
export function strayRecords(annotations: Record<string, string>): Problem[] {
  return [ALLOCATED_KEY, EGRESS_ALLOCATED_KEY, IPAM_KEY]
    .filter((k) => annotations[k] !== undefined)
    .map((key) => ({
      key,
      message: "is set, but the pod has no netpin.io/ intent: it is netpin's record of what it gave",
      fix: `do not write ${key} by hand: netpin writes it`,
    }));
}

/**
 * What a pod, or a workload's pod template, with these annotations would be refused for at CREATE
 * before anything is rendered: containerd's bandwidth values, netpin's records without an intent
 * or hand-written placement keys, the intent (syntax, the CNI, pools and namespace), and
 * netpin.io/allocated where nothing is pinned. `checked` is undefined without an intent.
 */
export async function checkAnnotations(
  annotations: Record<string, string>,
  shape: WorkloadShape,
  namespace: string,
  parsed: ParsedIntent,
  admit: Admit,
): Promise<{ checked: CheckedIntent | undefined; problems: Problem[] }> {
  const problems = bandwidthProblems(annotations);
  if (!hasIntentKeys(annotations)) {
    problems.push(...strayRecords(annotations), ...handWrittenProblems(annotations, {}, admit.dialect));
    return { checked: undefined, problems };
  }
  const checked = await checkIntent(annotations, shape, namespace, admit, parsed);
  problems.push(...checked.problems);
  // The validating webhook refuses it; the mutating one leaves it in place when it pins nothing.
  if (
    checked.problems.length === 0 &&
    annotations[ALLOCATED_KEY] !== undefined &&
    !admit.dialect.pinsAddresses(checked.intent, shape, checked.plan.pools)
  )
    problems.push(STRAY_ALLOCATED);
  return { checked, problems };
}

/**
 * Whether `key` is one of the CNI's placement keys. `*.` at the start of one stands for any prefix
 * that ends in a dot: Kube-OVN's per-attachment keys `<nad>.<namespace>.ovn.kubernetes.io/ip_address`.
 */
export function isPlacementKey(key: string, dialect: Dialect): boolean {
  return dialect.placementKeys.some((k) =>
    k.startsWith('*.') ? key.length > k.length - 1 && key.endsWith(k.slice(1)) : key === k,
  );
}

/** The placement keys a pod's annotations hold. */
export function placementKeysIn(annotations: Record<string, string>, dialect: Dialect): string[] {
  return Object.keys(annotations).filter((k) => isPlacementKey(k, dialect));
}

/**
 * CNI annotations the user wrote by hand: a placement key netpin does not write here would bypass
 * the ledger and the pools' namespaceSelectors, so another owner could be handed the same address;
 * any other rendered key must hold what the intent renders.
 */
export function handWrittenProblems(
  annotations: Record<string, string>,
  expected: Record<string, string>,
  dialect: Dialect,
): Problem[] {
  const problems: Problem[] = [];
  for (const key of placementKeysIn(annotations, dialect)) {
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
