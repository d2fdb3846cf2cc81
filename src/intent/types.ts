import type { IPv4, IPv6 } from 'ipaddr.js';

export type Family = 'ipv4' | 'ipv6';
export type Address = IPv4 | IPv6;

/** At most one address per family: the shape of one pod's IPs. */
export interface DualAddress {
  ipv4?: IPv4;
  ipv6?: IPv6;
}

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
}

export function needsAddress(intent: Intent): boolean {
  return intent.ip !== undefined || intent.ips !== undefined || intent.pools !== undefined;
}

export function familiesOf(addr: DualAddress): Family[] {
  const out: Family[] = [];
  if (addr.ipv4) out.push('ipv4');
  if (addr.ipv6) out.push('ipv6');
  return out;
}

/** Renders `10.0.0.5,fd00::5` in the order CNIs expect: IPv4 first. */
export function formatDual(addr: DualAddress): string {
  return addressList(addr).map((a) => a.toString()).join(',');
}

export function addressList(addr: DualAddress): Address[] {
  const out: Address[] = [];
  if (addr.ipv4) out.push(addr.ipv4);
  if (addr.ipv6) out.push(addr.ipv6);
  return out;
}
