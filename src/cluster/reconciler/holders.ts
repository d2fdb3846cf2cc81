import { familyOf } from '../../net/address.js';
import { ownerKey, type Claim, type DaemonSetOwner } from '../../ipam/claim.js';
import type { PodRecord } from '../pod-tracker.js';

/**
 * Whether a pod holds a claim's address: it is the claim's owner by name (a pod, or the
 * StatefulSet's pod of that ordinal), or it uses or asked for the address in any way it can
 * say so. No single piece of metadata decides, so that removing one cannot free an address.
 */
export function holds(pod: PodRecord, claim: Claim, ownersClaims: readonly Claim[] = []): boolean {
  const o = claim.owner;
  // An egress address is held while a pod it was given to lives; what shares it, pods come and go.
  if (o.kind === 'Egress') return pod.egress.includes(claim.ip.toString());
  if (pod.addresses.includes(claim.ip.toString())) return true;
  // An ordinal's pod keeps it by name, finished or not: the StatefulSet replaces it under that name.
  if (o.kind === 'StatefulSet') return pod.name === `${o.name}-${o.ordinal}`;
  // A node's reservation names no pod: the DaemonSet's pods come and go under new names.
  if (o.kind === 'DaemonSet') return false;
  // A finished pod never runs again: its name keeps nothing.
  if (o.name === '' || pod.name !== o.name || pod.finished) return false;
  // By name, unless the pod shows another address of the family that its owner claimed too: then this
  // one was claimed by an earlier admission under the same name whose pod never came (a create
  // retried on a replica that had not seen this claim yet), and the pod does not use it.
  const family = familyOf(claim.ip);
  return !ownersClaims.some((x) => x !== claim && familyOf(x.ip) === family && pod.addresses.includes(x.ip.toString()));
}

/** The pods of one namespace, found by what `holds` looks at: their name, and every address they show. */
interface NamespacePods {
  byName: Map<string, PodRecord>;
  byAddress: Map<string, PodRecord>;
  byEgress: Map<string, PodRecord>;
}

/** Pods by namespace, as `staleClaims` looks them up; built once for a sweep done in slices. */
export type PodIndex = Map<string, NamespacePods>;

export function indexPods(pods: Iterable<PodRecord>): PodIndex {
  const index = new Map<string, NamespacePods>();
  for (const pod of pods) {
    let ns = index.get(pod.namespace);
    if (!ns) index.set(pod.namespace, (ns = { byName: new Map(), byAddress: new Map(), byEgress: new Map() }));
    ns.byName.set(pod.name, pod);
    for (const a of pod.addresses) ns.byAddress.set(a, pod);
    for (const a of pod.egress) ns.byEgress.set(a, pod);
  }
  return index;
}

/**
 * The pods that could hold a claim: any other pod fails every test of `holds`. Looked up, not
 * scanned, so that a sweep costs the claims, not claims × pods.
 */
export function candidates(ns: NamespacePods | undefined, claim: Claim): PodRecord[] {
  if (!ns) return [];
  const o = claim.owner;
  const ip = claim.ip.toString();
  const found =
    o.kind === 'Egress'
      ? [ns.byEgress.get(ip)]
      : o.kind === 'DaemonSet'
        ? [ns.byAddress.get(ip)]
        : [ns.byAddress.get(ip), ns.byName.get(o.kind === 'StatefulSet' ? `${o.name}-${o.ordinal}` : o.name)];
  return found.filter((p): p is PodRecord => p !== undefined);
}

/**
 * The claims past their grace period that no pod holds and no StatefulSet keeps, as the cluster view sees them.
 * `ownersClaims` finds the other claims of a claim's owner (the ledger's index has them at hand); without
 * it they are gathered from `claims`. `daemonSetKeeps` says whether a DaemonSet and the node of its
 * reservation both exist; without it, every such reservation is kept.
 */
export function staleClaims(
  claims: Iterable<Claim>,
  pods: Iterable<PodRecord> | PodIndex,
  statefulSetExists: (namespace: string, name: string) => boolean,
  now: number,
  graceMs: number,
  ownersClaims?: (claim: Claim) => readonly Claim[],
  daemonSetKeeps: (owner: DaemonSetOwner) => boolean = () => true,
): Claim[] {
  const byNamespace = pods instanceof Map ? pods : indexPods(pods);
  const all = [...claims];
  const owners = ownersClaims ?? groupByOwner(all);
  const stale: Claim[] = [];
  for (const claim of all) {
    if (now - claim.createdAt < graceMs) continue;
    // Handed over by another cluster: its StatefulSet may not be applied here yet.
    if (claim.keptUntil !== undefined && now < claim.keptUntil) continue;
    const o = claim.owner;
    // A StatefulSet keeps its reservations on scale-down; they go with the StatefulSet and its last pod.
    if (o.kind === 'StatefulSet' && statefulSetExists(o.namespace, o.name)) continue;
    // A DaemonSet keeps a node's address across its pods' restarts; it goes with the node or the DaemonSet.
    if (o.kind === 'DaemonSet' && daemonSetKeeps(o)) continue;
    if (candidates(byNamespace.get(o.namespace), claim).some((p) => holds(p, claim, owners(claim)))) continue;
    stale.push(claim);
  }
  return stale;
}

function groupByOwner(claims: readonly Claim[]): (claim: Claim) => readonly Claim[] {
  let byOwner: Map<string, Claim[]> | undefined;
  return (claim) => {
    if (!byOwner) {
      byOwner = new Map();
      for (const c of claims) {
        const key = ownerKey(c.owner);
        let list = byOwner.get(key);
        if (!list) byOwner.set(key, (list = []));
        list.push(c);
      }
    }
    return byOwner.get(ownerKey(claim.owner)) ?? [];
  };
}
