// Where a pool's addresses sit on the pod network: the subnet each shares with its gateway. Only the
// netpin-ipam plugin needs it (it returns each address with a prefix length and a gateway), and it
// reads no IPPool, so netpin writes both beside the address.
import type { Problem } from '../intent/types.js';
import { poolContains, type Pool } from '../ipam/pool.js';
import {
  familyOf,
  formatRange,
  fromBigInt,
  parseAddress,
  parseRange,
  rangeWithin,
  toBigInt,
  type Address,
  type AddressRange,
} from '../net/address.js';
import { shown } from '../net/shown.js';

/** The subnet an address sits in, and the gateway its pod routes through. */
export interface Subnet {
  /** Every address of the subnet, network and broadcast included. */
  range: AddressRange;
  prefixLength: number;
  gateway: Address;
}

/** A pool's subnets, or why netpin-ipam could not place its addresses. */
export interface PoolSubnets {
  subnets: Subnet[];
  problems: Problem[];
}

/** spec.subnets is read entry by entry: more than this is no network anyone runs, and would cost work per request. */
export const MAX_SUBNETS = 16;

const FIELD = 'spec.subnets';

/**
 * The subnets of a pool: spec.subnets as written, or else the subnet of spec.cidr with its first
 * address as the gateway. Every usable range must lie in one of them, and no gateway may be an address
 * the pool hands out.
 */
export function subnetsOf(pool: Pool): PoolSubnets {
  let read = known.get(pool);
  if (!read) known.set(pool, (read = readSubnets(pool)));
  return read;
}

/**
 * A pod's check and its rendering both ask for the subnets of the same pools; a Pool is compiled once
 * per version of its IPPool and never changed, so what was read of it holds until it is replaced.
 */
const known = new WeakMap<Pool, PoolSubnets>();

function readSubnets(pool: Pool): PoolSubnets {
  const written = pool.spec.subnets;
  const read = written === undefined ? fromCidr(pool) : fromSpec(pool, written);
  if (read.problems.length) return read;
  const problems: Problem[] = [];
  for (const s of read.subnets) {
    if (poolContains(pool, s.gateway)) {
      problems.push({
        key: written === undefined ? 'spec.exclude' : FIELD,
        message: `the pool hands out ${s.gateway.toString()}, the gateway of its subnet ${subnetText(s)}, so a pod could be given its own gateway`,
        fix: `add ${s.gateway.toString()} to spec.exclude of IPPool ${pool.name}`,
      });
    }
  }
  for (const f of pool.families) {
    for (const r of pool.ranges[f]) {
      if (read.subnets.some((s) => rangeWithin(r, s.range))) continue;
      problems.push({
        key: FIELD,
        message: `${formatRange(r)} lies in no subnet of ${written === undefined ? 'spec.cidr' : FIELD}, so netpin-ipam has no prefix length and gateway for it`,
        fix: `add the subnet that holds ${formatRange(r)} and its gateway to spec.subnets of IPPool ${pool.name}`,
      });
    }
  }
  return { subnets: read.subnets, problems };
}

/** The subnet holding `addr`, among a pool's. */
export function subnetFor(subnets: readonly Subnet[], addr: Address): Subnet | undefined {
  const n = toBigInt(addr);
  return subnets.find((s) => s.range.family === familyOf(addr) && s.range.first <= n && n <= s.range.last);
}

export function subnetText(s: Subnet): string {
  return `${fromBigInt(s.range.first, s.range.family).toString()}/${s.prefixLength}`;
}

function fromCidr(pool: Pool): PoolSubnets {
  const cidr = pool.spec.cidr;
  if (cidr === undefined) {
    return {
      subnets: [],
      problems: [
        {
          key: FIELD,
          message: `the pool has no spec.cidr and no spec.subnets, so netpin-ipam knows no prefix length or gateway for its addresses`,
          fix: `set spec.subnets on IPPool ${pool.name}: each subnet its ranges lie in (cidr) and its gateway`,
        },
      ],
    };
  }
  const subnet = parseSubnet(cidr);
  if (typeof subnet === 'string')
    return { subnets: [], problems: [{ key: 'spec.cidr', message: subnet, fix: 'write spec.cidr as a CIDR' }] };
  // The first address after the network address: the bridge's or router's own address by convention.
  const gateway = fromBigInt(subnet.range.first + 1n, subnet.range.family);
  return { subnets: [{ ...subnet, gateway }], problems: [] };
}

function fromSpec(pool: Pool, written: unknown): PoolSubnets {
  const fix = `write spec.subnets of IPPool ${pool.name} as a list of { cidr: 10.20.0.0/24, gateway: 10.20.0.1 }, at most ${MAX_SUBNETS}`;
  if (!Array.isArray(written) || written.length > MAX_SUBNETS || written.length === 0) {
    return { subnets: [], problems: [{ key: FIELD, message: `is not a list of 1 to ${MAX_SUBNETS} subnets`, fix }] };
  }
  const subnets: Subnet[] = [];
  const problems: Problem[] = [];
  written.forEach((entry: unknown, i) => {
    const e = (entry ?? {}) as { cidr?: unknown; gateway?: unknown };
    const where = `${FIELD}[${i}]`;
    const subnet = typeof e.cidr === 'string' ? parseSubnet(e.cidr) : 'has no cidr';
    if (typeof subnet === 'string') return problems.push({ key: where, message: subnet, fix });
    const gateway = typeof e.gateway === 'string' ? parseAddress(e.gateway) : undefined;
    const problem = gatewayProblem(subnet, gateway, e.gateway);
    if (problem) return problems.push({ key: `${where}.gateway`, message: problem, fix });
    subnets.push({ ...subnet, gateway: gateway! });
  });
  return { subnets, problems };
}

function gatewayProblem(
  subnet: Omit<Subnet, 'gateway'>,
  gateway: Address | undefined,
  text: unknown,
): string | undefined {
  const cidr = `${fromBigInt(subnet.range.first, subnet.range.family).toString()}/${subnet.prefixLength}`;
  if (!gateway) return `${typeof text === 'string' ? shown(text) : 'a missing gateway'} is not an address`;
  const n = toBigInt(gateway);
  const { first, last, family } = subnet.range;
  if (familyOf(gateway) !== family || n < first || n > last) return `${gateway.toString()} lies outside ${cidr}`;
  const ends = family === 'ipv4' && last - first > 1n;
  if (n === first || (ends && n === last))
    return `${gateway.toString()} is the ${n === first ? 'network' : 'broadcast'} address of ${cidr}`;
  return undefined;
}

function parseSubnet(text: string): Omit<Subnet, 'gateway'> | string {
  if (!text.includes('/')) return `${shown(text)} is not a CIDR`;
  const range = parseRange(text, false);
  if (typeof range === 'string') return range;
  return { range, prefixLength: Number(text.trim().slice(text.trim().indexOf('/') + 1)) };
}
