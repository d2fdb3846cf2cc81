import type { V1StatefulSet } from '@kubernetes/client-node';
import type { Claim } from '../../ipam/claim.js';
import { withDeadline } from '../deadline.js';
import type { EventSink } from '../event-sink.js';
import type { PodRecord } from '../pod-tracker.js';

export interface ReconcilerOptions {
  /**
   * A claim younger than this is left alone: the pod it was made for may not be stored yet, while the
   * API server waits for the webhooks after netpin's.
   */
  graceMs: number;
  /** An egress address no pod has shown for this long is released; other pods of its workload may come back. */
  egressGraceMs: number;
  intervalMs: number;
  /** The clock; tests play it. */
  now?: () => number;
  /** Keeps the cluster objects the claims need (CNI egress resources, Cilium pools) in line, after each sweep. */
  resources?: { sync(): Promise<void> };
  /** Where releases are told as Events (docs/events.md). */
  events?: EventSink;
  /** Where releases and overdue claims are counted. */
  metrics: ReconcilerMetrics;
}

/** Where the reconciler reports what it releases and what it finds overdue (transport/metrics.ts). */
export interface ReconcilerMetrics {
  released(claim: Claim): void;
  /** Each sweep: the claims past their grace period that, by the watch, no pod holds; it releases them next. */
  overdue(claims: readonly Claim[], graceMs: number): void;
}

/** What the reconciler reads of a StatefulSet: its range of ordinals, and its own annotations. */
export interface StatefulSetState {
  replicas: number;
  ordinalsStart: number;
  annotations?: Record<string, string>;
}

/** A StatefulSet object as the reconciler reads it; undefined for none. */
export function statefulSetState(sts: V1StatefulSet | undefined): StatefulSetState | undefined {
  if (!sts) return undefined;
  const replicas = sts.spec?.replicas;
  const start = sts.spec?.ordinals?.start;
  return {
    // As the API server defaults them: one replica, ordinals from 0.
    replicas: typeof replicas === 'number' ? replicas : 1,
    ordinalsStart: typeof start === 'number' ? start : 0,
    annotations: sts.metadata?.annotations,
  };
}

/** What the reconciler asks the API server, so that a test can answer at any interleaving it likes. */
export interface ReconcilerApi {
  /** The pods of a namespace as the API server has them now, not as a watch last told. */
  namespacePods(namespace: string): Promise<PodRecord[]>;
  statefulSetExists(namespace: string, name: string): Promise<boolean>;
  /**
   * The StatefulSet as the API server has it now; undefined when it does not exist. Optional: without
   * it, a StatefulSet that exists keeps every reservation, and none is given back on scale-down.
   */
  statefulSet?(namespace: string, name: string): Promise<StatefulSetState | undefined>;
  /**
   * Whether DaemonSet `name` and Node `node` both exist, as the API server has them now. Optional:
   * without it, a DaemonSet's reservation for a node is never released.
   */
  daemonSetKeeps?(namespace: string, name: string, node: string): Promise<boolean>;
  writePoolStatus(pool: string, status: PoolStatus): Promise<void>;
}

/** An IPPool's `status`, as `kubectl get ippools.netpin.io` shows it. */
interface PoolStatus {
  capacity: number;
  allocated: number;
  families: { family: string; capacity: string; allocated: number }[];
  observedAt: string;
}

/**
 * How long one of the reconciler's calls may take. A release must land while this replica is still
 * the leader: it is started only when the lease is held for at least this long yet, and the lease
 * itself outlasts the leadership by a renewal interval (lease.ts).
 */
export const RECONCILER_CALL_MS = 3_000;

/** Runs one of the ledger's writes with RECONCILER_CALL_MS to answer, however alive the API server seems. */
export function within<T>(write: () => Promise<T>): Promise<T> {
  return withDeadline(RECONCILER_CALL_MS, write, RECONCILER_CALL_MS);
}

/** What the reconciler reads of the cluster: the watches' view, and whether all of it is complete. */
export interface ReconcilerView {
  readonly pods: { values(): Iterable<PodRecord> };
  statefulSetExists(namespace: string, name: string): boolean;
  /**
   * The StatefulSet as the watch last saw it, undefined when it does not exist. Optional: without it,
   * a StatefulSet scaled down keeps the reservations above its new size while it exists.
   */
  statefulSet?(namespace: string, name: string): StatefulSetState | undefined;
  /** Whether DaemonSet `name` and Node `node` both exist, by the watches; optional: without it, all are kept. */
  daemonSetKeeps?(namespace: string, name: string, node: string): boolean;
  /**
   * Whether every cache the leader judges by (pods, namespaces, StatefulSets, the ledger's pools and
   * claims) has completed its latest list: while one is listing, or listing again after its watch
   * broke, it may lack objects, and the leader must not act on what it does not see.
   */
  complete(): boolean;
}

/** The lease, as the reconciler asks it: whether this replica is the leader until `at`. */
export interface Leadership {
  isLeader(at?: number): boolean;
}
