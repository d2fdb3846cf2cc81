import type { Address, Family } from '../net/address.js';
import type { Pool } from './pool.js';

/**
 * Who holds an address. A pod not yet named (generateName) is identified by
 * the admission request's uid until the reconciler binds the claim to the pod's name.
 * A StatefulSet reservation is held by the StatefulSet and its ordinal, so that
 * pod `<sts>-<k>` finds the same address after delete and re-create. A DaemonSet's is held by the
 * DaemonSet and a node, so that each pod it runs on that node finds the same address.
 */
export type Owner = (
  | { kind: 'Pod'; namespace: string; name: string; uid?: string }
  | { kind: 'StatefulSet'; namespace: string; name: string; ordinal: number }
  | DaemonSetOwner
  | EgressOwner
) &
  InCluster;

/**
 * Set on a claim of a ClusterSet pool that another member cluster holds: its id. Its owner is that
 * cluster's, whatever the names say, so it is never this cluster's to renew, reuse or release.
 */
interface InCluster {
  cluster?: string;
}

/** A DaemonSet's reservation for one node: released once the node or the DaemonSet is gone. */
export interface DaemonSetOwner {
  kind: 'DaemonSet';
  namespace: string;
  name: string;
  node: string;
}

/**
 * Who holds an egress address: a workload, whose pods share it (snat), or one pod or ordinal
 * (eip, and bare pods). `workload` is the kind of what is named.
 */
export interface EgressOwner {
  kind: 'Egress';
  namespace: string;
  workload: 'Deployment' | 'ReplicaSet' | 'StatefulSet' | 'Pod';
  name: string;
  ordinal?: number;
}

/** A claim as one reader saw it: never changed in place, a newer state is a new object. */
export interface Claim {
  readonly pool: string;
  readonly ip: Address;
  readonly owner: Owner;
  /** Milliseconds since the epoch; the reconciler's grace period counts from here. */
  readonly createdAt: number;
  /** The uid of the stored claim object, where there is one: tells a re-claim from the claim it replaced. */
  readonly ref?: string;
  /**
   * The stored object's resourceVersion as last seen. A release is conditional on it, so that a claim
   * renewed since the reconciler found it stale (a pod admitted again under the same name) stays.
   */
  readonly version?: string;
  /**
   * The stored object's name, where it is not the address's own: netpin before 0.2 named claims
   * `<pool>.<address>`; the leader moves them to the address's own name.
   */
  readonly name?: string;
  /** Not a claim: a running pod seen using the address, which netpin's ledger did not give it. */
  readonly observed?: boolean;
  /** Stored in the ClusterSet's broker, not in this cluster's API server (a pool the set shares). */
  readonly shared?: boolean;
  /** A shared claim promised to another member cluster: its release hands it to that cluster instead. */
  readonly handoverTo?: string;
  /** Milliseconds since the epoch until which the reconciler keeps the claim whatever it finds (a handover). */
  readonly keptUntil?: number;
}

export function ownerKey(owner: Owner): string {
  return owner.cluster === undefined ? localKey(owner) : `${owner.cluster}:${localKey(owner)}`;
}

function localKey(owner: Owner): string {
  if (owner.kind === 'Egress')
    return `Egress/${owner.workload}/${owner.namespace}/${owner.name}${owner.ordinal === undefined ? '' : `/${owner.ordinal}`}`;
  if (owner.kind === 'DaemonSet') return `DaemonSet/${owner.namespace}/${owner.name}/${owner.node}`;
  return owner.kind === 'StatefulSet'
    ? `StatefulSet/${owner.namespace}/${owner.name}/${owner.ordinal}`
    : `Pod/${owner.namespace}/${owner.name}${owner.name === '' ? `#${owner.uid ?? ''}` : ''}`;
}

/**
 * The owner of a claim handed out again to a new admission: a named pod's claim no longer names the
 * uid of the pod it was bound to, since the pod being admitted now may be another of the same name;
 * so a claim that still names a pod's uid is that pod's alone, and is released when it is deleted.
 */
export function renewedOwner(owner: Owner): Owner {
  return owner.kind === 'Pod' && owner.name !== '' && owner.uid !== undefined
    ? { kind: 'Pod', namespace: owner.namespace, name: owner.name }
    : owner;
}

export function describeOwner(owner: Owner): string {
  return owner.cluster === undefined ? describeLocal(owner) : `${describeLocal(owner)} in cluster ${owner.cluster}`;
}

function describeLocal(owner: Owner): string {
  if (owner.kind === 'Egress') {
    return `the egress of ${owner.workload} ${owner.namespace}/${owner.name}${owner.ordinal === undefined ? '' : ` (ordinal ${owner.ordinal})`}`;
  }
  if (owner.kind === 'StatefulSet') return `StatefulSet ${owner.namespace}/${owner.name} (ordinal ${owner.ordinal})`;
  if (owner.kind === 'DaemonSet') return `DaemonSet ${owner.namespace}/${owner.name} (node ${owner.node})`;
  return owner.name ? `pod ${owner.namespace}/${owner.name}` : `a pod being created in ${owner.namespace}`;
}

export class ConflictError extends Error {
  constructor(readonly holder: Claim) {
    super(
      `${holder.ip.toString()} is held by ${describeOwner(holder.owner)}${holder.observed ? ', which uses it without a netpin claim (it predates netpin or its namespace opting in)' : ''}`,
    );
  }
}

export class ExhaustedError extends Error {
  constructor(
    readonly pool: Pool,
    readonly family: Family,
  ) {
    super(`IPPool ${pool.name} has no free ${family === 'ipv4' ? 'IPv4' : 'IPv6'} address`);
  }
}
