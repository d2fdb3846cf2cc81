// What the allocator's parts share: pool roles, and the pieces of their answers.
import { addressList, familyOf, type DualAddress, type Family } from '../../net/address.js';
import type { Claim } from '../claim.js';
import type { ClaimIndex } from '../claim-index.js';
import { poolAdmitsNamespace, type Pool } from '../pool.js';
import type { FamilyPools, Refusal } from './types.js';

export const familyName = (f: Family) => (f === 'ipv4' ? 'IPv4' : 'IPv6');

/** A pod pool hands out pod addresses, an egress pool (spec.egress) egress addresses: never both. */
export type Role = 'pod' | 'egress';
export const roleOf = (p: Pool): Role => (p.egress ? 'egress' : 'pod');

/** Pools the namespace may draw from, for messages and checks. */
export function allowedPools(index: ClaimIndex, namespaceLabels: Record<string, string>): Pool[] {
  return index.allPools().filter((p) => poolAdmitsNamespace(p, namespaceLabels));
}

/** Whether what an owner holds still fits the request: the addresses it fixes, or one of each named pool's families. */
export function fits(held: Claim[], wanted: DualAddress[] | undefined, byFamily: FamilyPools): boolean {
  if (wanted) {
    const heldSet = new Set(held.map((c) => c.ip.toString()));
    return wanted.some((e) => {
      const addrs = addressList(e);
      return addrs.length === held.length && addrs.every((a) => heldSet.has(a.toString()));
    });
  }
  return held.length === Object.keys(byFamily).length && held.every((c) => byFamily[familyOf(c.ip)]?.name === c.pool);
}

export function fail(key: string, message: string, fix: string): Refusal {
  return { ok: false, problems: [{ key, message, fix }] };
}

export function dualOf(claims: Claim[]): DualAddress {
  const out: DualAddress = {};
  for (const c of claims) Object.assign(out, { [familyOf(c.ip)]: c.ip });
  return out;
}
