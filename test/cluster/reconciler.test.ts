import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { V1Pod } from '@kubernetes/client-node';
import { podAddresses, type PodRecord } from '../../src/cluster/pod-tracker.js';
import { holds, staleClaims } from '../../src/cluster/reconciler.js';
import type { Claim } from '../../src/ipam/claim.js';
import { v4 } from '../cni/fixtures.js';

const GRACE = 30_000;
const NOW = 1_000_000;
const old = NOW - GRACE - 1;

const byUid: Claim = {
  pool: 'web',
  ip: v4('10.0.0.5'),
  owner: { kind: 'Pod', namespace: 'shop', name: '', uid: 'req-1' },
  createdAt: old,
};
const named: Claim = {
  pool: 'web',
  ip: v4('10.0.0.6'),
  owner: { kind: 'Pod', namespace: 'shop', name: 'fixed' },
  createdAt: old,
};
const ordinal: Claim = {
  pool: 'web',
  ip: v4('10.0.0.7'),
  owner: { kind: 'StatefulSet', namespace: 'shop', name: 'db', ordinal: 1 },
  createdAt: old,
};
const pod = (name: string, addresses: string[] = [], namespace = 'shop'): PodRecord => ({
  namespace,
  name,
  uid: `uid-${name}`,
  addresses,
  egress: [],
});

describe('which claims a pod holds', () => {
  it('by its name, or by any address it uses or asked for', () => {
    expect(holds(pod('fixed'), named)).toBe(true);
    expect(holds(pod('api-x1', ['10.0.0.5']), byUid)).toBe(true);
    expect(holds(pod('api-x1'), byUid)).toBe(false);
    expect(holds(pod('db-1'), ordinal)).toBe(true);
    expect(holds(pod('db-2'), ordinal)).toBe(false);
    expect(holds(pod('other', ['10.0.0.7']), ordinal)).toBe(true);
  });

  it("reads addresses from netpin.io/allocated, the CNI's annotations and status.podIPs, whichever remain", () => {
    const base: V1Pod = { metadata: { name: 'p', namespace: 'shop', annotations: {} }, status: { phase: 'Running' } };
    const withAnnotations = (a: Record<string, string>, ips: string[] = []): V1Pod => ({
      ...base,
      metadata: { ...base.metadata, annotations: a },
      status: { phase: 'Running', podIPs: ips.map((ip) => ({ ip })) },
    });
    const keys = ['cni.projectcalico.org/ipAddrs'];
    expect(podAddresses(withAnnotations({ 'netpin.io/allocated': '10.0.0.5,fd00::5' }), keys)).toEqual([
      '10.0.0.5',
      'fd00::5',
    ]);
    // The label and netpin.io/allocated removed: Calico's annotation still says it.
    expect(
      podAddresses(withAnnotations({ 'cni.projectcalico.org/ipAddrs': '["10.0.0.5", "fd00:0::5"]' }), keys),
    ).toEqual(['10.0.0.5', 'fd00::5']);
    expect(podAddresses(withAnnotations({}, ['10.0.0.9']), keys)).toEqual(['10.0.0.9']);
    // A pod whose containers have all ended has given its sandbox, and its addresses, back.
    expect(
      podAddresses(
        { ...withAnnotations({ 'netpin.io/allocated': '10.0.0.5' }, ['10.0.0.5']), status: { phase: 'Succeeded' } },
        keys,
      ),
    ).toEqual([]);
  });
});

describe('stale claims', () => {
  const none = () => false;

  it('are past the grace period, with no pod holding them', () => {
    const fresh = { ...byUid, createdAt: NOW - 1 };
    expect(staleClaims([byUid, named, fresh], [], none, NOW, GRACE)).toEqual([byUid, named]);
    expect(staleClaims([byUid, named], [pod('api-x1', ['10.0.0.5']), pod('fixed')], none, NOW, GRACE)).toEqual([]);
  });

  it('never match a pod of another namespace', () => {
    expect(
      staleClaims([named, byUid], [pod('fixed', [], 'other'), pod('x', ['10.0.0.5'], 'other')], none, NOW, GRACE),
    ).toEqual([named, byUid]);
  });

  it("keep a StatefulSet's reservation while the StatefulSet exists, and then while its pod does", () => {
    expect(staleClaims([ordinal], [], () => true, NOW, GRACE)).toEqual([]);
    expect(staleClaims([ordinal], [pod('db-1')], none, NOW, GRACE)).toEqual([]);
    expect(staleClaims([ordinal], [pod('db-0')], none, NOW, GRACE)).toEqual([ordinal]);
  });
});

describe('a pod claim held by name', () => {
  const none = () => false;
  // Found by the replicas-killed scenario: a create retried on a replica that had not yet seen the
  // first admission's claim got a second address under the same name, and the first stayed held by
  // the name for the pod's whole life.
  const first: Claim = {
    pool: 'web',
    ip: v4('10.0.0.8'),
    owner: { kind: 'Pod', namespace: 'shop', name: 'bare' },
    createdAt: old,
  };
  const second: Claim = {
    pool: 'web',
    ip: v4('10.0.0.9'),
    owner: { kind: 'Pod', namespace: 'shop', name: 'bare' },
    createdAt: old,
  };

  it('is not held when the pod shows another address its owner claimed too', () => {
    expect(holds(pod('bare', ['10.0.0.9']), first, [first, second])).toBe(false);
    expect(holds(pod('bare', ['10.0.0.9']), second, [first, second])).toBe(true);
    expect(staleClaims([first, second], [pod('bare', ['10.0.0.9'])], none, NOW, GRACE)).toEqual([first]);
  });

  it('is still held by the name alone when the pod shows no address of its owner, or only one outside the ledger', () => {
    expect(holds(pod('bare'), first, [first, second])).toBe(true);
    expect(holds(pod('bare', ['192.168.0.4']), first, [first])).toBe(true);
    expect(staleClaims([first, second], [pod('bare')], none, NOW, GRACE)).toEqual([]);
  });
});

describe('a sweep', () => {
  it('finds the same stale claims as asking every pod of the namespace', () => {
    const ip = fc.integer({ min: 1, max: 12 }).map((n) => `10.0.0.${n}`);
    const name = fc.constantFrom('a', 'b', 'db-0', 'db-1', '');
    const ns = fc.constantFrom('shop', 'other');
    const owner = fc.oneof(
      fc.record({ kind: fc.constant('Pod' as const), namespace: ns, name, uid: fc.constant('u') }),
      fc.record({
        kind: fc.constant('StatefulSet' as const),
        namespace: ns,
        name: fc.constant('db'),
        ordinal: fc.integer({ min: 0, max: 1 }),
      }),
      fc.record({ kind: fc.constant('Egress' as const), namespace: ns, workload: fc.constant('Pod' as const), name }),
    );
    const claim = fc
      .record({ ip, owner, old: fc.boolean() })
      .map((c): Claim => ({ pool: 'web', ip: v4(c.ip), owner: c.owner, createdAt: c.old ? old : NOW }));
    const podRecord = fc.record({
      namespace: ns,
      name: name.filter(Boolean),
      addresses: fc.array(ip, { maxLength: 2 }),
      egress: fc.array(ip, { maxLength: 1 }),
    });
    fc.assert(
      fc.property(
        fc.array(claim, { maxLength: 12 }),
        fc.uniqueArray(podRecord, { maxLength: 6, selector: (p) => `${p.namespace}/${p.name}` }),
        (claims, records) => {
          const pods = records.map((r) => ({ ...r, uid: `uid-${r.name}` }));
          const ownersClaims = (c: Claim) => claims.filter((x) => JSON.stringify(x.owner) === JSON.stringify(c.owner));
          const naive = claims.filter(
            (c) =>
              NOW - c.createdAt >= GRACE &&
              !pods.some((p) => p.namespace === c.owner.namespace && holds(p, c, ownersClaims(c))),
          );
          expect(staleClaims(claims, pods, () => false, NOW, GRACE)).toEqual(naive);
        },
      ),
      { numRuns: 500 },
    );
  });
});
