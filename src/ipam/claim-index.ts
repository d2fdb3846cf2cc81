import { familyOf, fromBigInt, toBigInt, type Address, type AddressRange, type Family } from '../net/address.js';
import { FreeRanges } from './free-ranges.js';
import { ConflictError, ownerKey, type Claim, type Owner } from './claim.js';
import { poolContains, type Pool } from './pool.js';

/** Vacant address keys kept before the map may be rebuilt (see byIp). */
const VACANT_SLACK = 1_024;

interface PoolState {
  pool: Pool;
  free: Record<Family, FreeRanges>;
}

export interface PoolUsage {
  family: Family;
  capacity: bigint;
  allocated: bigint;
}

/**
 * Pools, claims and free addresses in memory: the read side of every ledger.
 * Claims are keyed by address, so one address has at most one holder here;
 * the ledger implementations make that true across processes too.
 */
export class ClaimIndex {
  private readonly pools = new Map<string, PoolState>();
  // A released address keeps its key, with no claim, until vacant keys outnumber claims: deleting
  // it and setting it again, as an address is claimed over and over, makes a large V8 Map rehash on
  // nearly every set (18 µs at 32k entries, measured). Then the map is rebuilt at once, so that
  // claims released for good (a deleted pool, a shrunk StatefulSet) do not keep memory for ever.
  private byIp = new Map<string, Claim | undefined>();
  private vacant = 0;
  // Nearly every owner holds one claim: that claim itself, and a Set only from a second one on
  // (a Set per claim was about a sixth of the index's heap at 50 000 claims).
  private readonly byOwner = new Map<string, Claim | Set<Claim>>();
  // Addresses running pods are seen to use, by "<namespace>/<name>": pods from before netpin, from
  // namespaces that did not opt in, or whose netpin metadata was changed. They are never free,
  // whatever the claims say; a claim on one of them still wins the lookup, as it names the owner.
  private readonly observedByIp = new Map<string, Set<string>>();
  private readonly observedByPod = new Map<string, Address[]>();
  /** Counts claims added, ever: whether anything was claimed while a request was decided. */
  additions = 0;
  // What each namespace holds of each pool, by family (IPv4, IPv6): what spec.namespaceLimit caps.
  private readonly heldByNamespace = new Map<string, Map<string, [number, number]>>();
  // StatefulSet ordinals holding a reservation, by namespace: what a namespace's pods quota bounds.
  private readonly ordinalsByNamespace = new Map<string, number>();

  setPool(pool: Pool): void {
    const free = {
      ipv4: new FreeRanges(pool.ranges.ipv4),
      ipv6: new FreeRanges(pool.ranges.ipv6),
    };
    for (const c of this.allClaims()) {
      if (c.pool === pool.name && poolContains(pool, c.ip)) free[familyOf(c.ip)].take(toBigInt(c.ip));
    }
    for (const ips of this.observedByPod.values()) {
      for (const ip of ips) if (poolContains(pool, ip)) free[familyOf(ip)].take(toBigInt(ip));
    }
    this.pools.set(pool.name, { pool, free });
  }

  removePool(name: string): void {
    this.pools.delete(name);
  }

  pool(name: string): Pool | undefined {
    return this.pools.get(name)?.pool;
  }

  allPools(): Pool[] {
    return [...this.pools.values()].map((s) => s.pool);
  }

  /** The pool whose ranges hold this address; pools do not overlap, so there is at most one. */
  poolOf(ip: Address): Pool | undefined {
    for (const s of this.pools.values()) if (poolContains(s.pool, ip)) return s.pool;
    return undefined;
  }

  /** The claim on an address, or else a pod seen using it (as a claim with no createdAt). */
  holderOf(ip: Address): Claim | undefined {
    const key = ip.toString();
    const claim = this.byIp.get(key);
    if (claim) return claim;
    const pods = this.observedByIp.get(key);
    if (!pods) return undefined;
    const [namespace, name] = splitPod(pods.values().next().value!);
    return {
      pool: this.poolOf(ip)?.name ?? '',
      ip,
      owner: { kind: 'Pod', namespace, name },
      createdAt: 0,
      observed: true,
    };
  }

  /** The pods seen using an address ("<namespace>/<name>"), whoever holds its claim. */
  usersOf(ip: Address): string[] {
    return [...(this.observedByIp.get(ip.toString()) ?? [])];
  }

  /** This owner's claim on the address, undefined when it is free; throws ConflictError when another owner holds it. */
  heldBy(ip: Address, owner: Owner): Claim | undefined {
    const holder = this.holderOf(ip);
    if (holder && ownerKey(holder.owner) !== ownerKey(owner)) throw new ConflictError(holder);
    return holder?.observed ? undefined : holder;
  }

  /**
   * Records the addresses a pod is seen to use, replacing what was recorded for it before;
   * none forgets the pod. `pod` is "<namespace>/<name>".
   */
  observe(pod: string, ips: Address[]): void {
    for (const ip of this.observedByPod.get(pod) ?? []) {
      const key = ip.toString();
      const pods = this.observedByIp.get(key);
      pods?.delete(pod);
      if (pods?.size === 0) {
        this.observedByIp.delete(key);
        if (!this.byIp.get(key)) this.free(ip);
      }
    }
    if (ips.length === 0) {
      this.observedByPod.delete(pod);
      return;
    }
    this.observedByPod.set(pod, ips);
    for (const ip of ips) {
      const key = ip.toString();
      let pods = this.observedByIp.get(key);
      if (!pods) this.observedByIp.set(key, (pods = new Set()));
      if (pods.size === 0 && !this.byIp.get(key)) this.take(ip);
      pods.add(pod);
    }
  }

  claimsOf(owner: Owner): Claim[] {
    const held = this.byOwner.get(ownerKey(owner));
    return held instanceof Set ? [...held] : held ? [held] : [];
  }

  *allClaims(): IterableIterator<Claim> {
    for (const c of this.byIp.values()) if (c) yield c;
  }

  /** The lowest free address of a family, without taking it. */
  firstFree(poolName: string, family: Family): Address | undefined {
    const n = this.pools.get(poolName)?.free[family].first();
    return n === undefined ? undefined : fromBigInt(n, family);
  }

  /** Records a claim; false when the address already has a holder. */
  add(claim: Claim): boolean {
    const key = claim.ip.toString();
    const was = this.byIp.get(key);
    if (was) return false;
    if (was === undefined && this.byIp.has(key)) this.vacant--;
    this.byIp.set(key, claim);
    this.additions++;
    const ok = ownerKey(claim.owner);
    const owned = this.byOwner.get(ok);
    if (owned instanceof Set) owned.add(claim);
    else this.byOwner.set(ok, owned ? new Set([owned, claim]) : claim);
    this.count(claim, 1, owned === undefined);
    if (!this.observedByIp.has(key)) this.pools.get(claim.pool)?.free[familyOf(claim.ip)].take(toBigInt(claim.ip));
    return true;
  }

  /**
   * Records a stored claim as the watch reports it: its new owner or version when the same stored object
   * changed (a bind, a renewal), else a new claim; false when another holds the address. The held
   * entry is replaced, never changed in place: whoever judged the old entry (a sweep) still holds the
   * version it judged, and its release is conditional on that version.
   */
  put(claim: Claim): boolean {
    const held = this.byIp.get(claim.ip.toString());
    if (held && claim.ref !== undefined && held.ref === claim.ref) return this.replace(held, claim);
    return this.add(claim);
  }

  /**
   * The stored object of a claim this process is still creating was seen (the watch can be quicker
   * than the create's answer): the held claim is replaced by one with its uid, so that a create that
   * then times out leaves the address held, as it is in the API server.
   */
  confirm(stored: Claim): void {
    const held = this.byIp.get(stored.ip.toString());
    if (held && held.ref === undefined && stored.ref !== undefined && ownerKey(held.owner) === ownerKey(stored.owner))
      this.replace(held, { ...held, ref: stored.ref, version: stored.version });
  }

  /** Puts `next` in the place of `held`, which must be the entry for its address; false when it no longer is. */
  replace(held: Claim, next: Claim): boolean {
    const key = held.ip.toString();
    if (this.byIp.get(key) !== held || next.ip.toString() !== key) return false;
    if (ownerKey(held.owner) !== ownerKey(next.owner) || held.pool !== next.pool) {
      this.remove(held);
      return this.add(next);
    }
    this.byIp.set(key, next);
    const ok = ownerKey(held.owner);
    const owned = this.byOwner.get(ok);
    // In its place among the owner's claims, which keep the order they were added in.
    if (owned instanceof Set) this.byOwner.set(ok, new Set([...owned].map((c) => (c === held ? next : c))));
    else this.byOwner.set(ok, next);
    return true;
  }

  /** Forgets a claim; only the claim object that holds the address is removed. */
  remove(claim: Claim): boolean {
    const key = claim.ip.toString();
    const held = this.byIp.get(key);
    if (!held || ownerKey(held.owner) !== ownerKey(claim.owner)) return false;
    // A late delete event of an earlier object must not remove its successor, nor a claim still being created.
    if (claim.ref !== undefined && held.ref !== claim.ref) return false;
    this.byIp.set(key, undefined);
    if (++this.vacant > VACANT_SLACK && this.vacant > this.byIp.size - this.vacant) this.compact();
    const ok = ownerKey(held.owner);
    const owned = this.byOwner.get(ok);
    if (owned === held) this.byOwner.delete(ok);
    else if (owned instanceof Set && owned.delete(held) && owned.size === 1)
      this.byOwner.set(ok, owned.values().next().value!);
    this.count(held, -1, owned === held);
    const state = this.pools.get(held.pool);
    if (state && poolContains(state.pool, held.ip) && !this.observedByIp.has(key))
      state.free[familyOf(held.ip)].put(toBigInt(held.ip));
    return true;
  }

  /** Keeps the counts per namespace: `delta` for the claim, and for its owner when it comes or goes (`owner`). */
  private count(claim: Claim, delta: 1 | -1, owner: boolean): void {
    const ns = claim.owner.namespace;
    let pools = this.heldByNamespace.get(claim.pool);
    if (!pools) this.heldByNamespace.set(claim.pool, (pools = new Map()));
    let held = pools.get(ns);
    if (!held) pools.set(ns, (held = [0, 0]));
    held[familyOf(claim.ip) === 'ipv4' ? 0 : 1] += delta;
    if (held[0] === 0 && held[1] === 0) pools.delete(ns);
    if (pools.size === 0) this.heldByNamespace.delete(claim.pool);
    if (owner && claim.owner.kind === 'StatefulSet') {
      const n = (this.ordinalsByNamespace.get(ns) ?? 0) + delta;
      if (n === 0) this.ordinalsByNamespace.delete(ns);
      else this.ordinalsByNamespace.set(ns, n);
    }
  }

  /** The addresses of a pool family that a namespace's claims hold: what spec.namespaceLimit caps. */
  namespaceHeld(pool: string, namespace: string, family: Family): number {
    return this.heldByNamespace.get(pool)?.get(namespace)?.[family === 'ipv4' ? 0 : 1] ?? 0;
  }

  /** Every namespace that holds addresses of a pool, with what it holds of each family. */
  *namespaceUsage(): IterableIterator<{ pool: string; namespace: string; ipv4: number; ipv6: number }> {
    for (const [pool, byNs] of this.heldByNamespace)
      for (const [namespace, [ipv4, ipv6]] of byNs) yield { pool, namespace, ipv4, ipv6 };
  }

  /** How many StatefulSet ordinals of a namespace hold a reservation. */
  reservedOrdinals(namespace: string): number {
    return this.ordinalsByNamespace.get(namespace) ?? 0;
  }

  private compact(): void {
    const live = new Map<string, Claim | undefined>();
    for (const [key, c] of this.byIp) if (c) live.set(key, c);
    this.byIp = live;
    this.vacant = 0;
  }

  private take(ip: Address): void {
    const pool = this.poolOf(ip);
    if (pool) this.pools.get(pool.name)!.free[familyOf(ip)].take(toBigInt(ip));
  }

  private free(ip: Address): void {
    const pool = this.poolOf(ip);
    if (pool) this.pools.get(pool.name)!.free[familyOf(ip)].put(toBigInt(ip));
  }

  /** The widest run of free addresses of a pool family, for reporting fragmentation. */
  largestFree(poolName: string, family: Family): AddressRange | undefined {
    const r = this.pools.get(poolName)?.free[family].largest();
    return r && { family, ...r };
  }

  usage(poolName: string): PoolUsage[] {
    const s = this.pools.get(poolName);
    if (!s) return [];
    return s.pool.families.map((family) => ({
      family,
      capacity: s.pool.capacity[family],
      allocated: s.pool.capacity[family] - s.free[family].size,
    }));
  }
}

function splitPod(pod: string): [string, string] {
  const i = pod.indexOf('/');
  return [pod.slice(0, i), pod.slice(i + 1)];
}
