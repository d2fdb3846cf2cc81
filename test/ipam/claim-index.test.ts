import { describe, expect, it } from 'vitest';
import { ClaimIndex } from '../../src/ipam/claim-index.js';
import { ConflictError, type Owner } from '../../src/ipam/claim.js';
import { MemoryLedger } from '../../src/ipam/memory-ledger.js';
import { compilePool } from '../../src/ipam/pool.js';
import { v4 } from '../cni/fixtures.js';

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
