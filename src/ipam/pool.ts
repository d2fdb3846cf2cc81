import {
  familyOf,
  formatRange,
  parseRange,
  rangeOverlap,
  toBigInt,
  type Address,
  type AddressRange,
  type Family,
} from '../net/address.js';
import { matchesSelector, type LabelSelector } from './selector.js';

/** Native names of the same address space in each CNI, for the annotations that select a pool. */
export interface CniPoolNames {
  calico?: { pool?: string };
  kubeOvn?: { subnet?: string };
  antrea?: { pool?: string };
  /**
   * `pool`: the CiliumPodIPPool Cilium assigns this range from by itself. `pinned`: instead, netpin picks
   * every address and gives Cilium each one as a CiliumPodIPPool of its own (src/cni/cilium-pools.ts).
   */
  cilium?: { pool?: string; pinned?: boolean };
}

/** `spec` of the cluster-scoped `netpin.io/v1alpha1` IPPool. */
export interface IPPoolSpec {
  cidr?: string;
  ranges?: string[];
  exclude?: string[];
  namespaceSelector?: LabelSelector;
  cni?: CniPoolNames;
  /** Present: an egress pool, whose addresses are egress (SNAT) addresses and never pod addresses. */
  egress?: EgressSpec;
  /**
   * The most addresses of each family one namespace may hold from this pool: its pods' claims, its
   * StatefulSets' reservations and its egress addresses together. Absent: no cap but the pool's size.
   */
  namespaceLimit?: number;
  /**
   * The subnets the pool's addresses sit in, each with its gateway: what the netpin-ipam plugin returns
   * beside each address. Absent: spec.cidr, with its first address as the gateway. Read by that dialect only.
   */
  subnets?: Array<{ cidr?: string; gateway?: string }>;
}

/** What the CNIs need to put a pool's egress addresses on gateway nodes. */
interface EgressSpec {
  /** The gateway nodes: Antrea's ExternalIPPool.spec.nodeSelector, Cilium's egressGateway.nodeSelector. */
  nodeSelector?: LabelSelector;
}

export interface IPPoolObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; resourceVersion?: string; uid?: string; deletionTimestamp?: string };
  spec: IPPoolSpec;
  status?: unknown;
}

/** A pool ready for allocation: its usable ranges per family, exclusions already removed. */
export interface Pool {
  name: string;
  families: Family[];
  /** Usable ranges in ascending order, per family. */
  ranges: Record<Family, AddressRange[]>;
  capacity: Record<Family, bigint>;
  namespaceSelector?: LabelSelector;
  cni: CniPoolNames;
  /** Set for an egress pool. */
  egress?: EgressSpec;
  /** spec.namespaceLimit: the most addresses of each family one namespace may hold from this pool. */
  namespaceLimit?: number;
  spec: IPPoolSpec;
  /** A ClusterSet's pool, read from its broker: claimed there, so that no two member clusters hold an address. */
  shared?: boolean;
}

export class PoolSpecError extends Error {}

/** Builds a Pool from its spec, or throws PoolSpecError saying what is malformed. */
export function compilePool(obj: IPPoolObject): Pool {
  const name = obj.metadata?.name;
  if (!name) throw new PoolSpecError('IPPool has no metadata.name');
  const spec = obj.spec ?? {};
  const sources: string[] = [];
  if (spec.cidr !== undefined) {
    if (typeof spec.cidr !== 'string') throw new PoolSpecError(`IPPool ${name}: spec.cidr must be a string`);
    sources.push(spec.cidr);
  }
  if (spec.ranges !== undefined) {
    if (!Array.isArray(spec.ranges) || spec.ranges.some((r) => typeof r !== 'string')) {
      throw new PoolSpecError(`IPPool ${name}: spec.ranges must be a list of strings`);
    }
    sources.push(...spec.ranges);
  }
  if (sources.length === 0) throw new PoolSpecError(`IPPool ${name}: set spec.cidr or spec.ranges`);
  // A pools file has no CRD schema: `exclude: 10.0.0.1` (no list) must be refused, not crash.
  if (spec.exclude !== undefined && (!Array.isArray(spec.exclude) || spec.exclude.some((r) => typeof r !== 'string'))) {
    throw new PoolSpecError(`IPPool ${name}: spec.exclude must be a list of strings`);
  }
  const include = sources.map((s) => rangeOrThrow(name, 'spec.cidr/ranges', s, true));
  const exclude = (spec.exclude ?? []).map((s) => rangeOrThrow(name, 'spec.exclude', s, false));

  const ranges: Record<Family, AddressRange[]> = { ipv4: [], ipv6: [] };
  const capacity: Record<Family, bigint> = { ipv4: 0n, ipv6: 0n };
  for (const family of ['ipv4', 'ipv6'] as const) {
    const merged = merge(include.filter((r) => r.family === family));
    ranges[family] = subtract(merged, merge(exclude.filter((r) => r.family === family)));
    capacity[family] = ranges[family].reduce((n, r) => n + r.last - r.first + 1n, 0n);
  }
  const families = (['ipv4', 'ipv6'] as const).filter((f) => include.some((r) => r.family === f));
  if (
    spec.egress !== undefined &&
    (spec.egress === null || typeof spec.egress !== 'object' || Array.isArray(spec.egress))
  ) {
    throw new PoolSpecError(`IPPool ${name}: spec.egress must be an object`);
  }
  const limit = spec.namespaceLimit;
  if (limit !== undefined && (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 0)) {
    throw new PoolSpecError(`IPPool ${name}: spec.namespaceLimit must be a whole number of addresses, 0 or more`);
  }
  return {
    name,
    families,
    ranges,
    capacity,
    namespaceSelector: spec.namespaceSelector,
    cni: spec.cni ?? {},
    ...(spec.egress && { egress: spec.egress }),
    ...(limit !== undefined && { namespaceLimit: limit }),
    spec,
  };
}

function rangeOrThrow(pool: string, field: string, text: string, dropEnds: boolean): AddressRange {
  const r = parseRange(text, dropEnds);
  if (typeof r === 'string') throw new PoolSpecError(`IPPool ${pool}: ${field}: ${r}`);
  return r;
}

function byFirst(a: AddressRange, b: AddressRange): number {
  return a.first < b.first ? -1 : a.first > b.first ? 1 : 0;
}

function merge(rs: AddressRange[]): AddressRange[] {
  const out: AddressRange[] = [];
  for (const r of [...rs].sort(byFirst)) {
    const prev = out[out.length - 1];
    if (prev && prev.last + 1n >= r.first) {
      if (r.last > prev.last) prev.last = r.last;
    } else out.push({ ...r });
  }
  return out;
}

function subtract(rs: AddressRange[], cut: AddressRange[]): AddressRange[] {
  const out: AddressRange[] = [];
  for (const r of rs) {
    let first = r.first;
    for (const c of cut) {
      if (c.last < first || c.first > r.last) continue;
      if (c.first > first) out.push({ family: r.family, first, last: c.first - 1n });
      first = c.last + 1n;
      if (first > r.last) break;
    }
    if (first <= r.last) out.push({ family: r.family, first, last: r.last });
  }
  return out;
}

export function poolContains(pool: Pool, addr: Address): boolean {
  const n = toBigInt(addr);
  return pool.ranges[familyOf(addr)].some((r) => r.first <= n && n <= r.last);
}

export function poolAdmitsNamespace(pool: Pool, namespaceLabels: Record<string, string>): boolean {
  // A pool without a selector is open to every namespace, as an operator would expect of a shared pool.
  return pool.namespaceSelector === undefined || matchesSelector(pool.namespaceSelector, namespaceLabels);
}

export function describePool(pool: Pool): string {
  return `${pool.name} (${describeRanges(pool)})`;
}

export function describeRanges(pool: Pool): string {
  return pool.families.flatMap((f) => pool.ranges[f].map(formatRange)).join(', ') || 'no usable address';
}

/** Whether two pools share an address; returns one shared range for the message. */
export function poolOverlap(a: Pool, b: Pool): AddressRange | undefined {
  for (const family of ['ipv4', 'ipv6'] as const) {
    for (const x of a.ranges[family]) {
      for (const y of b.ranges[family]) {
        const shared = rangeOverlap(x, y);
        if (shared) return shared;
      }
    }
  }
  return undefined;
}
