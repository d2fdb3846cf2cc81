// The admission part's cases, options and report, apart from the code that measures them.
import type { Latency } from '../load.js';
import type { ProfileSummary } from '../profile.js';
import type { MemoryLimit } from '../proc.js';
import { deploymentPod, POOL, replicaSetPod } from '../review.js';

export type ServerCase = 'bare' | 'rate' | 'alloc';

export const CASES: Record<ServerCase, { title: string; annotations: Record<string, string> }> = {
  bare: {
    title: 'bare fastify (ceiling)',
    annotations: { 'netpin.io/egress-rate': '10M', 'netpin.io/ingress-rate': '10M' },
  },
  rate: {
    title: 'netpin, rate only',
    annotations: { 'netpin.io/egress-rate': '10M', 'netpin.io/ingress-rate': '10M' },
  },
  alloc: { title: 'netpin, allocating', annotations: { 'netpin.io/pool': POOL } },
};

export type ReviewSize = 'small' | 'large';

export const SIZES: Record<
  ReviewSize,
  { title: string; pod: (annotations: Record<string, string>) => Record<string, unknown> }
> = {
  small: { title: 'one container', pod: replicaSetPod },
  large: { title: 'init container, sidecar, env, probes', pod: deploymentPod },
};

export interface AdmissionOptions {
  root: string;
  connections: number[];
  warmupMs: number;
  durationMs: number;
  /** Each round runs every server once per size; odd rounds in reverse order, so that drift hits all alike. */
  rounds: number;
  /** Length of the profiled runs; 0 for none. */
  profileMs: number;
  log: (line: string) => void;
}

export interface AdmissionRow {
  size: ReviewSize;
  case: ServerCase;
  connections: number;
  rps: number;
  latencyMs: Latency;
  requests: number;
  errors: number;
  /** Largest VmHWM of the server over the rounds (a fresh process each run). */
  peakRssBytes: number | undefined;
  /** Server CPU time per request, and the share of one core the server used: below ~95 %, the load generator was the limit. */
  cpuUsPerRequest: number;
  serverCpuPercent: number;
  /** Server CPU seconds over the measured windows of every round, for ratios pooled over connection counts. */
  cpuSeconds: number;
  /** Against the bare handler at the same size and connection count, in the same run. */
  rpsRatio: number;
  p50Ratio: number;
  p99Ratio: number;
  /** Each round's figures, to show the spread. */
  rounds: Array<{ rps: number; p50: number; p99: number }>;
}

/** netpin's own work per review, in the runner's process: no HTTP, no TLS, no other process. */
export interface InProcessRow {
  size: ReviewSize;
  case: Exclude<ServerCase, 'bare'>;
  /** `Admission.review` of an already parsed review, median over the repeats. */
  reviewUs: number;
  /** `JSON.parse` of the same body, the largest part of what every server does per request. */
  parseUs: number;
}

export interface AdmissionReport {
  /** Bytes of the rate-only review of each size (the allocating one differs by its annotation). */
  bodyBytes: Record<ReviewSize, number>;
  rows: AdmissionRow[];
  inProcess: InProcessRow[];
  /** The cores the load generator and the servers ran on. */
  cores: { runner?: number; server?: number; notApplied?: string };
  /** The cgroup every server ran in, and the resident memory of each server idle (started, no request yet). */
  memory: { limit: MemoryLimit; idleSeconds: number; idleRssBytes: Partial<Record<ServerCase, number>> };
  profiles: Array<{
    size: ReviewSize;
    case: ServerCase;
    connections: number;
    seconds: number;
    summary: ProfileSummary;
  }>;
}
