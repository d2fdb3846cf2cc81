import type { DualAddress } from '../net/address.js';

/** A bit rate, kept as the user wrote it and as exact bits per second. */
export interface Rate {
  text: string;
  bitsPerSecond: bigint;
}

export type EgressMode = 'snat' | 'eip';

/** What the user asked for with the netpin.io/ annotations, parsed and checked for syntax only. */
export interface Intent {
  ip?: DualAddress;
  ips?: DualAddress[];
  /** Pool names in the order written: one pool for every family, or one per family. */
  pools?: string[];
  /** An egress address: fixed (`ip`), or drawn from egress pools, one per family (`pools`). */
  egress?: { ip?: DualAddress; pools?: string[]; mode: EgressMode };
  ingressRate?: Rate;
  egressRate?: Rate;
  latencyMs?: number;
  jitterMs?: number;
  lossPercent?: number;
  limitPackets?: number;
}

/**
 * Why a request cannot be admitted. `key` names the annotation at fault,
 * `fix` says what to write instead; the renderer adds the CNI.
 */
export interface Problem {
  key: string;
  message: string;
  fix: string;
  /** Where the key's value came from when the object itself did not write it: "namespace shop's default". */
  source?: string;
}

export function needsAddress(intent: Intent): boolean {
  return intent.ip !== undefined || intent.ips !== undefined || intent.pools !== undefined;
}
