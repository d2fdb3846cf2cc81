import type { Address, Family } from '../net/address.js';
import type { Claim, Owner } from './claim.js';
import type { ClaimIndex } from './claim-index.js';
import type { Pool } from './pool.js';

/**
 * Where claims live. Reads go to the in-memory index (fed by a watch in the
 * Kubernetes ledger), so that allocation never lists anything per request;
 * writes are the only calls that may leave the process.
 *
 * The ordering rule: `claim` and `claimNext` mark their address taken in the index before their
 * first await. So claims started one after another, without an await in between, get addresses
 * in the order they were started, while their writes overlap; StatefulSet ordinals rely on it. A
 * release frees its address only once it is gone from where claims are kept.
 */
export interface Ledger {
  readonly index: ClaimIndex;
  /** Claims one address; resolves with the existing claim when this owner holds it already. */
  claim(pool: Pool, ip: Address, owner: Owner): Promise<Claim>;
  /** Claims the lowest free address of a family, moving on when another writer wins a race. */
  claimNext(pool: Pool, family: Family, owner: Owner): Promise<Claim>;
  /**
   * Releases exactly this claim, as its caller saw it: false, and nothing released, when it was renewed
   * or claimed again since (the stored version moved on), or is still being created.
   */
  release(claim: Claim): Promise<boolean>;
  /**
   * Throws, saying why, when claims an owner holds already may not be handed out again now. Optional: a
   * ClusterSet member out of good standing serves none of the shared pools' claims, not even those
   * stored under its id, which may well be another installation's.
   */
  checkHeld?(claims: readonly Claim[]): void;
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
  /**
   * Moves up to `max` claims stored in an older form to the current one, while `mayGoOn()`; returns how
   * many moved. Optional: only a ledger with stored history has anything to move.
   */
  migrate?(max: number, mayGoOn: () => boolean): Promise<number>;
  /**
   * The most pods the namespace's ResourceQuotas let it run (the lowest `pods` or `count/pods` hard
   * limit of a quota that applies to every pod), undefined when none limits them. A StatefulSet's
   * reservations count against it: a namespace holds no more reserved ordinals than it may run pods.
   * Optional: only a ledger in a cluster has quotas to read.
   */
  podQuota?(namespace: string): Promise<PodQuota | undefined>;
  /** Loads state and starts watches; resolves when reads are current. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** A namespace's limit on pods, and the ResourceQuota that sets it, for the message. */
export interface PodQuota {
  pods: number;
  quota: string;
}
