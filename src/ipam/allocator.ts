import { KEYS } from '../intent/keys.js';
import { type Intent, type Problem } from '../intent/types.js';
import { addressList, familyOf, type Address, type DualAddress, type Family } from '../net/address.js';
import {
  ConflictError,
  describeOwner,
  ExhaustedError,
  ownerKey,
  type Claim,
  type EgressOwner,
  type Owner,
} from './claim.js';
import type { PoolUsage } from './claim-index.js';
import type { Ledger } from './ledger.js';
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
  /** The pod's egress address, fixed or given from an egress pool. */
  egress?: DualAddress;
}

/** Addresses netpin picked for one pod, and the pools they came from (one per family used). */
export interface Allocation extends Placement {
  addresses: DualAddress;
}

/** `fresh` are the claims this call made, for a caller that must give them back when the request fails later. */
export type AllocationResult =
  { ok: true; allocation: Allocation; claims: Claim[]; fresh: Claim[] } | { ok: false; problems: Problem[] };

type FamilyPools = Partial<Record<Family, Pool>>;

/**
 * Where an intent's addresses would come from: the pool serving each named family, and every pool
 * involved (named, or holding a fixed address), for the CNI's checks. `problems` is empty when
 * allocation may go ahead.
 */
export interface Plan {
  byFamily: FamilyPools;
  pools: Pool[];
  /** The egress pools serving each family of netpin.io/egress-pool, and every egress pool involved. */
  egressByFamily: FamilyPools;
  egressPools: Pool[];
  problems: Problem[];
  /** A named pool or a fixed address was not found in any pool this process knows. */
  unknown: boolean;
}

export interface EgressRequest {
  intent: Intent;
  namespace: string;
  namespaceLabels: Record<string, string>;
  owner: EgressOwner;
  dryRun: boolean;
  plan: Plan;
}

export type EgressResult = { ok: true; addresses: DualAddress; fresh: Claim[] } | { ok: false; problems: Problem[] };

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
    const wanted = this.wanted(req);
    if (wanted && 'problems' in wanted) return wanted;

    const held = this.ledger.index.claimsOf(req.owner);
    if (held.length > 0) {
      // Sticky: a StatefulSet ordinal or a re-admitted pod keeps what it holds while the intent still allows it.
      // A pod's claims are renewed first: the reconciler may have found no pod of this name a moment
      // ago, and its release must not free them under this one. One that is gone is claimed afresh.
      if (fits(held, wanted, byFamily) && (req.dryRun || (await this.renewPodClaims(held)))) return this.ok(held, []);
      // What it holds now, not what was read before the renewals: a renewed claim is a new state, and a
      // release of the old one would leave it held beside the fresh claims.
      if (!req.dryRun) for (const c of this.ledger.index.claimsOf(req.owner)) await this.ledger.release(c);
    }

    if (wanted) return this.claimListed(req, wanted, byFamily);
    return this.claimFromPools(req, byFamily);
  }

  /**
   * What the owner holds that this request would give back before claiming afresh. A caller that
   * must get addresses in the order it starts allocations (StatefulSet ordinals) releases these
   * first, so that no allocation waits on a release between its start and its claims.
   */
  staleClaims(req: AllocationRequest): Claim[] {
    const plan = req.plan ?? this.plan(req.intent, req.namespace, req.namespaceLabels);
    const wanted = this.wanted(req);
    const held = this.ledger.index.claimsOf(req.owner);
    if (plan.problems.length || (wanted && 'problems' in wanted) || fits(held, wanted, plan.byFamily)) return [];
    return held;
  }

  /** The addresses the intent fixes for this owner: undefined when it names pools only. */
  private wanted(req: AllocationRequest): DualAddress[] | { ok: false; problems: Problem[] } | undefined {
    const { intent } = req;
    if (intent.ip) return [intent.ip];
    if (intent.ips && req.entry !== undefined) {
      const entry = intent.ips[req.entry];
      if (!entry) {
        return fail(
          KEYS.ips,
          `has ${intent.ips.length} entries, but ${describeOwner(req.owner)} needs entry ${req.entry + 1}`,
          `list one entry per replica, in ordinal order (entry 1 for the first ordinal), or scale down`,
        );
      }
      return [entry];
    }
    return intent.ips;
  }

  private async renewPodClaims(held: Claim[]): Promise<boolean> {
    const renewed = await Promise.all(held.map((c) => (c.owner.kind === 'Pod' ? this.ledger.renew(c) : true)));
    return renewed.every(Boolean);
  }

  /** Named pools exist and select the namespace, families fit the pools, fixed addresses lie in usable pools. */
  plan(intent: Intent, namespace: string, labels: Record<string, string>): Plan {
    const problems: Problem[] = [];
    // Only a refusal lists the pools: formatting every range is not worth doing per admitted pod.
    const allowed = (role: Role) => () => {
      const pools = this.allowedPools(labels).filter((p) => roleOf(p) === role);
      return pools.length ? pools.map(describePool).join('; ') : 'none';
    };
    const named = this.resolve(intent.pools ?? [], 'pod', KEYS.pool, namespace, labels, allowed('pod'), problems);
    const egress = this.resolve(
      intent.egress?.pools ?? [],
      'egress',
      KEYS.egressPool,
      namespace,
      labels,
      allowed('egress'),
      problems,
    );
    const byFamily = named.byFamily;
    const pools = named.pools;
    let unknown = named.unknown || egress.unknown;
    const plan = () => ({
      byFamily,
      pools,
      egressByFamily: egress.byFamily,
      egressPools: egress.pools,
      problems,
      unknown,
    });
    if (problems.length) return plan();

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
        problems.push({
          key,
          message: `${addr.toString()} lies outside IPPool ${describePool(named)}`,
          fix: `choose an address inside IPPool ${named.name}, or name the pool that holds it`,
        });
      } else if (!named) {
        const home = this.ledger.index.poolOf(addr);
        if (!home) {
          unknown = true;
          problems.push({
            key,
            message: `${addr.toString()} lies outside every IPPool`,
            fix: `choose an address in a pool namespace ${namespace} may use: ${allowed('pod')()}`,
          });
        } else if (home.egress) {
          problems.push({
            key,
            message: `${addr.toString()} lies in IPPool ${home.name}, an egress pool: an egress address is never a pod address`,
            fix: `choose an address in a pod pool namespace ${namespace} may use: ${allowed('pod')()}`,
          });
        } else if (!poolAdmitsNamespace(home, labels)) {
          problems.push({
            key,
            message: `${addr.toString()} lies in IPPool ${home.name}, which does not select namespace ${namespace} (spec.namespaceSelector)`,
            fix: `choose an address in a pool namespace ${namespace} may use: ${allowed('pod')()}`,
          });
        } else if (!pools.includes(home)) pools.push(home);
      }
    }
    for (const addr of intent.egress?.ip ? addressList(intent.egress.ip) : []) {
      // A fixed egress address in an egress pool is claimed like any other; outside every pool it is
      // the operator's to keep apart (the dialects say where that is not enough).
      const home = this.ledger.index.poolOf(addr);
      if (!home) continue;
      if (!home.egress) {
        problems.push({
          key: KEYS.egressIp,
          message: `${addr.toString()} lies in IPPool ${home.name}, a pod pool: an egress address is never a pod address`,
          fix: `choose an address of an egress pool (spec.egress) namespace ${namespace} may use: ${allowed('egress')()}`,
        });
      } else if (!poolAdmitsNamespace(home, labels)) {
        problems.push({
          key: KEYS.egressIp,
          message: `${addr.toString()} lies in egress IPPool ${home.name}, which does not select namespace ${namespace} (spec.namespaceSelector)`,
          fix: `choose an egress address namespace ${namespace} may use: ${allowed('egress')()}`,
        });
      } else if (!egress.pools.includes(home)) egress.pools.push(home);
    }
    return plan();
  }

  /** Pools named by `key`: they exist, have the role, select the namespace, and serve one family each. */
  private resolve(
    names: string[],
    role: Role,
    key: string,
    namespace: string,
    labels: Record<string, string>,
    allowed: () => string,
    problems: Problem[],
  ) {
    const byFamily: FamilyPools = {};
    const pools: Pool[] = [];
    let unknown = false;
    for (const name of names) {
      const pool = this.ledger.index.pool(name);
      if (!pool) {
        unknown = true;
        problems.push({
          key,
          message: `IPPool ${name} does not exist`,
          fix: `name a pool namespace ${namespace} may use: ${allowed()}`,
        });
        continue;
      }
      if (roleOf(pool) !== role) {
        problems.push({
          key,
          message:
            role === 'pod'
              ? `IPPool ${name} is an egress pool (spec.egress): its addresses are never pod addresses`
              : `IPPool ${name} is a pod pool: it has no spec.egress, and its addresses are never egress addresses`,
          fix:
            role === 'pod'
              ? `name a pod pool (${allowed()}), or ask for an egress address with netpin.io/egress-pool: ${name}`
              : `name an egress pool (${allowed()}), or add spec.egress to a pool of its own`,
        });
        continue;
      }
      if (!poolAdmitsNamespace(pool, labels)) {
        problems.push({
          key,
          message: `IPPool ${name} does not select namespace ${namespace} (spec.namespaceSelector)`,
          fix: `name a pool namespace ${namespace} may use (${allowed()}), or widen the namespaceSelector of IPPool ${name}`,
        });
        continue;
      }
      for (const f of pool.families) {
        if (byFamily[f]) {
          problems.push({
            key,
            message: `IPPools ${byFamily[f]!.name} and ${name} both serve ${familyName(f)}`,
            fix: 'name one pool, or one pool per family',
          });
        }
        byFamily[f] = pool;
      }
      pools.push(pool);
    }
    return { byFamily, pools, unknown };
  }

  /**
   * The egress address of an owner: the one it holds already while it still fits the intent,
   * else the fixed one (claimed when it lies in an egress pool) or the first free of each egress
   * pool. Shared owners (a Deployment, a StatefulSet in snat mode) get one address for all pods.
   */
  async allocateEgress(req: EgressRequest): Promise<EgressResult> {
    const { intent, plan, owner } = req;
    const egress = intent.egress!;
    if (plan.problems.length) return { ok: false, problems: plan.problems };
    const held = this.ledger.index.claimsOf(owner);
    const wanted = egress.ip ? [egress.ip] : undefined;
    if (held.length > 0 && fits(held, wanted, plan.egressByFamily))
      return { ok: true, addresses: dualOf(held), fresh: [] };
    if (!req.dryRun) for (const c of held) await this.ledger.release(c);
    if (egress.ip) {
      const claimable = addressList(egress.ip).filter((a) => plan.egressPools.some((p) => poolContains(p, a)));
      for (const a of claimable) {
        const holder = this.ledger.index.holderOf(a);
        if (holder && ownerKey(holder.owner) !== ownerKey(owner)) {
          return fail(
            KEYS.egressIp,
            `${new ConflictError(holder).message}`,
            'choose another egress address, or have one given with netpin.io/egress-pool',
          );
        }
      }
      const over = this.overLimit(
        req,
        claimable.map((a) => [this.ledger.index.poolOf(a)!, familyOf(a)]),
        KEYS.egressIp,
      );
      if (over) return over;
      if (req.dryRun || claimable.length === 0) return { ok: true, addresses: egress.ip, fresh: [] };
      try {
        const got = await this.claimAll(
          claimable.map((a) => this.ledger.claim(this.ledger.index.poolOf(a)!, a, owner)),
        );
        return { ok: true, addresses: egress.ip, fresh: got };
      } catch (e) {
        if (e instanceof ConflictError)
          return fail(
            KEYS.egressIp,
            e.message,
            'choose another egress address, or have one given with netpin.io/egress-pool',
          );
        throw e;
      }
    }
    const families = (['ipv4', 'ipv6'] as const).filter((f) => plan.egressByFamily[f]);
    const over = this.overLimit(
      req,
      families.map((f) => [plan.egressByFamily[f]!, f]),
      KEYS.egressPool,
    );
    if (over) return over;
    if (req.dryRun) {
      const addresses: DualAddress = {};
      for (const f of families) {
        const ip = this.ledger.index.firstFree(plan.egressByFamily[f]!.name, f);
        if (!ip)
          return this.exhausted(new ExhaustedError(plan.egressByFamily[f]!, f), req.namespaceLabels, KEYS.egressPool);
        Object.assign(addresses, { [f]: ip });
      }
      return { ok: true, addresses, fresh: [] };
    }
    try {
      const got = await this.claimAll(families.map((f) => this.ledger.claimNext(plan.egressByFamily[f]!, f, owner)));
      return { ok: true, addresses: dualOf(got), fresh: got };
    } catch (e) {
      if (e instanceof ExhaustedError) return this.exhausted(e, req.namespaceLabels, KEYS.egressPool);
      throw e;
    }
  }

  /** Fixed addresses: the first listed entry whose addresses are all free (or already this owner's). */
  private async claimListed(
    req: AllocationRequest,
    entries: DualAddress[],
    byFamily: FamilyPools,
  ): Promise<AllocationResult> {
    const key = req.intent.ip ? KEYS.ip : KEYS.ips;
    let lastConflict: ConflictError | undefined;
    for (const entry of entries) {
      const addrs = addressList(entry);
      const holder = addrs
        .map((a) => this.ledger.index.holderOf(a))
        .find((c) => c && ownerKey(c.owner) !== ownerKey(req.owner));
      if (holder) {
        lastConflict = new ConflictError(holder);
        continue;
      }
      const over = this.overLimit(
        req,
        addrs.map((ip) => [this.poolFor(ip, byFamily), familyOf(ip)]),
        key,
      );
      if (over) return over;
      if (req.dryRun)
        return this.ok(
          addrs.map((ip) => this.virtualClaim(ip, req.owner, byFamily)),
          [],
        );
      try {
        const got = await this.claimAll(
          addrs.map((ip) => this.ledger.claim(this.poolFor(ip, byFamily), ip, req.owner)),
        );
        return this.ok(got, got);
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
    return { ok: false, problems: [this.heldProblem(key, c.holder)] };
  }

  /** A fixed address another owner holds: the holder named, and a free address of its pool to choose instead. */
  heldProblem(key: string, holder: Claim): Problem {
    const pool = this.ledger.index.pool(holder.pool);
    const next = pool && this.ledger.index.firstFree(pool.name, familyOf(holder.ip));
    return {
      key,
      message: `${new ConflictError(holder).message} (IPPool ${holder.pool})`,
      fix: `choose a free address${next ? ` such as ${next.toString()}` : ''}, or let netpin choose with netpin.io/pool${pool ? `: ${pool.name}` : ''}`,
    };
  }

  /** A pool family's size and use, from the index's counts: never a walk over the pool's addresses. */
  usageOf(pool: Pool, family: Family): PoolUsage {
    return (
      this.ledger.index.usage(pool.name).find((u) => u.family === family) ?? { family, capacity: 0n, allocated: 0n }
    );
  }

  /**
   * Refuses claims that would take the namespace past a pool's spec.namespaceLimit. What the owner
   * holds is not counted: a fresh claim comes after those are given back (a dry run only reads).
   */
  private overLimit(
    req: { namespace: string; namespaceLabels: Record<string, string>; owner: Owner },
    wanted: Array<[Pool, Family]>,
    key: string,
  ): { ok: false; problems: Problem[] } | undefined {
    const owned = this.ledger.index.claimsOf(req.owner);
    for (const [pool, family] of wanted) {
      const mine = owned.filter((c) => c.pool === pool.name && familyOf(c.ip) === family).length;
      const more = wanted.filter(([p, f]) => p === pool && f === family).length;
      const problem = this.limitProblem(pool, family, req.namespace, more, mine, key, req.namespaceLabels);
      if (problem) return { ok: false, problems: [problem] };
    }
    return undefined;
  }

  /**
   * The namespace's use of a pool family against spec.namespaceLimit: a problem when `more` addresses,
   * besides the `own` it holds already for the same owners, would take it past the cap.
   */
  limitProblem(
    pool: Pool,
    family: Family,
    namespace: string,
    more: number,
    own: number,
    key: string,
    namespaceLabels: Record<string, string>,
    what = `${more} more`,
  ): Problem | undefined {
    const limit = pool.namespaceLimit;
    if (limit === undefined) return undefined;
    const held = this.ledger.index.namespaceHeld(pool.name, namespace, family);
    if (held - own + more <= limit) return undefined;
    const others = this.allowedPools(namespaceLabels).filter(
      (p) => p.name !== pool.name && p.families.includes(family) && roleOf(p) === roleOf(pool),
    );
    return {
      key,
      message: `IPPool ${pool.name} lets each namespace hold ${limit} ${familyName(family)} addresses (spec.namespaceLimit), and namespace ${namespace} holds ${held}${own ? ` (${own} of them for this same owner)` : ''}: no room for ${what}`,
      fix: `give back addresses namespace ${namespace} holds (delete pods or StatefulSets it no longer needs, or scale them down; a StatefulSet scaled down gives its reservations back after netpin.io/scale-down-release), or ask the cluster's operator to raise spec.namespaceLimit of IPPool ${pool.name}${others.length ? `, or name another pool: ${others.map((p) => p.name).join(', ')}` : ''}`,
    };
  }

  /** How to make room for a family in a pool: more addresses, fewer holders, or another pool the namespace may use. */
  roomFix(pool: Pool, family: Family, namespaceLabels: Record<string, string>): string {
    const others = this.allowedPools(namespaceLabels).filter(
      (p) => p.name !== pool.name && p.families.includes(family) && roleOf(p) === roleOf(pool),
    );
    return `add addresses to IPPool ${pool.name} (spec.cidr or spec.ranges), delete workloads that hold them${others.length ? `, or name another pool: ${others.map((p) => p.name).join(', ')}` : ''}`;
  }

  private async claimFromPools(req: AllocationRequest, byFamily: FamilyPools): Promise<AllocationResult> {
    const families = (['ipv4', 'ipv6'] as const).filter((f) => byFamily[f]);
    if (req.dryRun) {
      const over = this.overLimit(
        req,
        families.map((f) => [byFamily[f]!, f]),
        KEYS.pool,
      );
      if (over) return over;
      const got: Claim[] = [];
      for (const family of families) {
        const pool = byFamily[family]!;
        const ip = this.ledger.index.firstFree(pool.name, family);
        if (!ip) return this.exhausted(new ExhaustedError(pool, family), req.namespaceLabels);
        got.push({ pool: pool.name, ip, owner: req.owner, createdAt: Date.now() });
      }
      return this.ok(got, []);
    }
    // Checked with no await before the claims, which count in the index at once: no two admissions of
    // this process both take the namespace's last address under the cap.
    const over = this.overLimit(
      req,
      families.map((f) => [byFamily[f]!, f]),
      KEYS.pool,
    );
    if (over) return over;
    try {
      const got = await this.claimAll(families.map((f) => this.ledger.claimNext(byFamily[f]!, f, req.owner)));
      return this.ok(got, got);
    } catch (e) {
      if (e instanceof ExhaustedError) return this.exhausted(e, req.namespaceLabels);
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

  private exhausted(
    e: ExhaustedError,
    namespaceLabels: Record<string, string>,
    key: string = KEYS.pool,
  ): { ok: false; problems: Problem[] } {
    const usage = this.usageOf(e.pool, e.family);
    return fail(
      key,
      `${e.message} (${usage.allocated} of ${usage.capacity} held)`,
      this.roomFix(e.pool, e.family, namespaceLabels),
    );
  }

  private ok(claims: Claim[], fresh: Claim[]): AllocationResult {
    const pools: Pool[] = [];
    for (const c of claims) {
      const pool = this.ledger.index.pool(c.pool);
      if (pool && !pools.includes(pool)) pools.push(pool);
    }
    return { ok: true, allocation: { addresses: dualOf(claims), pools }, claims, fresh };
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

function fail(key: string, message: string, fix: string): { ok: false; problems: Problem[] } {
  return { ok: false, problems: [{ key, message, fix }] };
}

function dualOf(claims: Claim[]): DualAddress {
  const out: DualAddress = {};
  for (const c of claims) Object.assign(out, { [familyOf(c.ip)]: c.ip });
  return out;
}

/** A pod pool hands out pod addresses, an egress pool (spec.egress) egress addresses: never both. */
type Role = 'pod' | 'egress';
const roleOf = (p: Pool): Role => (p.egress ? 'egress' : 'pod');
