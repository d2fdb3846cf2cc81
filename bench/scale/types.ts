// The scale part's options and report, apart from the code that measures them.
import type { Latency } from '../load.js';
import type { StackRun } from '../profile.js';
import type { MemoryLimit } from '../proc.js';

export interface ScaleOptions {
  root: string;
  /** IPClaims in the loaded ledger: one per pinned pod, the rest StatefulSet reservations. */
  claims: number;
  pods: number;
  /** Allocating reviews posted to netpin in each phase, after a second of warm-up. */
  requests: number;
  connections: number;
  /** API requests in flight while the ledger is filled. */
  fillConcurrency: number;
  log: (line: string) => void;
}

export type ScaleLedger = 'empty' | 'loaded';

export interface ScalePhase {
  ledger: ScaleLedger;
  claims: number;
  pods: number;
  /** From netpin's spawn until its /readyz answers 200 (the ledger's lists are in and its watches started). */
  readySeconds: number;
  /** VmRSS once ready, VmRSS after the reviews, VmHWM at the end. */
  rssReadyBytes?: number;
  rssAfterLoadBytes?: number;
  peakRssBytes?: number;
  requests: number;
  rps: number;
  latencyMs: Latency;
  /** IPClaim creates posted straight to the API server after the reviews, as many and as concurrent: what each review waits on. */
  apiserverCreateMs: Latency;
  /** Each reconciler round seen in the profiled window, every claim past its grace period and none to release. */
  sweeps: StackRun[];
}

export interface ScaleReport {
  kubernetes: string;
  memory: MemoryLimit;
  pools: number;
  namespaces: number;
  statefulSets: number;
  fill: { objects: number; seconds: number; concurrency: number };
  sweepWindowSeconds: number;
  phases: ScalePhase[];
}
