import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { ConflictError, ExhaustedError, type Owner } from '../../src/ipam/claim.js';
import { MemoryLedger } from '../../src/ipam/memory-ledger.js';
import { compilePool } from '../../src/ipam/pool.js';
import { pool, v4 } from '../cni/fixtures.js';
import { expectOrderingRule } from '../../harness/ledger-rules.js';

const small = compilePool({ metadata: { name: 'small' }, spec: { ranges: ['10.0.0.1-10.0.0.3'] } });
const six = pool('six', 'fd00::/126');
const a: Owner = { kind: 'Pod', namespace: 'shop', name: 'a' };
const b: Owner = { kind: 'Pod', namespace: 'shop', name: 'b' };
const ordinal = (k: number): Owner => ({ kind: 'StatefulSet', namespace: 'shop', name: 'web', ordinal: k });

describe('MemoryLedger', () => {
  it('claims an address once, and gives the same owner its existing claim back', async () => {
    const ledger = new MemoryLedger([small]);
    const first = await ledger.claim(small, v4('10.0.0.2'), a);
    expect(first).toMatchObject({ pool: 'small', owner: a });
    expect(await ledger.claim(small, v4('10.0.0.2'), { ...a })).toBe(first);
    expect(ledger.index.holderOf(v4('10.0.0.2'))).toBe(first);
    expect(ledger.index.claimsOf(a)).toEqual([first]);
  });

  it('refuses an address held by another owner, naming the holder', async () => {
    const ledger = new MemoryLedger([small]);
    await ledger.claim(small, v4('10.0.0.2'), ordinal(3));
    const err = await ledger.claim(small, v4('10.0.0.2'), b).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as ConflictError).message).toBe('10.0.0.2 is held by StatefulSet shop/web (ordinal 3)');
    expect((err as ConflictError).holder.owner).toEqual(ordinal(3));
  });

  it('claims the lowest free address, skipping held ones, until the pool is exhausted', async () => {
    const ledger = new MemoryLedger([small]);
    await ledger.claim(small, v4('10.0.0.1'), a);
    expect((await ledger.claimNext(small, 'ipv4', ordinal(0))).ip.toString()).toBe('10.0.0.2');
    expect((await ledger.claimNext(small, 'ipv4', ordinal(1))).ip.toString()).toBe('10.0.0.3');
    const err = await ledger.claimNext(small, 'ipv4', ordinal(2)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExhaustedError);
    expect((err as ExhaustedError).message).toBe('IPPool small has no free IPv4 address');
    expect(ledger.index.usage('small')).toEqual([{ family: 'ipv4', capacity: 3n, allocated: 3n }]);
  });

  it('keeps families apart', async () => {
    const ledger = new MemoryLedger([small, six]);
    expect((await ledger.claimNext(six, 'ipv6', a)).ip.toString()).toBe('fd00::1');
    expect((await ledger.claimNext(small, 'ipv4', a)).ip.toString()).toBe('10.0.0.1');
    expect(
      ledger.index
        .claimsOf(a)
        .map((c) => c.ip.toString())
        .sort(),
    ).toEqual(['10.0.0.1', 'fd00::1']);
    await expect(ledger.claimNext(small, 'ipv6', b)).rejects.toThrow('IPPool small has no free IPv6 address');
  });

  it('frees an address on release, so that it is the next one claimed', async () => {
    const ledger = new MemoryLedger([small]);
    const claims = [];
    for (const k of [0, 1, 2]) claims.push(await ledger.claimNext(small, 'ipv4', ordinal(k)));
    expect(await ledger.release(claims[1]!)).toBe(true);
    expect(ledger.index.holderOf(v4('10.0.0.2'))).toBeUndefined();
    expect(ledger.index.claimsOf(ordinal(1))).toEqual([]);
    expect(ledger.index.usage('small')[0]!.allocated).toBe(2n);
    expect((await ledger.claimNext(small, 'ipv4', b)).ip.toString()).toBe('10.0.0.2');
  });

  it('ignores the release of a claim whose address another owner holds now', async () => {
    const ledger = new MemoryLedger([small]);
    const stale = await ledger.claim(small, v4('10.0.0.1'), a);
    expect(await ledger.release(stale)).toBe(true);
    const current = await ledger.claim(small, v4('10.0.0.1'), b);
    expect(await ledger.release(stale)).toBe(false);
    expect(ledger.index.holderOf(v4('10.0.0.1'))).toBe(current);
    expect(ledger.index.firstFree('small', 'ipv4')?.toString()).toBe('10.0.0.2');
  });

  it('releases exactly the claim the caller judged: once renewed, the old one releases nothing', async () => {
    const ledger = new MemoryLedger([small]);
    const judged = await ledger.claim(small, v4('10.0.0.1'), a);
    expect(await ledger.renew(judged)).toBe(true);
    // The same owner, the same address, but another state: a sweep that found `judged` stale was wrong.
    expect(await ledger.release(judged)).toBe(false);
    const renewed = ledger.index.holderOf(v4('10.0.0.1'))!;
    expect(renewed).not.toBe(judged);
    expect(renewed.owner).toEqual(a);
    expect(ledger.index.firstFree('small', 'ipv4')?.toString()).toBe('10.0.0.2');
    expect(await ledger.release(renewed)).toBe(true);
    expect(ledger.index.holderOf(v4('10.0.0.1'))).toBeUndefined();
  });

  it('renews a held claim with a new grace period, and fails for a released one', async () => {
    vi.useFakeTimers({ now: 1_000 });
    onTestFinished(() => void vi.useRealTimers());
    const ledger = new MemoryLedger([small]);
    const claim = await ledger.claim(small, v4('10.0.0.1'), a);
    expect(claim.createdAt).toBe(1_000);
    vi.setSystemTime(31_000);
    expect(await ledger.renew(claim)).toBe(true);
    const renewed = ledger.index.holderOf(v4('10.0.0.1'))!;
    expect(renewed.createdAt).toBe(31_000);
    expect(claim.createdAt).toBe(1_000);
    expect(ledger.index.claimsOf(a)).toEqual([renewed]);
    expect(await ledger.release(renewed)).toBe(true);
    expect(await ledger.renew(renewed)).toBe(false);
    expect(ledger.index.holderOf(v4('10.0.0.1'))).toBeUndefined();
  });

  it("binds a claim made before its pod had a name to the pod's name and uid", async () => {
    const ledger = new MemoryLedger([small]);
    const unnamed: Owner = { kind: 'Pod', namespace: 'shop', name: '', uid: 'req-1' };
    const claim = await ledger.claim(small, v4('10.0.0.2'), unnamed);
    await ledger.bind(claim, { name: 'web-7f9c', uid: 'pod-uid' });
    const bound = ledger.index.holderOf(v4('10.0.0.2'))!;
    expect(bound).toMatchObject({ pool: 'small', createdAt: claim.createdAt });
    expect(bound.ip.toString()).toBe('10.0.0.2');
    expect(bound.owner).toEqual({ kind: 'Pod', namespace: 'shop', name: 'web-7f9c', uid: 'pod-uid' });
    expect(ledger.index.claimsOf(bound.owner)).toEqual([bound]);
    expect(ledger.index.claimsOf(unnamed)).toEqual([]);
    // The pod's name now holds the address: a pod of that name gets it back, another is refused.
    expect(await ledger.claim(small, v4('10.0.0.2'), { kind: 'Pod', namespace: 'shop', name: 'web-7f9c' })).toBe(bound);
    await expect(ledger.claim(small, v4('10.0.0.2'), b)).rejects.toThrow('10.0.0.2 is held by pod shop/web-7f9c');
  });

  it('binds nothing for a claim that is gone: the address stays free', async () => {
    const ledger = new MemoryLedger([small]);
    const claim = await ledger.claim(small, v4('10.0.0.2'), { kind: 'Pod', namespace: 'shop', name: '', uid: 'r' });
    await ledger.release(claim);
    await ledger.bind(claim, { name: 'late', uid: 'u' });
    expect(ledger.index.holderOf(v4('10.0.0.2'))).toBeUndefined();
    expect(ledger.index.claimsOf({ kind: 'Pod', namespace: 'shop', name: 'late' })).toEqual([]);
    expect(ledger.index.usage('small')[0]!.allocated).toBe(0n);
  });

  it('keeps claims when a pool is redefined, and counts them against the new ranges', async () => {
    const ledger = new MemoryLedger([small]);
    await ledger.claim(small, v4('10.0.0.2'), a);
    const wider = compilePool({ metadata: { name: 'small' }, spec: { ranges: ['10.0.0.1-10.0.0.5'] } });
    ledger.index.setPool(wider);
    expect(ledger.index.usage('small')).toEqual([{ family: 'ipv4', capacity: 5n, allocated: 1n }]);
    expect(ledger.index.firstFree('small', 'ipv4')?.toString()).toBe('10.0.0.1');
    expect(ledger.index.poolOf(v4('10.0.0.5'))?.name).toBe('small');
    expect(ledger.index.poolOf(v4('10.0.0.6'))).toBeUndefined();
  });

  it('keeps the ordering rule: claims started in a row get addresses in that order', async () => {
    const wide = pool('wide', '10.9.0.0/28');
    const ledger = new MemoryLedger([wide]);
    await expectOrderingRule(ledger, wide, a, [0, 1, 2, 3, 4].map(ordinal));
  });

  it('starts and stops without effect', async () => {
    const ledger = new MemoryLedger();
    await ledger.start();
    await ledger.stop();
    expect(ledger.index.allPools()).toEqual([]);
  });
});
