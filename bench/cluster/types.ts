// The cluster part's options, rounds and report, and the small helpers its steps share.
import type { ClaimWrite } from '../../src/cluster/kube-ledger.js';
import type { ProfileSummary } from '../profile.js';

/**
 * baseline: namespaces not selected by netpin's webhooks. webhook: selected, but the pods carry no
 * netpin.io/ intent, so the API server calls both webhooks and netpin only answers "allowed": the
 * cost of being an admission webhook at all. memory: the pods of netpin mode, admitted by a netpin
 * with the memory ledger (`--ledger memory`, the same pools from a file): every step of admission
 * and the same patches, but no IPClaim write and no reconciler. netpin: selected, each pod draws an
 * address from a pool, claimed in the API server.
 */
export type Mode = 'baseline' | 'webhook' | 'memory' | 'netpin';
export const MODES: readonly Mode[] = ['baseline', 'webhook', 'memory', 'netpin'];
/** The modes whose pods carry netpin.io/pool and must get an address. */
export const PINNED: ReadonlySet<Mode> = new Set(['memory', 'netpin']);
export type Scenario = 'deployments' | 'statefulset';

export interface ClusterOptions {
  root: string;
  /** Rounds of each mode per scenario, in the order baseline, webhook, netpin, then reversed, and so on. */
  rounds: number;
  deployments: number;
  replicas: number;
  /** One /24 per group of Deployments; each namespace draws from one pool. */
  pools: number;
  statefulSetReplicas: number;
  /** kube-controller-manager --kube-api-qps and --kube-api-burst; undefined keeps its defaults (20/30). */
  controllerQps?: { qps: number; burst: number };
  /**
   * Two more Deployments rounds, outside the figures: kube-apiserver profiled in webhook-only and in
   * netpin mode, and netpin profiled in the second.
   */
  profile: boolean;
  log: (line: string) => void;
}

export interface ClusterRound {
  scenario: Scenario;
  mode: Mode;
  round: number;
  pods: number;
  /** From the first create to the last pod's ADDED event (with its IP under netpin). */
  seconds: number;
  /** Until the create calls of the Deployments or the StatefulSet returned (netpin reserves a StatefulSet's addresses in that call). */
  createSeconds: number;
  podsWithoutIp: number;
  duplicateIps: number;
  /** Pod addresses that no IPClaim holds. */
  unclaimedIps: number;
  claims: number;
  /** CPU seconds each process used during the round, and the machine's busy seconds (two cores: at most 2 per second). */
  cpu: Record<string, number>;
  teardownSeconds: number;
  /** netpin's VmHWM at the end of the round: one process serves every round, so this is the peak so far. */
  netpinPeakRssBytes?: number;
  /**
   * IPClaim writes netpin made (netpin_claim_writes_total, any outcome) from the first create until the
   * round's claims were released: creates in admission, patches naming the pod, deletes by the reconciler.
   */
  claimWrites?: Record<ClaimWrite, number>;
}

export interface ClusterSummary {
  scenario: Scenario;
  pods: number;
  baselineSeconds: number;
  webhookSeconds: number;
  memorySeconds: number;
  netpinSeconds: number;
  /** netpin over baseline. */
  ratio: number;
  webhookRatio: number;
  /** netpin over webhook only: what netpin's work costs beyond being an admission webhook at all. */
  overWebhook: number;
  /** The memory ledger over webhook only: netpin's admission without its ledger in the API server. */
  memoryOverWebhook: number;
  /** netpin over the memory ledger: what keeping the ledger in the API server costs (IPClaim writes, reconciler). */
  overMemory: number;
  /** Mean IPClaim writes per pod over the netpin rounds, by kind of write. */
  claimWritesPerPod?: Record<ClaimWrite, number>;
  /** Mean CPU milliseconds per pod of each process, by mode. */
  cpuMsPerPod: Record<Mode, Record<string, number>>;
  duplicateIps: number;
  unclaimedIps: number;
  podsWithoutIp: number;
}

export interface ClusterReport {
  kubernetes: string;
  controllerQps: { qps: number; burst: number } | 'default';
  rounds: ClusterRound[];
  summary: ClusterSummary[];
  profile?: {
    /**
     * netpin during one more Deployments round, outside the figures: from the first create until every pod
     * exists. `focused` holds the share of its busy time in KubeLedger's write calls (CLAIM_WRITE_FRAMES).
     */
    netpin: ProfileSummary & { cpuUsPerPod: number };
    /** kube-apiserver over one more Deployments round in each of these modes (absent without `go` on the PATH). */
    apiserver?: Record<'webhook' | 'netpin', ApiserverProfile>;
  };
}

export interface ApiserverProfile {
  seconds: number;
  /** CPU milliseconds per pod of the samples whose stack holds the category's frames; categories overlap. */
  msPerPod: Array<{ what: string; ms: number }>;
}

export const ROUND_LABEL = 'netpin-bench/round';

const WRITES: readonly ClaimWrite[] = ['create', 'patch', 'delete'];

export function byOp(value: (op: ClaimWrite) => number): Record<ClaimWrite, number> {
  return Object.fromEntries(WRITES.map((op) => [op, value(op)])) as Record<ClaimWrite, number>;
}

export function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
