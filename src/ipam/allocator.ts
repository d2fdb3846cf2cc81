import { KEYS } from '../intent/keys.js';
import { addressList, type Address, type DualAddress, type Family, type Intent, type Problem } from '../intent/types.js';
import { familyOf } from './address.js';
import { ConflictError, describeOwner, ExhaustedError, ownerKey, type Claim, type Ledger, type Owner } from './ledger.js';
import { describePool, poolAdmitsNamespace, poolContains, type Pool } from './pool.js';

export interface AllocationRequest {
  intent: Intent;
  namespace: string;
  namespaceLabels: Record<string, string>;
  owner: Owner;
  /** Which netpin.io/ips entry this owner must get (a StatefulSet ordinal's position); else the first free one. */
  entry?: number;
  /** Report what would be allocated, and claim nothing. */
  dryRun: boolean;
  /** The plan `plan()` already made for this intent and namespace, so that it is not made twice. */
  plan?: Plan;
}

/** Where one pod's addresses come from: its pools, and the addresses when netpin picked them. */
export interface Placement {
  pools: Pool[];
  addresses?: DualAddress;
}

/** Addresses netpin picked for one pod, and the pools they came from (one per family used). */
export interface Allocation extends Placement {
  addresses: DualAddress;
}

/** `fresh` are the claims this call made, for a caller that must give them back when the request fails later. */
export type AllocationResult = { ok: true; allocation: Allocation; claims: Claim[]; fresh: Claim[] } | { ok: false; problems: Problem[] };

type FamilyPools = Partial<Record<Family, Pool>>;

/**
 * Where an intent's addresses would come from: the pool serving each named family, and every pool
 * involved (named, or holding a fixed address), for the CNI's checks. `problems` is empty when
 * allocation may go ahead.
 */
export interface Plan {
  byFamily: FamilyPools;
  pools: Pool[];
  problems: Problem[];
}

const familyName = (f: Family) => (f === 'ipv4' ? 'IPv4' : 'IPv6');

/** Turns an intent into claims: checks pools against the namespace, then claims from the ledger. */
export class Allocator {
  constructor(readonly ledger: Ledger) {}

  /** Pools the namespace may draw from, for messages and checks. */
  allowedPools(namespaceLabels: Record<string, string>): Pool[] {
    return this.ledger.index.allPools().filter((p) => poolAdmitsNamespace(p, namespaceLabels));
  }

  async allocate(req: AllocationRequest): Promise<AllocationResult> {
    const plan = req.plan ?? this.plan(req.intent, req.namespace, req.namespaceLabels);
    if (plan.problems.length) return { ok: false, problems: plan.problems };
    const { byFamily } = plan;
    const { intent } = req;

    let wanted: DualAddress[] | undefined;
    if (intent.ip) wanted = [intent.ip];
    else if (intent.ips && req.entry !== undefined) {
      const entry = intent.ips[req.entry];
      if (!entry) {
        return fail(KEYS.ips, `has ${intent.ips.length} entries, but ${describeOwner(req.owner)} needs entry ${req.entry + 1}`,
          `list one entry per replica, in ordinal order (entry 1 for the first ordinal), or scale down`);
      }
      wanted = [entry];
    } else if (intent.ips) wanted = intent.ips;

    const held = this.ledger.index.claimsOf(req.owner);
    if (held.length > 0) {
      // Sticky: a StatefulSet ordinal or a re-admitted pod keeps what it holds while the intent still allows it.
      if (fits(held, wanted, byFamily)) return this.ok(held, []);
      if (!req.dryRun) for (const c of held) await this.ledger.release(c);
    }

    if (wanted) return this.claimListed(req, wanted, byFamily);
    return this.claimFromPools(req, byFamily);
  }

  /** Named pools exist and select the namespace, families fit the pools, fixed addresses lie in usable pools. */
  plan(intent: Intent, namespace: string, labels: Record<string, string>): Plan {
    const problems: Problem[] = [];
    // Only a refusal lists the pools: formatting every range is not worth doing per admitted pod.
    const allowed = () => {
      const pools = this.allowedPools(labels);
      return pools.length ? pools.map(describePool).join('; ') : 'none';
    };
    const byFamily: FamilyPools = {};
    const pools: Pool[] = [];
    const involve = (p: Pool) => {
      if (!pools.includes(p)) pools.push(p);
    };

    for (const name of intent.pools ?? []) {
      const pool = this.ledger.index.pool(name);
      if (!pool) {
        problems.push({ key: KEYS.pool, message: `IPPool ${name} does not exist`, fix: `name a pool namespace ${namespace} may use: ${allowed()}` });
        continue;
      }
      if (!poolAdmitsNamespace(pool, labels)) {
        problems.push({
          key: KEYS.pool,
          message: `IPPool ${name} does not select namespace ${namespace} (spec.namespaceSelector)`,
          fix: `name a pool namespace ${namespace} may use (${allowed()}), or widen the namespaceSelector of IPPool ${name}`,
        });
        continue;
      }
      for (const f of pool.families) {
        if (byFamily[f]) {
          problems.push({ key: KEYS.pool, message: `IPPools ${byFamily[f]!.name} and ${name} both serve ${familyName(f)}`, fix: 'name one pool, or one pool per family' });
        }
        byFamily[f] = pool;
      }
      involve(pool);
    }
    if (problems.length) return { byFamily, pools, problems };

    const fixed: Array<[string, Address]> = [];
    if (intent.ip) for (const a of addressList(intent.ip)) fixed.push([KEYS.ip, a]);
    for (const e of intent.ips ?? []) for (const a of addressList(e)) fixed.push([KEYS.ips, a]);
    for (const [key, addr] of fixed) {
      const family = familyOf(addr);
      const named = byFamily[family];
      if (intent.pools && !named) {
        problems.push({
          key,
          message: `asks for an ${familyName(family)} address, but IPPool ${intent.pools.join(', ')} has no ${familyName(family)} range`,
          fix: `name an ${familyName(family)} pool too (netpin.io/pool: ${intent.pools[0]},<${familyName(family)} pool>), or drop the ${familyName(family)} address`,
        });
      } else if (named && !poolContains(named, addr)) {
        problems.push({ key, message: `${addr.toString()} lies outside IPPool ${describePool(named)}`, fix: `choose an address inside IPPool ${named.name}, or name the pool that holds it` });
      } else if (!named) {
        const home = this.ledger.index.poolOf(addr);
        if (home) involve(home);
        if (!home) {
          problems.push({ key, message: `${addr.toString()} lies outside every IPPool`, fix: `choose an address in a pool namespace ${namespace} may use: ${allowed()}` });
        } else if (!poolAdmitsNamespace(home, labels)) {
          problems.push({
            key,
            message: `${addr.toString()} lies in IPPool ${home.name}, which does not select namespace ${namespace} (spec.namespaceSelector)`,
            fix: `choose an address in a pool namespace ${namespace} may use: ${allowed()}`,
          });
        }
      }
    }
    return { byFamily, pools, problems };
  }

  /** Fixed addresses: the first listed entry whose addresses are all free (or already this owner's). */
  private async claimListed(req: AllocationRequest, entries: DualAddress[], byFamily: FamilyPools): Promise<AllocationResult> {
    const key = req.intent.ip ? KEYS.ip : KEYS.ips;
    let lastConflict: ConflictError | undefined;
    for (const entry of entries) {
      const addrs = addressList(entry);
      const holder = addrs.map((a) => this.ledger.index.holderOf(a)).find((c) => c && ownerKey(c.owner) !== ownerKey(req.owner));
      if (holder) {
        lastConflict = new ConflictError(holder);
        continue;
      }
      if (req.dryRun) return this.ok(addrs.map((ip) => this.virtualClaim(ip, req.owner, byFamily)), []);
      try {
        const got = await this.claimAll(addrs.map((ip) => this.ledger.claim(this.poolFor(ip, byFamily), ip, req.owner)));
        return this.ok(got, got);
      } catch (e) {
        if (!(e instanceof ConflictError)) throw e;
        lastConflict = e;
      }
    }
    const c = lastConflict!;
    if (entries.length > 1) {
      return fail(key, `all ${entries.length} entries are held (the last one, ${c.message})`, 'add entries to netpin.io/ips, or lower the replica count');
    }
    const pool = this.ledger.index.pool(c.holder.pool);
    const next = pool && this.ledger.index.firstFree(pool.name, familyOf(c.holder.ip));
    return fail(key, `${c.message} (IPPool ${c.holder.pool})`,
      `choose a free address${next ? ` such as ${next.toString()}` : ''}, or let netpin choose with netpin.io/pool${pool ? `: ${pool.name}` : ''}`);
  }

  private async claimFromPools(req: AllocationRequest, byFamily: FamilyPools): Promise<AllocationResult> {
    const families = (['ipv4', 'ipv6'] as const).filter((f) => byFamily[f]);
    if (req.dryRun) {
      const got: Claim[] = [];
      for (const family of families) {
        const pool = byFamily[family]!;
        const ip = this.ledger.index.firstFree(pool.name, family);
        if (!ip) return this.exhausted(new ExhaustedError(pool, family), req);
        got.push({ pool: pool.name, ip, owner: req.owner, createdAt: Date.now() });
      }
      return this.ok(got, []);
    }
    try {
      const got = await this.claimAll(families.map((f) => this.ledger.claimNext(byFamily[f]!, f, req.owner)));
      return this.ok(got, got);
    } catch (e) {
      if (e instanceof ExhaustedError) return this.exhausted(e, req);
      throw e;
    }
  }

  /**
   * Waits for claims started together; on any failure gives back the others and throws it.
   * Started together because each ledger marks its address taken before its first await:
   * callers that start several allocations in a row get addresses in that order, and the
   * writes overlap.
   */
  private async claimAll(pending: Array<Promise<Claim>>): Promise<Claim[]> {
    const settled = await Promise.allSettled(pending);
    const failed = settled.find((r) => r.status === 'rejected');
    const got = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    if (!failed) return got;
    for (const c of got) await this.ledger.release(c);
    throw failed.reason;
  }

  private exhausted(e: ExhaustedError, req: AllocationRequest): AllocationResult {
    const usage = this.ledger.index.usage(e.pool.name).find((u) => u.family === e.family);
    const others = this.allowedPools(req.namespaceLabels).filter((p) => p.name !== e.pool.name && p.families.includes(e.family));
    return fail(KEYS.pool, `${e.message} (${usage?.allocated ?? 0} of ${usage?.capacity ?? 0} held)`,
      `add addresses to IPPool ${e.pool.name} (spec.cidr or spec.ranges), delete workloads that hold them${others.length ? `, or name another pool: ${others.map((p) => p.name).join(', ')}` : ''}`);
  }

  private ok(claims: Claim[], fresh: Claim[]): AllocationResult {
    const addresses: DualAddress = {};
    const pools: Pool[] = [];
    for (const c of claims) {
      if (familyOf(c.ip) === 'ipv4') addresses.ipv4 = c.ip as DualAddress['ipv4'];
      else addresses.ipv6 = c.ip as DualAddress['ipv6'];
      const pool = this.ledger.index.pool(c.pool);
      if (pool && !pools.includes(pool)) pools.push(pool);
    }
    return { ok: true, allocation: { addresses, pools }, claims, fresh };
  }

  private poolFor(ip: Address, byFamily: FamilyPools): Pool {
    return byFamily[familyOf(ip)] ?? this.ledger.index.poolOf(ip)!;
  }

  private virtualClaim(ip: Address, owner: Owner, byFamily: FamilyPools): Claim {
    return { pool: this.poolFor(ip, byFamily).name, ip, owner, createdAt: Date.now() };
  }
}

function fits(held: Claim[], wanted: DualAddress[] | undefined, byFamily: FamilyPools): boolean {
  if (wanted) {
    const heldSet = new Set(held.map((c) => c.ip.toString()));
    return wanted.some((e) => {
      const addrs = addressList(e);
      return addrs.length === held.length && addrs.every((a) => heldSet.has(a.toString()));
    });
  }
  return held.length === Object.keys(byFamily).length && held.every((c) => byFamily[familyOf(c.ip)]?.name === c.pool);
}


function fail(key: string, message: string, fix: string): AllocationResult {
  return { ok: false, problems: [{ key, message, fix }] };
}
