import type { Intent, Problem } from '../../intent/types.js';
import type { DualAddress, Family } from '../../net/address.js';
import type { Claim, EgressOwner, Owner } from '../claim.js';
import type { Pool } from '../pool.js';

export interface AllocationRequest {
  intent: Intent;
  namespace: string;
  namespaceLabels: Record<string, string>;
  owner: Owner;
  /** Which netpin.io/ips entry this owner must get (a StatefulSet ordinal's position); else the first free one. */
  entry?: number;
  /** Report what would be allocated, and claim nothing. */
  dryRun: boolean;
  /** The plan `plan()` already made for this intent and namespace, so that it is not made twice. */
  plan?: Plan;
}

/** Where one pod's addresses come from: its pools, and the addresses when netpin picked them. */
export interface Placement {
  pools: Pool[];
  addresses?: DualAddress;
  /** The pod's egress address, fixed or given from an egress pool. */
  egress?: DualAddress;
}

/** Addresses netpin picked for one pod, and the pools they came from (one per family used). */
export interface Allocation extends Placement {
  addresses: DualAddress;
}

/** A request refused, with what is wrong. */
export type Refusal = { ok: false; problems: Problem[] };

/** `fresh` are the claims this call made, for a caller that must give them back when the request fails later. */
export type AllocationResult = { ok: true; allocation: Allocation; claims: Claim[]; fresh: Claim[] } | Refusal;

export type FamilyPools = Partial<Record<Family, Pool>>;

/**
 * Where an intent's addresses would come from: the pool serving each named family, and every pool
 * involved (named, or holding a fixed address), for the CNI's checks. `problems` is empty when
 * allocation may go ahead.
 */
export interface Plan {
  byFamily: FamilyPools;
  pools: Pool[];
  /** The egress pools serving each family of netpin.io/egress-pool, and every egress pool involved. */
  egressByFamily: FamilyPools;
  egressPools: Pool[];
  problems: Problem[];
  /** A named pool or a fixed address was not found in any pool this process knows. */
  unknown: boolean;
}

export interface EgressRequest {
  intent: Intent;
  namespace: string;
  namespaceLabels: Record<string, string>;
  owner: EgressOwner;
  dryRun: boolean;
  plan: Plan;
}

export type EgressResult = { ok: true; addresses: DualAddress; fresh: Claim[] } | Refusal;
