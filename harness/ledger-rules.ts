// Rules every Ledger keeps, asserted the same way for the in-memory ledger and the Kubernetes one.
import { expect } from 'vitest';
import type { Owner } from '../src/ipam/claim.js';
import type { Ledger } from '../src/ipam/ledger.js';
import type { Pool } from '../src/ipam/pool.js';
import { toBigInt } from '../src/net/address.js';

/**
 * The ordering rule: claims started one after another, with no await in between, get addresses in
 * the order they were started, and a fixed address started first is skipped by the ones after it.
 * `pool` must have at least `owners.length + 1` free IPv4 addresses, in one run from its first free.
 */
export async function expectOrderingRule(
  ledger: Ledger,
  pool: Pool,
  fixedOwner: Owner,
  owners: Owner[],
): Promise<void> {
  const first = ledger.index.firstFree(pool.name, 'ipv4');
  expect(first, `IPPool ${pool.name} has a free IPv4 address`).toBeDefined();
  const fixed = ledger.claim(pool, first!, fixedOwner);
  const next = owners.map((o) => ledger.claimNext(pool, 'ipv4', o));
  const [held, ...got] = await Promise.all([fixed, ...next]);
  expect(held!.ip.toString()).toBe(first!.toString());
  const base = toBigInt(first!);
  expect(got.map((c) => toBigInt(c.ip) - base)).toEqual(owners.map((_, k) => BigInt(k + 1)));
  expect(got.map((c) => c.owner)).toEqual(owners);
}
