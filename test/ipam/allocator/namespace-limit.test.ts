// spec.namespaceLimit: what one namespace may hold of a pool, per family, claims and reservations together.
import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import { parsePools } from '../../../src/config/pools-file.js';
import { parseIntent } from '../../../src/intent/parse.js';
import { Allocator, type AllocationResult } from '../../../src/ipam/allocator.js';
import { ClaimIndex } from '../../../src/ipam/claim-index.js';
import type { Claim, EgressOwner, Owner } from '../../../src/ipam/claim.js';
import { MemoryLedger } from '../../../src/ipam/memory-ledger.js';
import { compilePool, PoolSpecError } from '../../../src/ipam/pool.js';
import type { Address } from '../../../src/net/address.js';

const POOLS = `
apiVersion: netpin.io/v1alpha1
kind: IPPool
metadata: { name: capped }
spec: { ranges: ["10.1.0.1-10.1.0.50", "fd00:1::1-fd00:1::50"], namespaceLimit: 3 }
---
apiVersion: netpin.io/v1alpha1
kind: IPPool
metadata: { name: open }
spec: { cidr: 10.2.0.0/24 }
---
apiVersion: netpin.io/v1alpha1
kind: IPPool
metadata: { name: out }
spec: { cidr: 203.0.113.0/28, egress: {}, namespaceLimit: 1 }
`;

const LABELS = { 'kubernetes.io/metadata.name': 'shop' };
const pod = (name: string, namespace = 'shop'): Owner => ({ kind: 'Pod', namespace, name });

function setup() {
  const ledger = new MemoryLedger(parsePools(POOLS).pools);
  const allocator = new Allocator(ledger);
  const allocate = (annotations: Record<string, string>, owner: Owner, dryRun = false) => {
    const { intent, problems } = parseIntent(annotations);
    expect(problems).toEqual([]);
    return allocator.allocate({ intent, namespace: owner.namespace, namespaceLabels: LABELS, owner, dryRun });
  };
  return { ledger, allocator, allocate };
}

const message = (r: AllocationResult) => (r.ok ? 'allowed' : r.problems.map((p) => `${p.message}. Fix: ${p.fix}`)[0]);

describe('spec.namespaceLimit of an IPPool', () => {
  it('is a whole number of addresses, 0 or more; absent, no cap', () => {
    expect(
      compilePool({ metadata: { name: 'a' }, spec: { cidr: '10.0.0.0/24', namespaceLimit: 0 } }).namespaceLimit,
    ).toBe(0);
    expect(compilePool({ metadata: { name: 'a' }, spec: { cidr: '10.0.0.0/24' } }).namespaceLimit).toBeUndefined();
    for (const bad of [-1, 1.5, '3', Number.MAX_SAFE_INTEGER + 1, null])
      expect(() =>
        compilePool({ metadata: { name: 'a' }, spec: { cidr: '10.0.0.0/24', namespaceLimit: bad as number } }),
      ).toThrow(new PoolSpecError('IPPool a: spec.namespaceLimit must be a whole number of addresses, 0 or more'));
  });
});

describe('what a namespace holds, as the index counts it', () => {
  const v = (ip: string) => ipaddr.parse(ip) as Address;
  const claim = (ip: string, owner: Owner, pool = 'capped'): Claim => ({
    pool,
    ip: v(ip),
    owner,
    createdAt: 0,
    ref: ip,
  });
  const sts = (ordinal: number, namespace = 'shop'): Owner => ({ kind: 'StatefulSet', namespace, name: 'db', ordinal });

  it('by pool, namespace and family, claims and reservations together, and forgets a namespace that holds nothing', () => {
    const index = new ClaimIndex();
    const a = claim('10.1.0.1', pod('a'));
    const b = claim('fd00:1::1', pod('a'));
    const c = claim('10.1.0.2', sts(0));
    const d = claim('10.1.0.3', pod('x', 'other'));
    const e = claim('10.2.0.3', pod('a'), 'open');
    for (const x of [a, b, c, d, e]) index.add(x);
    expect(index.namespaceHeld('capped', 'shop', 'ipv4')).toBe(2);
    expect(index.namespaceHeld('capped', 'shop', 'ipv6')).toBe(1);
    expect(index.namespaceHeld('capped', 'other', 'ipv4')).toBe(1);
    expect(index.namespaceHeld('open', 'shop', 'ipv4')).toBe(1);
    expect([...index.namespaceUsage()]).toEqual([
      { pool: 'capped', namespace: 'shop', ipv4: 2, ipv6: 1 },
      { pool: 'capped', namespace: 'other', ipv4: 1, ipv6: 0 },
      { pool: 'open', namespace: 'shop', ipv4: 1, ipv6: 0 },
    ]);
    // A renewal or a bind replaces the entry: the count stays.
    index.replace(a, { ...a, version: '2' });
    expect(index.namespaceHeld('capped', 'shop', 'ipv4')).toBe(2);
    expect(index.remove(c)).toBe(true);
    expect(index.remove(c)).toBe(false);
    expect(index.namespaceHeld('capped', 'shop', 'ipv4')).toBe(1);
    index.remove(d);
    expect([...index.namespaceUsage()].map((u) => u.namespace)).toEqual(['shop', 'shop']);
    // A claim another holds is not counted twice.
    expect(index.add(claim('10.1.0.1', pod('z')))).toBe(false);
    expect(index.namespaceHeld('capped', 'shop', 'ipv4')).toBe(1);
  });

  it('counts reserved ordinals once each, whatever they hold, by namespace', () => {
    const index = new ClaimIndex();
    const v4 = claim('10.1.0.1', sts(0));
    const v6 = claim('fd00:1::1', sts(0));
    index.add(v4);
    index.add(v6);
    index.add(claim('10.1.0.2', sts(1)));
    index.add(claim('10.1.0.3', sts(0, 'other')));
    index.add(claim('10.1.0.4', pod('a')));
    expect(index.reservedOrdinals('shop')).toBe(2);
    expect(index.reservedOrdinals('other')).toBe(1);
    index.remove(v4);
    expect(index.reservedOrdinals('shop')).toBe(2);
    index.remove(v6);
    expect(index.reservedOrdinals('shop')).toBe(1);
  });
});

describe('allocation under spec.namespaceLimit', () => {
  it('refuses the claim past the cap, naming the pool, the limit, what the namespace holds and the fix', async () => {
    const t = setup();
    for (const name of ['a', 'b', 'c'])
      expect((await t.allocate({ 'netpin.io/pool': 'capped' }, pod(name))).ok).toBe(true);
    const r = await t.allocate({ 'netpin.io/pool': 'capped' }, pod('d'));
    expect(message(r)).toBe(
      'IPPool capped lets each namespace hold 3 IPv4 addresses (spec.namespaceLimit), and namespace shop holds 3: no room for 1 more. ' +
        'Fix: give back addresses namespace shop holds (delete pods or StatefulSets it no longer needs, or scale them down; a StatefulSet scaled down gives its reservations back after netpin.io/scale-down-release), ' +
        "or ask the cluster's operator to raise spec.namespaceLimit of IPPool capped, or name another pool: open",
    );
    expect(r.ok || r.problems[0]!.key).toBe('netpin.io/pool');
    // Another namespace has a cap of its own.
    expect((await t.allocate({ 'netpin.io/pool': 'capped' }, pod('e', 'other'))).ok).toBe(true);
    // A dry run says the same, and claims nothing.
    expect(message(await t.allocate({ 'netpin.io/pool': 'capped' }, pod('d'), true))).toMatch(/holds 3: no room/);
    expect(t.ledger.index.namespaceHeld('capped', 'shop', 'ipv4')).toBe(3);
  });

  it('counts each family apart, and a fixed address like any other', async () => {
    const t = setup();
    for (const k of [1, 2, 3])
      expect((await t.allocate({ 'netpin.io/ip': `fd00:1::${k}` }, pod(`v6-${k}`))).ok).toBe(true);
    // IPv4 has room; a dual-stack pool's pod asks for both families, and IPv6 has none.
    expect((await t.allocate({ 'netpin.io/ip': '10.1.0.9' }, pod('v4'))).ok).toBe(true);
    expect(message(await t.allocate({ 'netpin.io/pool': 'capped' }, pod('dual')))).toMatch(/3 IPv6 addresses/);
    const r = await t.allocate({ 'netpin.io/ip': 'fd00:1::9' }, pod('v6-4'));
    expect(message(r)).toMatch(
      /^IPPool capped lets each namespace hold 3 IPv6 addresses .* holds 3: no room for 1 more/,
    );
    expect(r.ok || r.problems[0]!.key).toBe('netpin.io/ip');
  });

  it('does not count what the owner holds and gives back: a pod admitted again, or moved to another address, stays within it', async () => {
    const t = setup();
    for (const name of ['a', 'b', 'c']) await t.allocate({ 'netpin.io/pool': 'capped' }, pod(name));
    // The same owner again keeps what it holds.
    expect((await t.allocate({ 'netpin.io/pool': 'capped' }, pod('c'))).ok).toBe(true);
    // The same owner asking for another address gives its old one back first.
    expect(message(await t.allocate({ 'netpin.io/ip': '10.1.0.40' }, pod('c'), true))).toBe('allowed');
    const r = await t.allocate({ 'netpin.io/ip': '10.1.0.40' }, pod('c'));
    expect(message(r)).toBe('allowed');
    expect(t.ledger.index.namespaceHeld('capped', 'shop', 'ipv4')).toBe(3);
  });

  it('lets no two admissions of one process both take the last address under the cap', async () => {
    const t = setup();
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, k) => t.allocate({ 'netpin.io/pool': 'capped' }, pod(`p${k}`))),
    );
    expect(results.filter((r) => r.ok)).toHaveLength(3);
    expect(t.ledger.index.namespaceHeld('capped', 'shop', 'ipv4')).toBe(3);
  });

  it('caps egress addresses too, from an egress pool or fixed', async () => {
    const t = setup();
    const egress = (name: string, annotations: Record<string, string>) => {
      const { intent } = parseIntent(annotations);
      const owner: EgressOwner = { kind: 'Egress', namespace: 'shop', workload: 'Deployment', name };
      return t.allocator.allocateEgress({
        intent,
        namespace: 'shop',
        namespaceLabels: LABELS,
        owner,
        dryRun: false,
        plan: t.allocator.plan(intent, 'shop', LABELS),
      });
    };
    expect((await egress('a', { 'netpin.io/egress-pool': 'out' })).ok).toBe(true);
    const pooled = await egress('b', { 'netpin.io/egress-pool': 'out' });
    expect(pooled.ok || pooled.problems[0]).toMatchObject({
      key: 'netpin.io/egress-pool',
      message: expect.stringMatching(/^IPPool out lets each namespace hold 1 IPv4 addresses .* holds 1/),
    });
    const fixed = await egress('c', { 'netpin.io/egress-ip': '203.0.113.9' });
    expect(fixed.ok || fixed.problems[0]!.key).toBe('netpin.io/egress-ip');
  });

  it('a limit of 0 lets no namespace draw from the pool', async () => {
    const ledger = new MemoryLedger([
      compilePool({ metadata: { name: 'shut' }, spec: { cidr: '10.9.0.0/24', namespaceLimit: 0 } }),
    ]);
    const { intent } = parseIntent({ 'netpin.io/pool': 'shut' });
    const r = await new Allocator(ledger).allocate({
      intent,
      namespace: 'shop',
      namespaceLabels: LABELS,
      owner: pod('a'),
      dryRun: false,
    });
    expect(message(r)).toMatch(/hold 0 IPv4 addresses .* holds 0: no room for 1 more/);
  });
});
