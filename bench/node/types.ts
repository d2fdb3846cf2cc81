// The node part's options, runs and report: Spiderpool's IPAM protocol on the real test node.

/**
 * host-local: the conflist's IPAM is host-local itself and no webhook selects the namespace, the floor.
 * webhook: the conflist of netpin mode (netpin-ipam delegating to host-local, as the pods carry no netpin
 * address), and a webhook that only answers "allowed" (bench/bare-server.ts) on the chart's rules.
 * netpin: netpin with the kube ledger and --cni netpin-ipam; every pod draws from an IPPool.
 */
export type NodeMode = 'host-local' | 'webhook' | 'netpin';
/** exact: as many addresses as the case has pods; large: four times that. */
export type PoolSize = 'exact' | 'large';
/** 1 Deployment × N; N/10 Deployments × 10; a StatefulSet of N/2 (Parallel). */
export type NodeCase = 'deployment' | 'deployments' | 'statefulset';
export const NODE_CASES: readonly NodeCase[] = ['deployment', 'deployments', 'statefulset'];
export type Phase = 'creation' | 'recreation' | 'deletion';

export interface NodeBenchOptions {
  root: string;
  /** N */
  pods: number;
  rounds: number;
  cases: NodeCase[];
  controllerQps?: { qps: number; burst: number };
  claimGraceSeconds: number;
  log: (line: string) => void;
}

export interface PhaseResult {
  phase: Phase;
  /** Running at the end (creation, re-creation), or gone (deletion). */
  pods: number;
  /** From the first call of the phase until the last pod was Running (or gone). */
  seconds: number;
  /** Per pod, from its first watch event to the one that showed it Running, in ms. */
  podMs?: { p50: number; p99: number; max: number };
  /** Writes (POST, PUT, PATCH, DELETE, APPLY) the API server counted during the phase, from every client. */
  apiWrites: number;
  writesByResource: Record<string, number>;
  /** FailedCreatePodSandBox events (their count) during the phase. */
  sandboxFailures: number;
  /** FailedCreate events of the workloads' controllers naming an admission webhook's denial. */
  refusals: number;
  /** Addresses held by two pods that still exist, at the end of the phase. */
  duplicates: number;
  /** netpin mode: Running pods whose status.podIP is not their netpin.io/allocated. */
  ipMismatches?: number;
  /** Deletion: from the last pod gone until every IPClaim of the run (netpin) or host-local reservation was released. */
  releaseSeconds?: number;
  /** Deletion: IPClaims (netpin) or host-local reservations left when the wait ended. */
  leaks?: number;
  /** CPU seconds of each process during the phase, and the machine's busy seconds (2 cores: at most 2 per second). */
  cpu: Record<string, number>;
}

export interface NodeRun {
  case: NodeCase;
  mode: NodeMode;
  pool?: PoolSize;
  round: number;
  pods: number;
  phases: PhaseResult[];
}

export interface NodeSummaryRow {
  case: NodeCase;
  pods: number;
  phase: Phase;
  /** Mean seconds of each way, and of netpin with each pool. */
  seconds: { hostLocal: number; webhook: number; netpinExact: number; netpinLarge: number };
  /** Each over host-local alone. */
  ratio: { webhook: number; netpinExact: number; netpinLarge: number };
  /** Mean p50 and p99 per pod, in ms, by the same keys (creation and re-creation). */
  p50?: Record<'hostLocal' | 'webhook' | 'netpinExact' | 'netpinLarge', number>;
  p99?: Record<'hostLocal' | 'webhook' | 'netpinExact' | 'netpinLarge', number>;
  /** API server writes per pod, by the same keys. */
  writesPerPod: Record<'hostLocal' | 'webhook' | 'netpinExact' | 'netpinLarge', number>;
  /**
   * CPU ms per pod of the processes the bench started and names (API server, etcd, controllers, scheduler,
   * kubelet, containerd, netpin, the webhook), by the same keys: unlike the seconds, not moved by other
   * load on the machine. The runtime's shims and runc, and the CNI plugins, are not among them.
   */
  cpuMsPerPod: Record<'hostLocal' | 'webhook' | 'netpinExact' | 'netpinLarge', number>;
  /** The same, of kube-apiserver and etcd alone. */
  apiserverMsPerPod: Record<'hostLocal' | 'webhook' | 'netpinExact' | 'netpinLarge', number>;
  sandboxFailures: number;
  refusals: number;
  duplicates: number;
  leaks: number;
  /** netpin's runs: the longest release after the last pod went (deletion). */
  netpinReleaseSeconds?: number;
}

export interface NodeReport {
  kubernetes: string;
  pods: number;
  maxPods: number;
  claimGraceSeconds: number;
  /** How netpin ran: a process on the host, see docs/benchmarks.md. */
  netpinAs: string;
  cpuModel: string;
  loadAverage: { start: number[]; end: number[] };
  runs: NodeRun[];
  summary: NodeSummaryRow[];
  /** Set when the part stopped early (an error or SIGINT): the runs so far are kept. */
  stoppedEarly?: string;
}

export const round2 = (x: number): number => Math.round(x * 100) / 100;
