import type { Intent, Problem } from '../intent/types.js';
import type { Placement } from '../ipam/allocator.js';
import type { Pool } from '../ipam/pool.js';

export const CNI_NAMES = ['calico', 'kube-ovn', 'antrea', 'cilium', 'netpin-ipam'] as const;
export type CniName = (typeof CNI_NAMES)[number];

/** The shape of what is being admitted, as far as a CNI's rules care. */
export interface WorkloadShape {
  kind: 'Pod' | 'Deployment' | 'StatefulSet';
  /** Replicas of the workload; 1 for a bare pod; for a pod of a controller, 1. */
  replicas: number;
  /** A StatefulSet, or a pod that a StatefulSet owns. */
  statefulSet: boolean;
}

/** A dialect's verdict on a netpin IPPool; a problem's key names the IPPool field at fault. */
export interface PoolCheck {
  problems: Problem[];
  warnings: string[];
}

/** What a CNI needs on the pod. */
export interface Rendering {
  annotations: Record<string, string>;
  labels: Record<string, string>;
  warnings: string[];
}

/**
 * One CNI's way of writing an intent. A dialect never allocates: the admission
 * layer asks `pinsAddresses`, allocates from the ledger when it is true, and
 * passes the result to `render`. What a dialect cannot render faithfully, its
 * `check` refuses: netpin never writes an annotation the CNI would ignore.
 */
export interface Dialect {
  readonly name: CniName;
  /** The name users know, for messages: "Calico", "Kube-OVN", "Antrea", "Cilium". */
  readonly title: string;
  /**
   * This CNI's pod annotations that choose an address, a pool or a subnet. In an opted-in
   * namespace only netpin writes them: chosen by hand they would bypass the ledger.
   */
  readonly placementKeys: readonly string[];
  /** The placement keys whose values are addresses: what a pod asked its CNI for, whoever wrote it. */
  readonly addressKeys: readonly string[];
  /** netpin.io/ keys whose new value this CNI applies to a running pod; any other change needs a new pod. */
  readonly liveKeys: readonly string[];
  /**
   * Whether netpin picks this workload's addresses and pins them through an annotation. `pools` are
   * those `check` is given: every pool the addresses may come from.
   */
  pinsAddresses(intent: Intent, shape: WorkloadShape, pools: readonly Pool[]): boolean;
  /**
   * What of the intent this CNI cannot do; each problem names the key and what to do instead.
   * `pools` are every pool the addresses may come from: named by netpin.io/pool, or holding a fixed
   * address; `egressPools` likewise for the egress address (none for one outside every pool).
   */
  check(intent: Intent, shape: WorkloadShape, pools: readonly Pool[], egressPools?: readonly Pool[]): Problem[];
  /** The annotations and labels one pod needs; `placement.addresses` is set exactly when pinsAddresses is true. */
  render(intent: Intent, shape: WorkloadShape, placement: Placement): Rendering;
  /** The CNI's own pool objects, read to check that a netpin IPPool is backed by them. */
  readonly nativePools?: { group: string; version: string; plural: string };
  /**
   * What the CNI's own configuration means for a netpin IPPool: refusals, and conditions the
   * operator must check. `native` lists the nativePools objects, or says why they could not be read.
   */
  checkPool(pool: Pool, native: readonly unknown[] | string | undefined): PoolCheck;
  /**
   * Whether a change of a placement key on a running pod is the CNI writing back what it did
   * (Kube-OVN records the addresses it assigned), rather than someone choosing another address.
   */
  isWriteBack(
    key: string,
    rendered: string | undefined,
    before: string | undefined,
    after: string | undefined,
  ): boolean;
}
