import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import type { V1Pod } from '@kubernetes/client-node';
import { podAddresses, type PodRecord } from '../../src/cluster/pod-tracker.js';
import {
  holds,
  RECONCILER_CALL_MS,
  Reconciler,
  staleClaims,
  type ReconcilerApi,
} from '../../src/cluster/reconciler.js';
import type { Claim, Owner } from '../../src/ipam/claim.js';
import { MemoryLedger } from '../../src/ipam/memory-ledger.js';
import { compilePool } from '../../src/ipam/pool.js';
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

/** A promise the test resolves when it chooses: an API call held open while something else happens. */
function gate<T>() {
  let open!: (value: T) => void;
  let fail!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => ((open = res), (fail = rej)));
  return { promise, open, fail };
}

/**
 * A ledger whose release deletes whatever holds the address, with no precondition: the reconciler's
 * own checks are all that stand between a renewed claim and its release here.
 */
class CarelessLedger extends MemoryLedger {
  override async release(claim: Claim): Promise<boolean> {
    const held = this.index.holderOf(claim.ip);
    return held !== undefined && !held.observed && this.index.remove(held);
  }
}

const web = compilePool({ metadata: { name: 'web' }, spec: { cidr: '10.0.0.0/24' } });
const egressPool = compilePool({
  metadata: { name: 'out' },
  spec: { cidr: '192.168.9.0/24', egress: { nodeSelector: {} } },
});

/** A reconciler on a fake API, a playable clock, a lease and caches the test switches. */
function harness(ledger: MemoryLedger = new CarelessLedger([web, egressPool])) {
  const clock = { now: NOW };
  const state = { leaderUntil: Infinity, complete: true };
  const watched: PodRecord[] = [];
  const stored: PodRecord[] = [];
  const statefulSets = new Set<string>();
  const calls: string[] = [];
  let hold: ReturnType<typeof gate<void>> | undefined;
  const statusWrites: string[] = [];
  const api: ReconcilerApi = {
    async namespacePods(namespace) {
      calls.push(`pods ${namespace}`);
      if (hold) await hold.promise;
      return stored.filter((p) => p.namespace === namespace);
    },
    async statefulSetExists(namespace, name) {
      calls.push(`sts ${namespace}/${name}`);
      return statefulSets.has(`${namespace}/${name}`);
    },
    async writePoolStatus(pool) {
      statusWrites.push(pool);
    },
  };
  const egress = { sync: vi.fn(async () => {}) };
  const reconciler = new Reconciler(
    api,
    ledger,
    {
      pods: { values: () => watched.values() },
      statefulSetExists: () => false,
      complete: () => state.complete,
    },
    { isLeader: (at = clock.now) => at < state.leaderUntil },
    { graceMs: GRACE, egressGraceMs: 10 * GRACE, intervalMs: 5_000, egress, now: () => clock.now },
  );
  return {
    ledger,
    reconciler,
    clock,
    state,
    watched,
    stored,
    statefulSets,
    calls,
    statusWrites,
    egress,
    /** Holds the next pod reads open until the returned gate is opened. */
    holdReads() {
      hold = gate<void>();
      return hold;
    },
    claim: (ip: string, owner: Owner, createdAt = old, pool = web) => {
      const c: Claim = { pool: pool.name, ip: v4(ip), owner, createdAt, ref: `uid-${ip}`, version: '1' };
      ledger.index.add(c);
      return c;
    },
    held: (ip: string) => ledger.index.holderOf(v4(ip)),
  };
}

const owned = (name: string): Owner => ({ kind: 'Pod', namespace: 'shop', name });
const created = (p: PodRecord, at: number): PodRecord => ({ ...p, created: at });

describe('the reconciler, against a fake API at chosen interleavings', () => {
  it('releases a claim past its grace period that no pod holds, asking the API server first', async () => {
    const h = harness();
    const c = h.claim('10.0.0.5', owned('gone'));
    h.claim('10.0.0.6', owned('young'), NOW - 1);
    expect(await h.reconciler.sweep()).toEqual([c]);
    expect(h.calls).toEqual(['pods shop']);
    expect(h.held('10.0.0.5')).toBeUndefined();
    expect(h.held('10.0.0.6')).toBeDefined();
  });

  it('keeps a claim the watch thinks free when the API server shows its pod, or its StatefulSet', async () => {
    const h = harness();
    h.claim('10.0.0.5', owned('late'));
    h.claim('10.0.0.7', { kind: 'StatefulSet', namespace: 'shop', name: 'db', ordinal: 1 });
    h.stored.push(pod('late'));
    h.statefulSets.add('shop/db');
    expect(await h.reconciler.sweep()).toEqual([]);
    expect(h.calls).toEqual(['pods shop', 'sts shop/db']);
  });

  it('keeps a claim renewed while the sweep read the pods: it releases exactly what it judged', async () => {
    const h = harness();
    const c = h.claim('10.0.0.5', owned('again'));
    const reads = h.holdReads();
    const sweep = h.reconciler.sweep();
    await Promise.resolve();
    // An admission for a pod created again under the same name renews the claim meanwhile.
    expect(await h.ledger.renew(c)).toBe(true);
    reads.open();
    expect(await sweep).toEqual([]);
    expect(h.held('10.0.0.5')?.owner).toEqual(owned('again'));
  });

  it('skips a claim renewed after the sweep began and before its turn came', async () => {
    const h = harness();
    h.claim('10.0.0.4', { ...owned('first'), namespace: 'a' });
    const c = h.claim('10.0.0.5', owned('again'));
    const reads = h.holdReads();
    const sweep = h.reconciler.sweep();
    await Promise.resolve();
    await h.ledger.renew(c);
    reads.open();
    expect((await sweep).map((x) => x.ip.toString())).toEqual(['10.0.0.4']);
    expect(h.calls).toEqual(['pods a']);
  });

  it('releases nothing once the lease is lost during the sweep, or would run out before a release could land', async () => {
    const h = harness();
    h.claim('10.0.0.5', owned('gone'));
    const reads = h.holdReads();
    const sweep = h.reconciler.sweep();
    await Promise.resolve();
    h.state.leaderUntil = h.clock.now + RECONCILER_CALL_MS - 1;
    reads.open();
    expect(await sweep).toEqual([]);
    expect(h.held('10.0.0.5')).toBeDefined();

    h.state.leaderUntil = h.clock.now + RECONCILER_CALL_MS + 1;
    expect(await h.reconciler.sweep()).toHaveLength(1);
  });

  it('releases nothing while a cache is listing again, as after a broken watch during the sweep', async () => {
    const h = harness();
    h.claim('10.0.0.5', owned('gone'));
    const reads = h.holdReads();
    const sweep = h.reconciler.sweep();
    await Promise.resolve();
    h.state.complete = false;
    reads.open();
    expect(await sweep).toEqual([]);
    expect(await h.reconciler.sweep()).toEqual([]);
    expect(h.held('10.0.0.5')).toBeDefined();
  });

  it('does no leader work at all before its caches are complete: no release, no status, no egress resources', async () => {
    const h = harness();
    h.claim('10.0.0.5', owned('gone'));
    h.state.complete = false;
    await h.reconciler.round();
    await h.reconciler.writePoolStatus();
    expect(h.calls).toEqual([]);
    expect(h.statusWrites).toEqual([]);
    expect(h.egress.sync).not.toHaveBeenCalled();
    h.state.complete = true;
    await h.reconciler.round();
    await h.reconciler.writePoolStatus();
    expect(h.held('10.0.0.5')).toBeUndefined();
    expect(h.statusWrites.sort()).toEqual(['out', 'web']);
    expect(h.egress.sync).toHaveBeenCalledOnce();
  });

  it('stops releasing when a read fails: the claims after it wait for the next round', async () => {
    const h = harness();
    h.claim('10.0.0.4', { ...owned('x'), namespace: 'a' });
    h.claim('10.0.0.5', owned('gone'));
    const reads = h.holdReads();
    const round = h.reconciler.round();
    await Promise.resolve();
    reads.fail(new Error('the API server did not answer within 3 s'));
    await round;
    expect(h.held('10.0.0.4')).toBeDefined();
    expect(h.held('10.0.0.5')).toBeDefined();
  });

  it("releases a deleted pod's claims at once, without waiting out the grace period", async () => {
    const h = harness();
    h.claim('10.0.0.5', owned('web-1'), NOW);
    // A claim made before the pod had a name: the deleted pod showed its address.
    h.claim('10.0.0.6', { kind: 'Pod', namespace: 'shop', name: '', uid: 'req-9' }, NOW);
    h.claim('10.0.0.7', { kind: 'StatefulSet', namespace: 'shop', name: 'db', ordinal: 0 }, NOW);
    h.reconciler.podGone(created(pod('web-1'), NOW));
    h.reconciler.podGone(created(pod('web-x', ['10.0.0.6']), NOW));
    h.reconciler.podGone(created(pod('db-0', ['10.0.0.7']), NOW));
    await h.reconciler.prompt();
    expect(h.held('10.0.0.5')).toBeUndefined();
    expect(h.held('10.0.0.6')).toBeUndefined();
    // An ordinal's address stays with its StatefulSet.
    expect(h.held('10.0.0.7')).toBeDefined();
  });

  it("keeps a deleted pod's claim when the API server shows a pod of the same name again", async () => {
    const h = harness();
    h.claim('10.0.0.5', owned('web-1'), NOW);
    h.stored.push(pod('web-1'));
    h.reconciler.podGone(created(pod('web-1'), NOW));
    await h.reconciler.prompt();
    expect(h.held('10.0.0.5')).toBeDefined();
  });

  it('leaves to the grace period a claim admitted again after the deleted pod was created: a new pod of that name is on its way', async () => {
    // Found by the e2e churn test: deleted and created again under its name, the new pod renewed the
    // claim before the leader judged it, and was not stored yet when the leader read the pods.
    const h = harness();
    const c = h.claim('10.0.0.5', owned('web-1'), NOW);
    h.clock.now += 10_000;
    h.ledger.index.replace(c, { ...c, createdAt: h.clock.now, version: '2' });
    h.reconciler.podGone(created(pod('web-1'), NOW));
    // Nor a pod whose creation is unknown.
    h.claim('10.0.0.6', owned('web-2'), NOW);
    h.reconciler.podGone(pod('web-2'));
    await h.reconciler.prompt();
    expect(h.held('10.0.0.5')).toBeDefined();
    expect(h.held('10.0.0.6')).toBeDefined();
    expect(h.calls).toEqual([]);
  });

  it('keeps an egress address for its grace period after the last pod showing it, counted by a new leader from its start', async () => {
    const h = harness();
    const owner: Owner = { kind: 'Egress', namespace: 'shop', workload: 'Deployment', name: 'api' };
    h.claim('192.168.9.5', owner, NOW - 100 * GRACE, egressPool);
    h.watched.push({ ...pod('api-1'), egress: ['192.168.9.5'] });
    await h.reconciler.round();
    expect(h.held('192.168.9.5')).toBeDefined();
    // The last pod goes; the grace period counts from this sighting, not from the claim.
    h.watched.length = 0;
    h.clock.now += 10 * GRACE - 1;
    await h.reconciler.round();
    expect(h.held('192.168.9.5')).toBeDefined();
    // Leadership moves away and back: the returning leader knows nothing older than its own start.
    h.state.leaderUntil = 0;
    await h.reconciler.round();
    h.state.leaderUntil = Infinity;
    h.clock.now += 2;
    await h.reconciler.round();
    expect(h.held('192.168.9.5')).toBeDefined();
    h.clock.now += 10 * GRACE;
    await h.reconciler.round();
    expect(h.held('192.168.9.5')).toBeUndefined();
  });

  it('writes a pool status once per change, and again for a pool deleted and created anew', async () => {
    const h = harness();
    await h.reconciler.writePoolStatus();
    await h.reconciler.writePoolStatus();
    expect(h.statusWrites.sort()).toEqual(['out', 'web']);
    h.ledger.index.removePool('web');
    await h.reconciler.writePoolStatus();
    h.ledger.index.setPool(web);
    await h.reconciler.writePoolStatus();
    expect(h.statusWrites.sort()).toEqual(['out', 'web', 'web']);
  });
});
