import type { DualAddress, Intent, Problem } from '../intent/types.js';
import type { Pool } from '../ipam/pool.js';

export const CNI_NAMES = ['calico', 'kube-ovn', 'antrea', 'cilium'] as const;
export type CniName = (typeof CNI_NAMES)[number];

/** The shape of what is being admitted, as far as a CNI's rules care. */
export interface WorkloadShape {
  kind: 'Pod' | 'Deployment' | 'StatefulSet';
  /** Replicas of the workload; 1 for a bare pod; for a pod of a controller, 1. */
  replicas: number;
  /** A StatefulSet, or a pod that a StatefulSet owns. */
  statefulSet: boolean;
}

/** Addresses netpin picked for one pod, and the pools they came from (one per family used). */
export interface Allocation {
  addresses: DualAddress;
  pools: Pool[];
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
 * passes the result to `render`.
 */
export interface Dialect {
  readonly name: CniName;
  /** The name users know, for messages: "Calico", "Kube-OVN", "Antrea", "Cilium". */
  readonly title: string;
  /** This CNI's pod annotations that pick an address or a pool: netpin's to write in an opted-in namespace. */
  readonly addressKeys: readonly string[];
  /** Whether netpin picks this workload's addresses and pins them through an annotation. */
  pinsAddresses(intent: Intent, shape: WorkloadShape): boolean;
  /** What of the intent this CNI cannot do; each problem names the key and what to do instead. */
  check(intent: Intent, shape: WorkloadShape, pools: Pool[]): Problem[];
  /**
   * The annotations and labels one pod needs. `pools` are the pools named by
   * `netpin.io/pool` (resolved); `allocation` is given exactly when pinsAddresses is true.
   */
  render(intent: Intent, pools: Pool[], allocation?: Allocation): Rendering;
}
