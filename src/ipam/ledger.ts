import type { Address, Family } from '../intent/types.js';
import type { ClaimIndex } from './claim-index.js';
import type { Pool } from './pool.js';

/**
 * Who holds an address. A pod not yet named (generateName) is identified by
 * the admission request's uid until the reconciler binds the claim to the pod's name.
 * A StatefulSet reservation is held by the StatefulSet and its ordinal, so that
 * pod `<sts>-<k>` finds the same address after delete and re-create.
 */
export type Owner =
  | { kind: 'Pod'; namespace: string; name: string; uid?: string }
  | { kind: 'StatefulSet'; namespace: string; name: string; ordinal: number }
  | EgressOwner;

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

export interface Claim {
  pool: string;
  ip: Address;
  owner: Owner;
  /** Milliseconds since the epoch; the reconciler's grace period counts from here. */
  createdAt: number;
  /** The uid of the stored claim object, where there is one: tells a re-claim from the claim it replaced. */
  ref?: string;
  /**
   * The stored object's resourceVersion as last seen. A release is conditional on it, so that a claim
   * renewed since the reconciler found it stale (a pod admitted again under the same name) stays.
   */
  version?: string;
  /** Not a claim: a running pod seen using the address, which netpin's ledger did not give it. */
  observed?: boolean;
}

export function ownerKey(owner: Owner): string {
  if (owner.kind === 'Egress') return `Egress/${owner.workload}/${owner.namespace}/${owner.name}${owner.ordinal === undefined ? '' : `/${owner.ordinal}`}`;
  return owner.kind === 'StatefulSet'
    ? `StatefulSet/${owner.namespace}/${owner.name}/${owner.ordinal}`
    : `Pod/${owner.namespace}/${owner.name}${owner.name === '' ? `#${owner.uid ?? ''}` : ''}`;
}

export function describeOwner(owner: Owner): string {
  if (owner.kind === 'Egress') {
    return `the egress of ${owner.workload} ${owner.namespace}/${owner.name}${owner.ordinal === undefined ? '' : ` (ordinal ${owner.ordinal})`}`;
  }
  if (owner.kind === 'StatefulSet') return `StatefulSet ${owner.namespace}/${owner.name} (ordinal ${owner.ordinal})`;
  return owner.name ? `pod ${owner.namespace}/${owner.name}` : `a pod being created in ${owner.namespace}`;
}

export class ConflictError extends Error {
  constructor(readonly holder: Claim) {
    super(`${holder.ip.toString()} is held by ${describeOwner(holder.owner)}${holder.observed ? ', which uses it without a netpin claim (it predates netpin or its namespace opting in)' : ''}`);
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

/**
 * Where claims live. Reads go to the in-memory index (fed by a watch in the
 * Kubernetes ledger), so that allocation never lists anything per request;
 * writes are the only calls that may leave the process.
 */
export interface Ledger {
  readonly index: ClaimIndex;
  /** Claims one address; resolves with the existing claim when this owner holds it already. */
  claim(pool: Pool, ip: Address, owner: Owner): Promise<Claim>;
  /** Claims the lowest free address of a family, moving on when another writer wins a race. */
  claimNext(pool: Pool, family: Family, owner: Owner): Promise<Claim>;
  release(claim: Claim): Promise<void>;
  /** Reads the pools again from where they are kept, for a pool newer than this process's view; optional. */
  refreshPools?(): Promise<void>;
  /**
   * A claim handed out again to a new admission of its owner (a pod created again, or its create
   * retried, under the same name): written again, so that its grace period starts over and a release
   * decided before, when no pod of that name existed, fails instead of freeing the address under
   * the new pod. Resolves false when the claim is gone, and then the owner must claim afresh.
   */
  renew(claim: Claim): Promise<boolean>;
  /**
   * Names the pod that holds a claim made for a pod not yet named, so that from then on the
   * pod's name, which nobody can change, keeps the address held.
   */
  bind(claim: Claim, pod: { name: string; uid: string }): Promise<void>;
  /** Loads state and starts watches; resolves when reads are current. */
  start(): Promise<void>;
  stop(): Promise<void>;
}
