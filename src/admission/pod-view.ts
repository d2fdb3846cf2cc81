import type { Rendering, WorkloadShape } from '../cni/dialect.js';
import { ALLOCATED_KEY, EGRESS_ALLOCATED_KEY, hasIntentKeys } from '../intent/keys.js';
import { parseDual, parseIntent, type ParsedIntent } from '../intent/parse.js';
import type { Intent } from '../intent/types.js';
import type { Placement } from '../ipam/allocator.js';
import type { ClaimIndex } from '../ipam/claim-index.js';
import type { Pool } from '../ipam/pool.js';
import { addressList } from '../net/address.js';
import type { Admit } from './context.js';
import { defaultedAnnotations } from './namespace-default.js';
import type { AdmissionRequest, KubeObject } from './review.js';

/** The StatefulSet a pod names as its controller, its ordinal, and the reference's uid. */
export interface StatefulSetRef {
  name: string;
  ordinal: number;
  uid?: string;
}

/** The DaemonSet a pod names as its controller, the node its affinity pins it to, and the reference's uid. */
export interface DaemonSetRef {
  name: string;
  node: string;
  uid?: string;
}

/**
 * One pod as an admission reads it, decoded once (controller-runtime's decode step): its namespace
 * defaulted, its StatefulSet and shape, and its netpin.io/ annotations parsed. Every check of the
 * pod reads this; nothing parses the annotations again.
 */
export interface PodView {
  pod: KubeObject;
  namespace: string;
  annotations: Record<string, string>;
  labels: Record<string, string> | undefined;
  statefulSet: StatefulSetRef | undefined;
  /** Set only for a pod the DaemonSet controller made for one node; any other pod of it is a bare pod. */
  daemonSet: DaemonSetRef | undefined;
  shape: WorkloadShape;
  /** Whether the pod carries a netpin intent at all, its namespace's defaults counted. */
  hasIntent: boolean;
  parsed: ParsedIntent;
  /** The keys `annotations` took from the namespace's defaults: only a new pod's, in its mutating review. */
  defaulted: string[];
}

/** A pod already admitted, as it stands: where its records say its addresses are, and what netpin renders for it. */
export interface StandingPod extends PodView {
  /** From its records and named pools; a string says why a record does not parse. */
  placement: Placement | string;
  /** Undefined when there is nothing to render: no intent, one that does not parse, or a record that does not. */
  rendering: Rendering | undefined;
}

/**
 * `admit`: read the pod as if it had written its namespace's defaults (a new pod, before netpin wrote
 * them on it). Without, the pod as it stands: a running pod keeps what it was given, whatever its
 * namespace's default has become since.
 */
export function viewPod(req: AdmissionRequest, pod: KubeObject, admit?: Admit): PodView {
  const own = pod.metadata?.annotations ?? {};
  const namespace = namespaceOf(req, pod);
  const { annotations, defaulted } = admit
    ? defaultedAnnotations(own, namespace, pod.spec?.hostNetwork === true, admit)
    : { annotations: own, defaulted: [] };
  const statefulSet = statefulSetOf(pod);
  return {
    pod,
    namespace,
    annotations,
    labels: pod.metadata?.labels,
    statefulSet,
    daemonSet: daemonSetOf(pod),
    shape: { kind: 'Pod', replicas: 1, statefulSet: statefulSet !== undefined },
    hasIntent: hasIntentKeys(annotations),
    parsed: parseIntent(annotations),
    defaulted,
  };
}

/** The request's namespace, else the object's: a direct POST may leave either out. */
export function namespaceOf(req: AdmissionRequest, obj: KubeObject): string {
  return req.namespace ?? obj.metadata?.namespace ?? 'default';
}

/** The view of a running pod (the old and the new object of an UPDATE): rendered once, here. */
export function viewStanding(req: AdmissionRequest, pod: KubeObject, admit: Admit): StandingPod {
  const view = viewPod(req, pod);
  const { intent, problems } = view.parsed;
  const placement = recordedPlacement(view.annotations, intent, namedPools(intent, admit.index), admit.index);
  const renders = view.hasIntent && problems.length === 0 && typeof placement !== 'string';
  return { ...view, placement, rendering: renders ? admit.dialect.render(intent, view.shape, placement) : undefined };
}

/**
 * Where a pod's addresses came from, as its records say: netpin.io/allocated and the pools holding
 * it, else `named`; its egress from netpin.io/egress-allocated, else the fixed netpin.io/egress-ip.
 * A string says why a record does not parse.
 */
export function recordedPlacement(
  annotations: Record<string, string>,
  intent: Intent,
  named: Pool[],
  index: ClaimIndex,
): Placement | string {
  const recorded = annotations[EGRESS_ALLOCATED_KEY];
  const egress = recorded === undefined ? intent.egress?.ip : parseDual(recorded);
  if (typeof egress === 'string') return egress;
  const allocated = annotations[ALLOCATED_KEY];
  if (allocated === undefined) return { pools: named, ...(egress && { egress }) };
  const addresses = parseDual(allocated);
  if (typeof addresses === 'string') return addresses;
  return {
    addresses,
    pools: addressList(addresses)
      .map((a) => index.poolOf(a))
      .filter((p): p is Pool => p !== undefined),
    ...(egress && { egress }),
  };
}

/** The pools netpin.io/pool names that this replica knows, looked up by name. */
function namedPools(intent: Intent, index: ClaimIndex): Pool[] {
  return (intent.pools ?? []).map((n) => index.pool(n)).filter((p): p is Pool => p !== undefined);
}

/**
 * The StatefulSet the pod names as its controller and its ordinal, from the owner reference and the
 * `<sts>-<k>` name; `uid` is the reference's, which ownerProblems holds against the live StatefulSet.
 */
export function statefulSetOf(pod: KubeObject): StatefulSetRef | undefined {
  const ref = pod.metadata?.ownerReferences?.find((r) => r.controller && r.kind === 'StatefulSet');
  const name = pod.metadata?.name;
  if (!ref || !name?.startsWith(`${ref.name}-`)) return undefined;
  const suffix = name.slice(ref.name.length + 1);
  return /^(0|[1-9]\d*)$/.test(suffix) ? { name: ref.name, ordinal: Number(suffix), uid: ref.uid } : undefined;
}

/**
 * The DaemonSet the pod names as its controller and the node it is for: the DaemonSet controller pins
 * each pod to its node by a `metadata.name In [<node>]` matchFields requirement in every term of its
 * required node affinity. A pod pinned otherwise, or to no single node, is no node's pod.
 */
function daemonSetOf(pod: KubeObject): DaemonSetRef | undefined {
  const ref = pod.metadata?.ownerReferences?.find((r) => r.controller && r.kind === 'DaemonSet');
  if (!ref) return undefined;
  const required = pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution as
    { nodeSelectorTerms?: { matchFields?: { key: string; operator: string; values?: string[] }[] }[] } | undefined;
  const nodes = new Set(
    (required?.nodeSelectorTerms ?? []).map((t) => {
      const fields = (t.matchFields ?? []).filter((f) => f.key === 'metadata.name');
      const only = fields.length === 1 && fields[0]!.operator === 'In' ? fields[0]!.values : undefined;
      return only?.length === 1 ? only[0]! : '';
    }),
  );
  const [node] = nodes;
  return nodes.size === 1 && node ? { name: ref.name, node, uid: ref.uid } : undefined;
}
