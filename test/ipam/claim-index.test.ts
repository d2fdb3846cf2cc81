import { describe, expect, it } from 'vitest';
import { ClaimIndex } from '../../src/ipam/claim-index.js';
import { ConflictError, type Claim, type Owner } from '../../src/ipam/claim.js';
import { MemoryLedger } from '../../src/ipam/memory-ledger.js';
import { compilePool, type Pool } from '../../src/ipam/pool.js';
import { toBigInt } from '../../src/net/address.js';
import { v4, v6 } from '../cni/fixtures.js';

const small = compilePool({ metadata: { name: 'small' }, spec: { ranges: ['10.0.0.1-10.0.0.3'] } });
const a: Owner = { kind: 'Pod', namespace: 'shop', name: 'a' };

describe('addresses pods use without a claim', () => {
  it('are never free, and a claim on one names the pod', async () => {
    const ledger = new MemoryLedger([small]);
    ledger.index.observe('legacy/old', [v4('10.0.0.1')]);
    expect(ledger.index.firstFree('small', 'ipv4')?.toString()).toBe('10.0.0.2');
    expect((await ledger.claimNext(small, 'ipv4', a)).ip.toString()).toBe('10.0.0.2');
    const err = await ledger.claim(small, v4('10.0.0.1'), a).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as ConflictError).message).toBe(
      '10.0.0.1 is held by pod legacy/old, which uses it without a netpin claim (it predates netpin or its namespace opting in)',
    );
    expect(ledger.index.usage('small')).toEqual([{ family: 'ipv4', capacity: 3n, allocated: 2n }]);
  });

  it('come free when the last pod using them is gone, not while a claim holds them', async () => {
    const ledger = new MemoryLedger([small]);
    const claim = await ledger.claim(small, v4('10.0.0.1'), a);
    // netpin's own pod is seen too: both say the address is in use.
    ledger.index.observe('shop/a', [v4('10.0.0.1')]);
    ledger.index.observe('shop/twin', [v4('10.0.0.1')]);
    await ledger.release(claim);
    expect(ledger.index.holderOf(v4('10.0.0.1'))?.observed).toBe(true);
    expect(ledger.index.firstFree('small', 'ipv4')?.toString()).toBe('10.0.0.2');
    ledger.index.observe('shop/a', []);
    expect(ledger.index.firstFree('small', 'ipv4')?.toString()).toBe('10.0.0.2');
    ledger.index.observe('shop/twin', []);
    expect(ledger.index.holderOf(v4('10.0.0.1'))).toBeUndefined();
    expect(ledger.index.firstFree('small', 'ipv4')?.toString()).toBe('10.0.0.1');
  });

  it('are replaced per pod, and count for a pool added later', () => {
    const ledger = new MemoryLedger([]);
    ledger.index.observe('legacy/old', [v4('10.0.0.1'), v4('10.0.0.2')]);
    ledger.index.observe('legacy/old', [v4('10.0.0.2')]);
    ledger.index.setPool(small);
    expect(ledger.index.firstFree('small', 'ipv4')?.toString()).toBe('10.0.0.1');
    expect(ledger.index.holderOf(v4('10.0.0.2'))?.owner).toEqual({ kind: 'Pod', namespace: 'legacy', name: 'old' });
  });

  it('let a stored claim in beside them, which then names the owner', () => {
    const ledger = new MemoryLedger([small]);
    ledger.index.observe('shop/a', [v4('10.0.0.3')]);
    expect(ledger.index.add({ pool: 'small', ip: v4('10.0.0.3'), owner: a, createdAt: 1 })).toBe(true);
    expect(ledger.index.holderOf(v4('10.0.0.3'))?.observed).toBeUndefined();
    expect(ledger.index.usage('small')[0]!.allocated).toBe(1n);
  });
});

describe('a stored claim written again', () => {
  it('moves its grace period and version on in the index, as the watch reports it', () => {
    const index = new ClaimIndex();
    index.setPool(small);
    const stored = {
      pool: 'small',
      ip: v4('10.0.0.2'),
      owner: { kind: 'Pod' as const, namespace: 'shop', name: 'a' },
      createdAt: 1,
      ref: 'uid-1',
      version: '10',
    };
    index.add(stored);
    expect(index.put({ ...stored, createdAt: 5_000, version: '11' })).toBe(true);
    const held = index.claimsOf(stored.owner)[0]!;
    expect([held.createdAt, held.version]).toEqual([5_000, '11']);
  });
});

describe("an owner's claims", () => {
  it('are listed in the order they were added, as the owner gains and loses them', () => {
    const index = new ClaimIndex();
    index.setPool(small);
    const claim = (ip: string, owner: Owner = a) => ({ pool: 'small', ip: v4(ip), owner, createdAt: 1 });
    const [first, second, third] = [claim('10.0.0.1'), claim('10.0.0.2'), claim('10.0.0.3')];
    const ips = () => index.claimsOf(a).map((c) => c.ip.toString());
    expect(index.claimsOf(a)).toEqual([]);
    index.add(first);
    expect(index.claimsOf(a)).toEqual([first]);
    index.add(second);
    index.add(third);
    expect(ips()).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    index.remove(second);
    expect(ips()).toEqual(['10.0.0.1', '10.0.0.3']);
    index.remove(first);
    expect(ips()).toEqual(['10.0.0.3']);
    index.add(second);
    expect(ips()).toEqual(['10.0.0.3', '10.0.0.2']);
    // Another owner's claim, or one no longer held, takes nothing from this owner.
    expect(index.remove(claim('10.0.0.3', { kind: 'Pod', namespace: 'shop', name: 'b' }))).toBe(false);
    expect(index.remove(first)).toBe(false);
    expect(ips()).toEqual(['10.0.0.3', '10.0.0.2']);
    index.remove(third);
    index.remove(second);
    expect(index.claimsOf(a)).toEqual([]);
    expect(index.firstFree('small', 'ipv4')?.toString()).toBe('10.0.0.1');
    // A claim list handed out is the caller's: changing it changes nothing here.
    index.add(first);
    index.claimsOf(a).pop();
    expect(index.claimsOf(a)).toEqual([first]);
  });
});

// Below: the index as the ledgers and the operator commands read it. Every check is one an allocation,
// a release or `netpin status` relies on: which address is free, who holds it, and what is refused.

const pod = (namespace: string, name: string): Owner => ({ kind: 'Pod', namespace, name });
const b: Owner = pod('shop', 'b');
const claimOn = (ip: string, owner: Owner = a, more: Partial<Claim> = {}): Claim => ({
  pool: 'small',
  ip: v4(ip),
  owner,
  createdAt: 1,
  ...more,
});
const dual = compilePool({
  metadata: { name: 'dual' },
  spec: { ranges: ['10.9.0.1-10.9.0.4', 'fd00:9::1-fd00:9::2'] },
});
const other = compilePool({ metadata: { name: 'other' }, spec: { ranges: ['10.1.0.1-10.1.0.2'] } });

function indexOf(...pools: Pool[]) {
  const index = new ClaimIndex();
  for (const p of pools) index.setPool(p);
  const free = (name = 'small') => {
    // Every free address of the pool's IPv4 family, lowest first, as successive allocations would get them.
    const out: string[] = [];
    const taken: Claim[] = [];
    for (let ip = index.firstFree(name, 'ipv4'); ip; ip = index.firstFree(name, 'ipv4')) {
      out.push(ip.toString());
      const c: Claim = { pool: name, ip, owner: pod('probe', ip.toString()), createdAt: 0 };
      if (!index.add(c)) throw new Error(`${ip.toString()} is given as free, but is held`);
      taken.push(c);
    }
    for (const c of taken) index.remove(c);
    return out;
  };
  const allocated = (name = 'small') => index.usage(name).map((u) => u.allocated);
  return { index, free, allocated };
}

describe('pools in the index', () => {
  it('count the claims the index held before the pool was known, those that name it and lie in it', () => {
    // The watch may deliver claims before their pool.
    const { index, allocated } = indexOf();
    index.add(claimOn('10.0.0.2'));
    // A claim naming another pool counts against that pool, not this one, wherever its address lies.
    index.add(claimOn('10.0.0.3', b, { pool: 'other' }));
    index.setPool(small);
    expect(index.firstFree('small', 'ipv4')?.toString()).toBe('10.0.0.1');
    expect(allocated()).toEqual([1n]);
  });

  it('are counted again when a pool changes: a claim left outside its ranges is no longer counted', () => {
    const { index, free, allocated } = indexOf(small);
    const outside = claimOn('10.0.0.3');
    index.add(claimOn('10.0.0.1'));
    index.add(outside);
    index.observe('legacy/old', [v4('10.0.0.4')]);
    const narrower = compilePool({ metadata: { name: 'small' }, spec: { ranges: ['10.0.0.1-10.0.0.2'] } });
    index.setPool(narrower);
    expect(index.pool('small')).toBe(narrower);
    expect(index.usage('small')).toEqual([{ family: 'ipv4', capacity: 2n, allocated: 1n }]);
    // A pool added over an address a pod is seen using never hands it out.
    const added = compilePool({ metadata: { name: 'added' }, spec: { ranges: ['10.0.0.4-10.0.0.5'] } });
    index.setPool(added);
    expect(free('added')).toEqual(['10.0.0.5']);
    expect(allocated('added')).toEqual([1n]);
    // Releasing the claim outside the pool never makes its address one the pool hands out.
    expect(index.remove(outside)).toBe(true);
    expect(free()).toEqual(['10.0.0.2']);
    expect(allocated()).toEqual([1n]);
    expect(index.holderOf(v4('10.0.0.3'))).toBeUndefined();
  });

  it('are listed, found by address, and forgotten, while their claims stay held', () => {
    const { index } = indexOf(small, other);
    const held = claimOn('10.1.0.1', a, { pool: 'other' });
    index.add(held);
    expect(index.allPools().map((p) => p.name)).toEqual(['small', 'other']);
    expect(index.poolOf(v4('10.0.0.3'))?.name).toBe('small');
    expect(index.poolOf(v4('10.1.0.2'))?.name).toBe('other');
    expect(index.poolOf(v4('10.0.0.4'))).toBeUndefined();
    expect(index.poolOf(v6('fd00::1'))).toBeUndefined();
    index.removePool('other');
    expect(index.pool('other')).toBeUndefined();
    expect(index.allPools().map((p) => p.name)).toEqual(['small']);
    expect(index.poolOf(v4('10.1.0.1'))).toBeUndefined();
    expect(index.firstFree('other', 'ipv4')).toBeUndefined();
    expect(index.largestFree('other', 'ipv4')).toBeUndefined();
    expect(index.usage('other')).toEqual([]);
    // The claim outlives its pool (a deleted pool with claims is refused, but the watch may say otherwise).
    expect(index.holderOf(v4('10.1.0.1'))).toBe(held);
    expect(index.remove(held)).toBe(true);
    expect(index.holderOf(v4('10.1.0.1'))).toBeUndefined();
    expect(index.pool('small')).toBe(small);
  });

  it('report use per family, in the order of the pool, and the widest free run for `netpin status`', () => {
    const { index } = indexOf(dual);
    expect(index.usage('dual')).toEqual([
      { family: 'ipv4', capacity: 4n, allocated: 0n },
      { family: 'ipv6', capacity: 2n, allocated: 0n },
    ]);
    index.add({ pool: 'dual', ip: v4('10.9.0.2'), owner: a, createdAt: 1 });
    index.add({ pool: 'dual', ip: v6('fd00:9::1'), owner: a, createdAt: 1 });
    expect(index.usage('dual')).toEqual([
      { family: 'ipv4', capacity: 4n, allocated: 1n },
      { family: 'ipv6', capacity: 2n, allocated: 1n },
    ]);
    expect(index.firstFree('dual', 'ipv6')?.toString()).toBe('fd00:9::2');
    expect(index.largestFree('dual', 'ipv4')).toEqual({
      family: 'ipv4',
      first: toBigInt(v4('10.9.0.3')),
      last: toBigInt(v4('10.9.0.4')),
    });
    expect(index.largestFree('dual', 'ipv6')).toEqual({
      family: 'ipv6',
      first: toBigInt(v6('fd00:9::2')),
      last: toBigInt(v6('fd00:9::2')),
    });
    index.add({ pool: 'dual', ip: v6('fd00:9::2'), owner: b, createdAt: 1 });
    expect(index.largestFree('dual', 'ipv6')).toBeUndefined();
    expect(index.firstFree('dual', 'ipv6')).toBeUndefined();
    // A family the pool does not serve has nothing free.
    expect(index.firstFree('small', 'ipv6')).toBeUndefined();
  });
});

describe('who holds an address', () => {
  it('is the claim, else a pod seen using it, named as the pod and the pool the address lies in', () => {
    const { index } = indexOf(small);
    expect(index.holderOf(v4('10.0.0.1'))).toBeUndefined();
    index.observe('legacy/old-0', [v4('10.0.0.1'), v4('10.9.9.9')]);
    expect(index.holderOf(v4('10.0.0.1'))).toEqual({
      pool: 'small',
      ip: v4('10.0.0.1'),
      owner: { kind: 'Pod', namespace: 'legacy', name: 'old-0' },
      createdAt: 0,
      observed: true,
    });
    // Outside every pool the address is still held, by no pool.
    expect(index.holderOf(v4('10.9.9.9'))).toMatchObject({ pool: '', owner: { namespace: 'legacy', name: 'old-0' } });
    const claim = claimOn('10.0.0.1');
    index.add(claim);
    expect(index.holderOf(v4('10.0.0.1'))).toBe(claim);
  });

  it("is this owner's claim, nobody's, or a conflict naming the other holder", () => {
    const { index } = indexOf(small);
    const mine = claimOn('10.0.0.1');
    index.add(mine);
    expect(index.heldBy(v4('10.0.0.1'), a)).toBe(mine);
    expect(index.heldBy(v4('10.0.0.2'), a)).toBeUndefined();
    const err = (() => {
      try {
        index.heldBy(v4('10.0.0.1'), b);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as ConflictError).holder).toBe(mine);
    expect((err as ConflictError).message).toBe('10.0.0.1 is held by pod shop/a');
    index.observe('legacy/old', [v4('10.0.0.2')]);
    expect(() => index.heldBy(v4('10.0.0.2'), a)).toThrow('10.0.0.2 is held by pod legacy/old, which uses it');
  });

  it('lets a pod claim the address it is already seen using: it gets a real claim', async () => {
    // A pod admitted again (or from before netpin) asks for the address it shows: that is no conflict,
    // and what it gets must be a claim, or the address would be free once the pod stops showing it.
    const ledger = new MemoryLedger([small]);
    ledger.index.observe('shop/a', [v4('10.0.0.2')]);
    expect(ledger.index.heldBy(v4('10.0.0.2'), a)).toBeUndefined();
    const claim = await ledger.claim(small, v4('10.0.0.2'), a);
    expect(claim.observed).toBeUndefined();
    expect([...ledger.index.allClaims()]).toEqual([claim]);
    ledger.index.observe('shop/a', []);
    expect(ledger.index.holderOf(v4('10.0.0.2'))).toBe(claim);
    expect(ledger.index.firstFree('small', 'ipv4')?.toString()).toBe('10.0.0.1');
    expect(ledger.index.usage('small')[0]!.allocated).toBe(1n);
  });
});

describe('addresses pods are seen using', () => {
  it('come free as soon as the pod stops showing them, and only those it stopped showing', () => {
    const { index, free } = indexOf(small);
    index.observe('legacy/old', [v4('10.0.0.1'), v4('10.0.0.2')]);
    expect(free()).toEqual(['10.0.0.3']);
    index.observe('legacy/old', [v4('10.0.0.2'), v4('10.0.0.3')]);
    expect(free()).toEqual(['10.0.0.1']);
    expect(index.holderOf(v4('10.0.0.1'))).toBeUndefined();
    index.observe('legacy/old', []);
    expect(free()).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    expect(index.holderOf(v4('10.0.0.3'))).toBeUndefined();
    // Forgotten means forgotten: a pool set afterwards counts nothing for it.
    index.setPool(small);
    expect(free()).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
  });

  it('stay held by their claim when the pod that showed them is gone', () => {
    const { index, free, allocated } = indexOf(small);
    const claim = claimOn('10.0.0.1');
    index.add(claim);
    index.observe('shop/a', [v4('10.0.0.1')]);
    index.observe('shop/a', []);
    expect(index.holderOf(v4('10.0.0.1'))).toBe(claim);
    expect(free()).toEqual(['10.0.0.2', '10.0.0.3']);
    expect(allocated()).toEqual([1n]);
  });

  it('stay held when their claim is released while the pod still shows them', () => {
    const { index, free, allocated } = indexOf(small);
    const claim = claimOn('10.0.0.2');
    index.add(claim);
    index.observe('shop/a', [v4('10.0.0.2')]);
    expect(index.remove(claim)).toBe(true);
    expect(index.holderOf(v4('10.0.0.2'))?.observed).toBe(true);
    expect(free()).toEqual(['10.0.0.1', '10.0.0.3']);
    expect(allocated()).toEqual([1n]);
    index.observe('shop/a', []);
    expect(free()).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
  });

  it('stay held while any pod still shows them, whichever pod stops first', () => {
    const { index, free } = indexOf(small);
    index.observe('legacy/old', [v4('10.0.0.1')]);
    index.observe('legacy/new', [v4('10.0.0.1')]);
    index.observe('legacy/new', []);
    expect(index.holderOf(v4('10.0.0.1'))?.owner).toMatchObject({ namespace: 'legacy', name: 'old' });
    expect(free()).toEqual(['10.0.0.2', '10.0.0.3']);
    index.observe('legacy/old', []);
    expect(free()).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
  });

  it('shown twice by one pod (an annotation and its status) are held once, and come free once', () => {
    const { index, free } = indexOf(small);
    index.observe('legacy/old', [v4('10.0.0.1'), v4('10.0.0.1')]);
    expect(free()).toEqual(['10.0.0.2', '10.0.0.3']);
    index.observe('legacy/old', []);
    expect(index.holderOf(v4('10.0.0.1'))).toBeUndefined();
    expect(free()).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
  });

  it('outside every pool are held all the same, and take nothing from any pool', () => {
    const { index, free } = indexOf(small);
    index.observe('legacy/old', [v4('10.0.0.9')]);
    index.observe('legacy/new', [v4('10.0.0.9')]);
    expect(index.holderOf(v4('10.0.0.9'))?.owner).toMatchObject({ namespace: 'legacy', name: 'old' });
    index.observe('legacy/old', []);
    expect(index.holderOf(v4('10.0.0.9'))?.owner).toMatchObject({ namespace: 'legacy', name: 'new' });
    index.observe('legacy/new', []);
    expect(index.holderOf(v4('10.0.0.9'))).toBeUndefined();
    expect(free()).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
  });
});

describe('claims recorded', () => {
  it('one holder per address: a second claim is refused and changes nothing', () => {
    const { index } = indexOf(small);
    const first = claimOn('10.0.0.1');
    expect(index.add(first)).toBe(true);
    expect(index.additions).toBe(1);
    expect(index.add(claimOn('10.0.0.1', b))).toBe(false);
    expect(index.add(claimOn('10.0.0.1'))).toBe(false);
    // Nothing was claimed: an admission that saw this may answer again without caching.
    expect(index.additions).toBe(1);
    expect(index.holderOf(v4('10.0.0.1'))).toBe(first);
    expect(index.claimsOf(b)).toEqual([]);
    expect(index.claimsOf(a)).toEqual([first]);
    expect(index.usage('small')[0]!.allocated).toBe(1n);
    index.remove(first);
    expect(index.add(claimOn('10.0.0.1', b))).toBe(true);
    expect(index.additions).toBe(2);
    expect(index.holderOf(v4('10.0.0.1'))?.owner).toEqual(b);
  });

  it('naming a pool the index does not know are held all the same', () => {
    const { index, free } = indexOf(small);
    const claim = claimOn('10.0.0.1', a, { pool: 'gone' });
    expect(index.add(claim)).toBe(true);
    expect(index.holderOf(v4('10.0.0.1'))).toBe(claim);
    expect(index.remove(claim)).toBe(true);
    expect(index.holderOf(v4('10.0.0.1'))).toBeUndefined();
    expect(free()).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
  });

  it('are released only as the claim that holds the address: the same owner, and the same stored object', () => {
    const { index, free } = indexOf(small);
    const stored = claimOn('10.0.0.1', a, { ref: 'uid-2', version: '7' });
    index.add(stored);
    // A late delete event of an earlier object of the same address and owner.
    expect(index.remove(claimOn('10.0.0.1', a, { ref: 'uid-1' }))).toBe(false);
    expect(index.remove(claimOn('10.0.0.1', b, { ref: 'uid-2' }))).toBe(false);
    expect(index.remove(claimOn('10.0.0.2', a, { ref: 'uid-2' }))).toBe(false);
    expect(index.holderOf(v4('10.0.0.1'))).toBe(stored);
    expect(free()).toEqual(['10.0.0.2', '10.0.0.3']);
    // Another version of the same object is the same claim.
    expect(index.remove(claimOn('10.0.0.1', a, { ref: 'uid-2', version: '8' }))).toBe(true);
    expect(free()).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    expect(index.claimsOf(a)).toEqual([]);
  });

  it('still being created (no stored object yet) are not removed by a delete event of a stored one', () => {
    const { index } = indexOf(small);
    const creating = claimOn('10.0.0.1');
    index.add(creating);
    expect(index.remove(claimOn('10.0.0.1', a, { ref: 'uid-1' }))).toBe(false);
    expect(index.holderOf(v4('10.0.0.1'))).toBe(creating);
    // Its own process, which knows no stored object either, removes it.
    expect(index.remove(claimOn('10.0.0.1'))).toBe(true);
  });
});

describe('a stored claim as the watch reports it', () => {
  const stored = (ip: string, owner: Owner, ref: string, version: string, createdAt = 1) =>
    claimOn(ip, owner, { ref, version, createdAt });

  it('is recorded as a new claim on a free address', () => {
    const { index, free } = indexOf(small);
    const c = stored('10.0.0.2', a, 'uid-1', '1');
    expect(index.put(c)).toBe(true);
    expect(index.holderOf(v4('10.0.0.2'))).toBe(c);
    expect(index.additions).toBe(1);
    expect(free()).toEqual(['10.0.0.1', '10.0.0.3']);
  });

  it('is refused when another object holds the address, whatever it says', () => {
    const { index } = indexOf(small);
    const held = stored('10.0.0.2', a, 'uid-1', '1');
    index.put(held);
    expect(index.put(stored('10.0.0.2', b, 'uid-2', '5'))).toBe(false);
    // Neither a claim without a stored object, against one without a stored object.
    const creating = claimOn('10.0.0.3');
    index.add(creating);
    expect(index.put(claimOn('10.0.0.3', b, { createdAt: 9 }))).toBe(false);
    expect(index.holderOf(v4('10.0.0.2'))).toBe(held);
    expect(index.holderOf(v4('10.0.0.3'))).toBe(creating);
    expect(index.claimsOf(b)).toEqual([]);
  });

  it('moves the claim to its new owner when the same object was bound, and frees nothing meanwhile', () => {
    const { index, free, allocated } = indexOf(small);
    const unnamed: Owner = { kind: 'Pod', namespace: 'shop', name: '', uid: 'req-1' };
    index.put(stored('10.0.0.2', unnamed, 'uid-1', '1'));
    const bound = stored('10.0.0.2', pod('shop', 'web-x7'), 'uid-1', '2');
    expect(index.put(bound)).toBe(true);
    expect(index.claimsOf(unnamed)).toEqual([]);
    expect(index.claimsOf(pod('shop', 'web-x7'))).toEqual([bound]);
    expect(index.holderOf(v4('10.0.0.2'))).toBe(bound);
    expect(free()).toEqual(['10.0.0.1', '10.0.0.3']);
    expect(allocated()).toEqual([1n]);
  });

  it('confirms a claim this process is still creating: the address stays held by that object', () => {
    const { index } = indexOf(small);
    const creating = claimOn('10.0.0.2', a, { createdAt: 42 });
    index.add(creating);
    index.confirm(stored('10.0.0.2', a, 'uid-1', '3', 99));
    const held = index.holderOf(v4('10.0.0.2'))!;
    expect(held).toEqual({ ...creating, ref: 'uid-1', version: '3' });
    expect(index.claimsOf(a)).toEqual([held]);
    // A delete event of that object now removes it.
    expect(index.remove(stored('10.0.0.2', a, 'uid-1', '4'))).toBe(true);
    expect(index.holderOf(v4('10.0.0.2'))).toBeUndefined();
  });

  it('confirms nothing for another owner, an entry that has its object, a report with no object, or a free address', () => {
    const { index } = indexOf(small);
    const creating = claimOn('10.0.0.1');
    const known = stored('10.0.0.2', a, 'uid-2', '1');
    index.add(creating);
    index.add(known);
    index.confirm(stored('10.0.0.1', b, 'uid-1', '1'));
    index.confirm(claimOn('10.0.0.1'));
    index.confirm(stored('10.0.0.2', a, 'uid-9', '5'));
    index.confirm(stored('10.0.0.3', a, 'uid-3', '1'));
    expect(index.holderOf(v4('10.0.0.1'))).toBe(creating);
    expect(index.holderOf(v4('10.0.0.2'))).toBe(known);
    expect(index.holderOf(v4('10.0.0.3'))).toBeUndefined();
    expect(index.claimsOf(a)).toEqual([creating, known]);
  });
});

describe('a claim replaced', () => {
  it('keeps its place among its owner’s claims, and the owner keeps the others', () => {
    const { index } = indexOf(small);
    const [one, two, three] = ['10.0.0.1', '10.0.0.2', '10.0.0.3'].map((ip) => claimOn(ip));
    for (const c of [one!, two!, three!]) index.add(c);
    const renewed = { ...two!, createdAt: 50 };
    expect(index.replace(two!, renewed)).toBe(true);
    expect(index.claimsOf(a)).toEqual([one, renewed, three]);
    expect(index.claimsOf(a)[1]).toBe(renewed);
    expect(index.holderOf(v4('10.0.0.2'))).toBe(renewed);
  });

  it('of an owner that holds one is that owner’s claim from then on', () => {
    const { index } = indexOf(small);
    const c = claimOn('10.0.0.1');
    index.add(c);
    const renewed = { ...c, createdAt: 50 };
    expect(index.replace(c, renewed)).toBe(true);
    expect(index.claimsOf(a)).toEqual([renewed]);
    expect(index.claimsOf(a)[0]).toBe(renewed);
    // The old entry is no longer the one that holds the address: a release judged on it releases nothing.
    expect(index.replace(c, { ...c, createdAt: 60 })).toBe(false);
    expect(index.remove(renewed)).toBe(true);
    expect(index.claimsOf(a)).toEqual([]);
  });

  it('is refused when the entry judged is no longer the holder, or the replacement is of another address', () => {
    const { index } = indexOf(small);
    const c = claimOn('10.0.0.1');
    index.add(c);
    expect(index.replace(claimOn('10.0.0.1'), { ...c, createdAt: 5 })).toBe(false);
    expect(index.replace(c, claimOn('10.0.0.2'))).toBe(false);
    expect(index.replace(claimOn('10.0.0.3'), claimOn('10.0.0.3'))).toBe(false);
    expect(index.holderOf(v4('10.0.0.1'))).toBe(c);
    expect(index.holderOf(v4('10.0.0.2'))).toBeUndefined();
    expect(index.holderOf(v4('10.0.0.3'))).toBeUndefined();
  });

  it('by one of another owner or pool moves it there, keeping the address held', () => {
    const { index, free, allocated } = indexOf(small);
    const c = claimOn('10.0.0.1', a, { pool: 'legacy' });
    index.add(c);
    expect(allocated()).toEqual([0n]);
    // Stored by an older version under another pool's name, and corrected.
    const corrected = { ...c, pool: 'small' };
    expect(index.replace(c, corrected)).toBe(true);
    expect(allocated()).toEqual([1n]);
    expect(free()).toEqual(['10.0.0.2', '10.0.0.3']);
    const moved = { ...corrected, owner: b };
    expect(index.replace(corrected, moved)).toBe(true);
    expect(index.claimsOf(a)).toEqual([]);
    expect(index.claimsOf(b)).toEqual([moved]);
    expect(free()).toEqual(['10.0.0.2', '10.0.0.3']);
  });
});

describe('an index that has seen many claims come and go', () => {
  it('keeps every claim still held, and counts free addresses right, however many were released', () => {
    const big = compilePool({ metadata: { name: 'big' }, spec: { cidr: '10.8.0.0/20' } });
    const index = new ClaimIndex();
    index.setPool(big);
    const claims: Claim[] = [];
    for (let i = 0; i < 3_000; i++) {
      const ip = index.firstFree('big', 'ipv4')!;
      const c: Claim = { pool: 'big', ip, owner: pod('shop', `p${i % 7}`), createdAt: i };
      expect(index.add(c)).toBe(true);
      claims.push(c);
    }
    // Release all but every tenth: more vacant entries than claims.
    for (const [i, c] of claims.entries()) if (i % 10 !== 0) expect(index.remove(c)).toBe(true);
    const kept = claims.filter((_, i) => i % 10 === 0);
    expect([...index.allClaims()]).toEqual(kept);
    expect(index.usage('big')).toEqual([{ family: 'ipv4', capacity: 4094n, allocated: 300n }]);
    for (const c of kept) expect(index.holderOf(c.ip)).toBe(c);
    expect(index.holderOf(claims[1]!.ip)).toBeUndefined();
    // Addresses released are claimed again, and released again.
    for (const c of claims.slice(1, 10)) expect(index.add(c)).toBe(true);
    expect(index.usage('big')[0]!.allocated).toBe(309n);
    for (const c of claims.slice(1, 10)) expect(index.remove(c)).toBe(true);
    for (const c of kept) expect(index.remove(c)).toBe(true);
    expect([...index.allClaims()]).toEqual([]);
    expect(index.usage('big')[0]!.allocated).toBe(0n);
    expect(index.additions).toBe(3_009);
  });
});

describe('what a long-running index keeps', () => {
  // The webhook and the leader keep one index for their lifetime, while pods, claims and owners come
  // and go by the hundred thousand: what is gone must not keep memory for ever (claim-index.ts keeps a
  // released address's key only while such keys number at most 1 024, or no more than the claims).
  // Nothing public shows this, so the maps' sizes are read here.
  interface Kept {
    byIp: Map<string, unknown>;
    byOwner: Map<string, unknown>;
    observedByIp: Map<string, unknown>;
    observedByPod: Map<string, unknown>;
  }
  const kept = (index: ClaimIndex) => index as unknown as Kept;

  it('forgets released addresses once they outnumber both the slack and the claims held', () => {
    const big = compilePool({ metadata: { name: 'big' }, spec: { cidr: '10.8.0.0/20' } });
    const index = new ClaimIndex();
    index.setPool(big);
    const claims: Claim[] = [];
    for (let i = 0; i < 3_000; i++) {
      const c: Claim = {
        pool: 'big',
        ip: index.firstFree('big', 'ipv4')!,
        owner: pod('shop', `p${i % 7}`),
        createdAt: i,
      };
      index.add(c);
      claims.push(c);
    }
    let live = claims.length;
    for (const [i, c] of claims.entries()) {
      if (i % 10 === 0) continue;
      index.remove(c);
      live--;
      const vacant = kept(index).byIp.size - live;
      expect(vacant).toBeLessThanOrEqual(Math.max(1_024, live));
    }
    expect(kept(index).byIp.size).toBeLessThanOrEqual(300 + 1_024);
    for (const [i, c] of claims.entries()) if (i % 10 === 0) index.remove(c);
    expect(kept(index).byIp.size).toBeLessThanOrEqual(1_024);
    // Claimed and released again and again, as a busy pool is: still bounded.
    for (let round = 0; round < 3; round++) {
      for (const c of claims) index.add(c);
      for (const c of claims) index.remove(c);
      expect(kept(index).byIp.size).toBeLessThanOrEqual(1_024);
    }
    expect(kept(index).byOwner.size).toBe(0);
  });

  it('forgets an owner whose claims are all gone, and a pod no longer seen', () => {
    const { index } = indexOf(small);
    const [one, two] = [claimOn('10.0.0.1'), claimOn('10.0.0.2')];
    index.add(one);
    index.add(two);
    index.remove(one);
    index.remove(two);
    expect(kept(index).byOwner.size).toBe(0);
    index.observe('legacy/old', [v4('10.0.0.3')]);
    index.observe('legacy/old', []);
    index.observe('legacy/never', []);
    expect(kept(index).observedByPod.size).toBe(0);
    expect(kept(index).observedByIp.size).toBe(0);
  });
});
