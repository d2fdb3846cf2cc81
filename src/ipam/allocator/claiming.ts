import { KEYS } from '../../intent/keys.js';
import type { Problem } from '../../intent/types.js';
import { addressList, familyOf, type Address, type DualAddress } from '../../net/address.js';
import { ConflictError, ExhaustedError, ownerKey, type Claim, type Owner } from '../claim.js';
import type { ClaimIndex } from '../claim-index.js';
import type { Ledger } from '../ledger.js';
import type { Pool } from '../pool.js';
import { exhausted, overLimit } from './namespace-limit.js';
import { dualOf, fail } from './shared.js';
import type { AllocationRequest, AllocationResult, FamilyPools } from './types.js';

/**
 * Waits for claims started together; on any failure gives back the others and throws it.
 * Started together because each ledger marks its address taken before its first await:
 * callers that start several allocations in a row get addresses in that order, and the
 * writes overlap.
 */
export async function claimAll(ledger: Ledger, pending: Array<Promise<Claim>>): Promise<Claim[]> {
  const settled = await Promise.allSettled(pending);
  const failed = settled.find((r) => r.status === 'rejected');
  const got = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  if (!failed) return got;
  for (const c of got) await ledger.release(c);
  throw failed.reason;
}

/** An allocation of these claims, with the pools they came from; `fresh` are those this call made. */
export function allocated(index: ClaimIndex, claims: Claim[], fresh: Claim[]): AllocationResult {
  const pools: Pool[] = [];
  for (const c of claims) {
    const pool = index.pool(c.pool);
    if (pool && !pools.includes(pool)) pools.push(pool);
  }
  return { ok: true, allocation: { addresses: dualOf(claims), pools }, claims, fresh };
}

function poolFor(index: ClaimIndex, ip: Address, byFamily: FamilyPools): Pool {
  return byFamily[familyOf(ip)] ?? index.poolOf(ip)!;
}

/** A fixed address another owner holds: the holder named, and a free address of its pool to choose instead. */
export function heldProblem(index: ClaimIndex, key: string, holder: Claim): Problem {
  const pool = index.pool(holder.pool);
  const next = pool && index.firstFree(pool.name, familyOf(holder.ip));
  return {
    key,
    message: `${new ConflictError(holder).message} (IPPool ${holder.pool})`,
    fix: `choose a free address${next ? ` such as ${next.toString()}` : ''}, or let netpin choose with netpin.io/pool${pool ? `: ${pool.name}` : ''}`,
  };
}

/** Fixed addresses: the first listed entry whose addresses are all free (or already this owner's). */
export async function claimListed(
  ledger: Ledger,
  req: AllocationRequest,
  entries: DualAddress[],
  byFamily: FamilyPools,
): Promise<AllocationResult> {
  const index = ledger.index;
  const key = req.intent.ip ? KEYS.ip : KEYS.ips;
  let lastConflict: ConflictError | undefined;
  for (const entry of entries) {
    const addrs = addressList(entry);
    const holder = addrs.map((a) => index.holderOf(a)).find((c) => c && ownerKey(c.owner) !== ownerKey(req.owner));
    if (holder) {
      lastConflict = new ConflictError(holder);
      continue;
    }
    const over = overLimit(
      index,
      req,
      addrs.map((ip) => [poolFor(index, ip, byFamily), familyOf(ip)]),
      key,
    );
    if (over) return over;
    if (req.dryRun)
      return allocated(
        index,
        addrs.map((ip) => virtualClaim(index, ip, req.owner, byFamily)),
        [],
      );
    try {
      const got = await claimAll(
        ledger,
        addrs.map((ip) => ledger.claim(poolFor(index, ip, byFamily), ip, req.owner)),
      );
      return allocated(index, got, got);
    } catch (e) {
      if (!(e instanceof ConflictError)) throw e;
      lastConflict = e;
    }
  }
  const c = lastConflict!;
  if (entries.length > 1) {
    return fail(
      key,
      `all ${entries.length} entries are held (the last one, ${c.message})`,
      'add entries to netpin.io/ips, or lower the replica count',
    );
  }
  return { ok: false, problems: [heldProblem(index, key, c.holder)] };
}

function virtualClaim(index: ClaimIndex, ip: Address, owner: Owner, byFamily: FamilyPools): Claim {
  return { pool: poolFor(index, ip, byFamily).name, ip, owner, createdAt: Date.now() };
}

/** The first free address of each family's pool. */
export async function claimFromPools(
  ledger: Ledger,
  req: AllocationRequest,
  byFamily: FamilyPools,
): Promise<AllocationResult> {
  const index = ledger.index;
  const families = (['ipv4', 'ipv6'] as const).filter((f) => byFamily[f]);
  // Checked with no await before the claims, which count in the index at once: no two admissions of
  // this process both take the namespace's last address under the cap.
  const over = overLimit(
    index,
    req,
    families.map((f) => [byFamily[f]!, f]),
    KEYS.pool,
  );
  if (over) return over;
  if (req.dryRun) {
    const got: Claim[] = [];
    for (const family of families) {
      const pool = byFamily[family]!;
      const ip = index.firstFree(pool.name, family);
      if (!ip) return exhausted(index, new ExhaustedError(pool, family), req.namespaceLabels, KEYS.pool);
      got.push({ pool: pool.name, ip, owner: req.owner, createdAt: Date.now() });
    }
    return allocated(index, got, []);
  }
  try {
    const got = await claimAll(
      ledger,
      families.map((f) => ledger.claimNext(byFamily[f]!, f, req.owner)),
    );
    return allocated(index, got, got);
  } catch (e) {
    if (e instanceof ExhaustedError) return exhausted(index, e, req.namespaceLabels, KEYS.pool);
    throw e;
  }
}
