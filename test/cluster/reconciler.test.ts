import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { podAddresses, podRecord, type PodRecord } from '../../src/cluster/pod-tracker.js';
import {
  holds,
  kubeReconcilerApi,
  RECONCILER_CALL_MS,
  Reconciler,
  staleClaims,
  type ReconcilerApi,
  type ReconcilerMetrics,
} from '../../src/cluster/reconciler.js';
import type { EventNotice, EventSink } from '../../src/cluster/event-sink.js';
import type { Claim, Owner } from '../../src/ipam/claim.js';
import { MemoryLedger } from '../../src/ipam/memory-ledger.js';
import { compilePool } from '../../src/ipam/pool.js';
import { v4, v6 } from '../cni/fixtures.js';
import { kubeConfigAt } from '../../harness/cluster.js';

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

  it('keep a claim handed over by another cluster until its keep time, StatefulSet or not', () => {
    const handed = { ...ordinal, keptUntil: NOW + 1 };
    expect(staleClaims([handed], [], none, NOW, GRACE)).toEqual([]);
    expect(staleClaims([handed], [], none, NOW + 1, GRACE)).toEqual([handed]);
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

/** The status the reconciler writes to an IPPool, as the fake API received it. */
type PoolStatusWritten = Parameters<ReconcilerApi['writePoolStatus']>[1];

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

/** What the harness's options may change: the ledger, and where metrics and events go. */
interface HarnessOptions {
  metrics?: ReconcilerMetrics;
  events?: EventSink;
  egressGraceMs?: number;
  /** The StatefulSets the watch sees, as "<namespace>/<name>". */
  viewStatefulSets?: Set<string>;
  log?: Logger;
}

/** A reconciler on a fake API, a playable clock, a lease and caches the test switches. */
function harness(ledger: MemoryLedger = new CarelessLedger([web, egressPool]), options: HarnessOptions = {}) {
  const clock = { now: NOW };
  const state = { leaderUntil: Infinity, complete: true };
  const watched: PodRecord[] = [];
  const stored: PodRecord[] = [];
  const statefulSets = new Set<string>();
  const calls: string[] = [];
  let hold: { gate: ReturnType<typeof gate<void>>; namespace?: string } | undefined;
  let statusHold: ReturnType<typeof gate<void>> | undefined;
  const statusWrites: string[] = [];
  const statuses = new Map<string, PoolStatusWritten[]>();
  const api: ReconcilerApi = {
    async namespacePods(namespace) {
      calls.push(`pods ${namespace}`);
      if (hold && (hold.namespace === undefined || hold.namespace === namespace)) await hold.gate.promise;
      return stored.filter((p) => p.namespace === namespace);
    },
    async statefulSetExists(namespace, name) {
      calls.push(`sts ${namespace}/${name}`);
      return statefulSets.has(`${namespace}/${name}`);
    },
    async writePoolStatus(pool, status) {
      statusWrites.push(pool);
      if (statusHold) await statusHold.promise;
      statuses.set(pool, [...(statuses.get(pool) ?? []), status]);
    },
  };
  const egress = { sync: vi.fn(async () => {}) };
  const reconciler = new Reconciler(
    api,
    ledger,
    {
      pods: { values: () => watched.values() },
      statefulSetExists: (namespace, name) => options.viewStatefulSets?.has(`${namespace}/${name}`) ?? false,
      complete: () => state.complete,
    },
    { isLeader: (at = clock.now) => at < state.leaderUntil },
    {
      graceMs: GRACE,
      egressGraceMs: options.egressGraceMs ?? 10 * GRACE,
      intervalMs: 5_000,
      resources: egress,
      now: () => clock.now,
      events: options.events,
      metrics: options.metrics ?? { released: () => {}, overdue: () => {} },
    },
    options.log,
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
    statuses,
    egress,
    /** Holds the next pod reads (of one namespace, or of all) open until the returned gate is opened. */
    holdReads(namespace?: string) {
      const g = gate<void>();
      hold = { gate: g, namespace };
      return g;
    },
    /** Holds the next status writes open until the returned gate is opened (or failed). */
    holdStatus() {
      statusHold = gate<void>();
      return statusHold;
    },
    /** A stored claim; a named pod's is bound to the uid pod() gives that pod, as the reconciler binds it. */
    claim: (ip: string, owner: Owner, createdAt = old, pool = web) => {
      const bound =
        owner.kind === 'Pod' && owner.name !== '' && !owner.uid ? { ...owner, uid: `uid-${owner.name}` } : owner;
      const c: Claim = { pool: pool.name, ip: v4(ip), owner: bound, createdAt, ref: `uid-${ip}`, version: '1' };
      ledger.index.add(c);
      return c;
    },
    held: (ip: string) => ledger.index.holderOf(v4(ip)),
  };
}

const owned = (name: string, namespace = 'shop'): Owner => ({ kind: 'Pod', namespace, name });

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
    h.reconciler.podGone(pod('web-1'));
    h.reconciler.podGone(pod('web-x', ['10.0.0.6']));
    h.reconciler.podGone(pod('db-0', ['10.0.0.7']));
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
    h.reconciler.podGone(pod('web-1'));
    await h.reconciler.prompt();
    expect(h.held('10.0.0.5')).toBeDefined();
  });

  it('leaves to the grace period a claim admitted again since it was bound: a new pod of that name is on its way', async () => {
    // Found by the e2e churn test: deleted and created again under its name, the new pod renewed the
    // claim before the leader judged it, and was not stored yet when the leader read the pods.
    const h = harness();
    const c = h.claim('10.0.0.5', owned('web-1'), NOW);
    expect(await h.ledger.renew(c)).toBe(true);
    expect(h.held('10.0.0.5')?.owner).toEqual(owned('web-1'));
    h.reconciler.podGone(pod('web-1'));
    // Nor a claim of a named pod that was never bound to it (a bare pod, named at its admission).
    h.ledger.index.add({
      pool: 'web',
      ip: v4('10.0.0.6'),
      owner: owned('web-2'),
      createdAt: NOW,
      ref: 'r6',
      version: '1',
    });
    h.reconciler.podGone(pod('web-2'));
    // Nor one bound to another pod of that name, which came since.
    h.claim('10.0.0.7', { kind: 'Pod', namespace: 'shop', name: 'web-3', uid: 'uid-newer' }, NOW);
    h.reconciler.podGone(pod('web-3'));
    await h.reconciler.prompt();
    expect(h.held('10.0.0.5')).toBeDefined();
    expect(h.held('10.0.0.6')).toBeDefined();
    expect(h.held('10.0.0.7')).toBeDefined();
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

describe('which claims a pod holds, further', () => {
  const egressClaim: Claim = {
    pool: 'out',
    ip: v4('192.168.9.5'),
    owner: { kind: 'Egress', namespace: 'shop', workload: 'Deployment', name: 'api' },
    createdAt: old,
  };

  it('an egress address only by showing it as its egress address, never by name or as its own address', () => {
    expect(holds({ ...pod('api-1'), egress: ['192.168.9.5'] }, egressClaim)).toBe(true);
    expect(holds(pod('api-1', ['192.168.9.5']), egressClaim)).toBe(false);
    expect(holds(pod('api'), egressClaim)).toBe(false);
  });

  it('a claim not yet named by no pod name at all', () => {
    expect(holds(pod(''), byUid)).toBe(false);
  });

  it('by name whatever the pod shows of the other family: only an address of the same family tells an earlier claim', () => {
    const v6claim: Claim = { pool: 'web6', ip: v6('fd00::8'), owner: owned('dual'), createdAt: old };
    const v4claim: Claim = { pool: 'web', ip: v4('10.0.0.8'), owner: owned('dual'), createdAt: old };
    // A dual-stack pod that shows its IPv6 address, and not (yet) its IPv4 one.
    expect(holds(pod('dual', ['fd00::8']), v4claim, [v4claim, v6claim])).toBe(true);
  });
});

describe('stale claims, at the edge of the grace period', () => {
  it('are stale from the very millisecond the grace period ends', () => {
    const edge = { ...byUid, createdAt: NOW - GRACE };
    const inside = { ...named, createdAt: NOW - GRACE + 1 };
    expect(staleClaims([edge, inside], [], () => false, NOW, GRACE)).toEqual([edge]);
  });
});

/** A ledger that records what the reconciler asks of `migrate`, and how `mayGoOn` answers at each call. */
class MigratingLedger extends CarelessLedger {
  readonly asked: number[] = [];
  mayGoOn: (() => boolean) | undefined;
  async migrate(max: number, mayGoOn: () => boolean): Promise<number> {
    this.asked.push(max);
    this.mayGoOn = mayGoOn;
    return 0;
  }
}

/** A ledger whose every release fails its preconditions, as the Kubernetes ledger's does on a 409. */
class RefusingLedger extends MemoryLedger {
  override async release(): Promise<boolean> {
    return false;
  }
}

const recordingMetrics = () => {
  const seen = { overdue: [] as { ips: string[]; graceMs: number }[], released: [] as string[] };
  const metrics: ReconcilerMetrics = {
    overdue: (claims, graceMs) => seen.overdue.push({ ips: claims.map((c) => c.ip.toString()), graceMs }),
    released: (c) => seen.released.push(c.ip.toString()),
  };
  return { seen, metrics };
};

const recordingEvents = () => {
  const recorded: EventNotice[] = [];
  const sink: EventSink = { record: (e) => recorded.push(e), recordWhenCreated: () => undefined };
  return { recorded, sink };
};

const unnamed = (uid: string, namespace = 'shop'): Owner => ({ kind: 'Pod', namespace, name: '', uid });

describe('the reconciler on its timers', () => {
  afterEach(() => vi.useRealTimers());

  it('sweeps every interval and writes pool status every second, and does neither once stopped', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'] });
    const h = harness();
    h.claim('10.0.0.5', owned('gone'));
    h.reconciler.start();
    await vi.advanceTimersByTimeAsync(999);
    expect(h.statusWrites).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.statusWrites.sort()).toEqual(['out', 'web']);
    await vi.advanceTimersByTimeAsync(3_999);
    expect(h.held('10.0.0.5')).toBeDefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(h.held('10.0.0.5')).toBeUndefined();
    // The release changed the pool's use: its status follows within a second.
    await vi.advanceTimersByTimeAsync(1_000);
    expect(h.statusWrites.sort()).toEqual(['out', 'web', 'web']);

    await h.reconciler.stop();
    h.claim('10.0.0.6', owned('gone-too'));
    await vi.advanceTimersByTimeAsync(20_000);
    expect(h.held('10.0.0.6')).toBeDefined();
    expect(h.statusWrites).toHaveLength(3);
  });

  it('writes pool status only while leading with complete caches, one write at a time, and again after a failed one', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'] });
    const h = harness(new CarelessLedger([web]));
    h.state.leaderUntil = 0;
    h.reconciler.start();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(h.statusWrites).toEqual([]);
    h.state.leaderUntil = Infinity;
    h.state.complete = false;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(h.statusWrites).toEqual([]);

    h.state.complete = true;
    const write = h.holdStatus();
    await vi.advanceTimersByTimeAsync(3_000);
    // The first write is still under way: no second one meanwhile.
    expect(h.statusWrites).toEqual(['web']);
    write.fail(new Error('the API server did not answer within 3 s'));
    await vi.advanceTimersByTimeAsync(0);
    h.holdStatus().open();
    await vi.advanceTimersByTimeAsync(1_000);
    // Failed, so written again; then nothing changed, and nothing more is written.
    expect(h.statusWrites).toEqual(['web', 'web']);
    expect(h.statuses.get('web')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(3_000);
    expect(h.statusWrites).toEqual(['web', 'web']);
    await h.reconciler.stop();
  });

  it("releases a deleted pod's claims a moment after the deletion, one pass for a burst, and again for a later one", async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'] });
    const h = harness();
    h.claim('10.0.0.5', owned('web-1'), NOW);
    h.claim('10.0.0.6', owned('web-2'), NOW);
    h.claim('10.0.0.7', owned('web-3'), NOW);
    h.reconciler.podGone(pod('web-1'));
    await vi.advanceTimersByTimeAsync(50);
    h.reconciler.podGone(pod('web-2'));
    await vi.advanceTimersByTimeAsync(49);
    expect(h.held('10.0.0.5')).toBeDefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(h.held('10.0.0.5')).toBeUndefined();
    expect(h.held('10.0.0.6')).toBeUndefined();
    expect(h.calls).toEqual(['pods shop']);

    h.reconciler.podGone(pod('web-3'));
    await vi.advanceTimersByTimeAsync(100);
    expect(h.held('10.0.0.7')).toBeUndefined();
  });

  it('leaves a deletion reported after it stopped to the next leader', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'] });
    const h = harness();
    h.claim('10.0.0.5', owned('web-1'), NOW);
    h.reconciler.podGone(pod('web-2'));
    await h.reconciler.stop();
    h.reconciler.podGone(pod('web-1'));
    await vi.advanceTimersByTimeAsync(1_000);
    await h.reconciler.prompt();
    expect(h.held('10.0.0.5')).toBeDefined();
    expect(h.calls).toEqual([]);
  });
});

describe('the reconciler, stopping and leading', () => {
  it('stops within the release under way: stop() waits for it, and nothing is released after', async () => {
    const h = harness();
    h.claim('10.0.0.4', owned('gone', 'a'));
    h.claim('10.0.0.5', owned('gone'));
    const reads = h.holdReads();
    const round = h.reconciler.round();
    await Promise.resolve();
    let stopped = false;
    const stop = h.reconciler.stop().then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(stopped).toBe(false);
    reads.open();
    await stop;
    await round;
    expect(h.held('10.0.0.4')).toBeDefined();
    expect(h.held('10.0.0.5')).toBeDefined();
    expect(h.calls).toEqual(['pods a']);
  });

  it('leaves a prompt pass that finds a round under way to the next round, which starts with it', async () => {
    const h = harness();
    h.claim('10.0.0.4', owned('old', 'a'));
    h.claim('10.0.0.5', owned('web-1'), NOW);
    const reads = h.holdReads('a');
    const round = h.reconciler.round();
    await Promise.resolve();
    h.reconciler.podGone(pod('web-1'));
    await h.reconciler.prompt();
    expect(h.calls).toEqual(['pods a']);
    expect(h.held('10.0.0.5')).toBeDefined();
    reads.open();
    await round;
    expect(h.held('10.0.0.5')).toBeDefined();
    await h.reconciler.round();
    expect(h.held('10.0.0.5')).toBeUndefined();
  });

  it('does no leader work while another replica leads', async () => {
    const h = harness();
    h.claim('10.0.0.5', owned('gone'));
    h.claim('10.0.0.6', owned('web-1'), NOW);
    h.state.leaderUntil = 0;
    h.reconciler.podGone(pod('web-1'));
    await h.reconciler.prompt();
    await h.reconciler.round();
    expect(h.calls).toEqual([]);
    expect(h.egress.sync).not.toHaveBeenCalled();
    expect(h.held('10.0.0.5')).toBeDefined();
    expect(h.held('10.0.0.6')).toBeDefined();
  });

  it('moves up to 500 old-named claims a round, and only while the lease outlasts a call and the caches are complete', async () => {
    const ledger = new MigratingLedger([web]);
    const h = harness(ledger);
    await h.reconciler.round();
    expect(ledger.asked).toEqual([500]);
    expect(ledger.mayGoOn?.()).toBe(true);
    h.state.complete = false;
    expect(ledger.mayGoOn?.()).toBe(false);
    h.state.complete = true;
    h.state.leaderUntil = h.clock.now + RECONCILER_CALL_MS;
    expect(ledger.mayGoOn?.()).toBe(false);
  });

  it('keeps the egress resources as they are when the lease would run out before a call could land', async () => {
    const h = harness();
    h.state.leaderUntil = h.clock.now + RECONCILER_CALL_MS;
    await h.reconciler.round();
    expect(h.egress.sync).not.toHaveBeenCalled();
    h.state.leaderUntil = Infinity;
    await h.reconciler.round();
    expect(h.egress.sync).toHaveBeenCalledOnce();
  });

  it('ends a round at a failed bind: the pass is over, and the next round starts afresh', async () => {
    const failing = new (class extends CarelessLedger {
      failures = 1;
      override async bind(claim: Claim, p: { name: string; uid: string }): Promise<void> {
        if (this.failures-- > 0) throw new Error('HTTP 500');
        return super.bind(claim, p);
      }
    })([web, egressPool]);
    const h = harness(failing);
    h.claim('10.0.0.5', unnamed('req-1'), NOW);
    h.watched.push(pod('api-x1', ['10.0.0.5']));
    await h.reconciler.round();
    expect(h.egress.sync).not.toHaveBeenCalled();
    await h.reconciler.round();
    expect(h.held('10.0.0.5')?.owner).toMatchObject({ name: 'api-x1' });
    expect(h.egress.sync).toHaveBeenCalledOnce();
  });
});

describe('naming the pod of a claim made before the pod had a name', () => {
  it('names it once a pod of its namespace shows the address, and nothing else', async () => {
    const h = harness();
    h.claim('10.0.0.5', unnamed('req-1'), NOW);
    h.claim('10.0.0.6', unnamed('req-2'), NOW);
    h.claim('10.0.0.7', owned('fixed'), NOW);
    // Still being created: nothing stored to name yet.
    h.ledger.index.add({ pool: 'web', ip: v4('10.0.0.8'), owner: unnamed('req-4'), createdAt: NOW });
    h.claim('10.0.0.9', { kind: 'Egress', namespace: 'shop', workload: 'Pod', name: '' }, NOW);
    h.watched.push(pod('api-x1', ['10.0.0.5']));
    h.watched.push(pod('api-x2', ['10.0.0.6'], 'other'));
    h.watched.push(pod('api-x3', ['10.0.0.7', '10.0.0.8', '10.0.0.9']));
    expect(await h.reconciler.bind()).toBe(1);
    expect(h.held('10.0.0.5')?.owner).toEqual({ kind: 'Pod', namespace: 'shop', name: 'api-x1', uid: 'uid-api-x1' });
    expect(h.held('10.0.0.6')?.owner).toEqual(unnamed('req-2'));
    expect(h.held('10.0.0.7')?.owner).toEqual({ ...owned('fixed'), uid: 'uid-fixed' });
    expect(h.held('10.0.0.8')?.owner).toEqual(unnamed('req-4'));
    expect(h.held('10.0.0.9')?.owner).toMatchObject({ kind: 'Egress', name: '' });
  });

  it('names 200 a round, and none once the lease would run out before a write lands', async () => {
    const big = compilePool({ metadata: { name: 'big' }, spec: { cidr: '10.1.0.0/16' } });
    const h = harness(new CarelessLedger([big]));
    for (let i = 0; i < 201; i++) {
      const ip = `10.1.${Math.floor(i / 200)}.${(i % 200) + 1}`;
      h.claim(ip, unnamed(`req-${i}`), NOW, big);
      h.watched.push(pod(`api-${i}`, [ip]));
    }
    h.state.leaderUntil = h.clock.now + RECONCILER_CALL_MS;
    expect(await h.reconciler.bind()).toBe(0);
    h.state.leaderUntil = Infinity;
    expect(await h.reconciler.bind()).toBe(200);
    expect(await h.reconciler.bind()).toBe(1);
    expect([...h.ledger.index.allClaims()].every((c) => c.owner.name !== '')).toBe(true);
  });
});

describe('a sweep, further', () => {
  it('reads each namespace once, and tells the overdue claims, those it released, and one event per owner', async () => {
    const { seen, metrics } = recordingMetrics();
    const { recorded, sink } = recordingEvents();
    const h = harness(undefined, { metrics, events: sink });
    h.claim('10.0.0.4', owned('a'));
    h.claim('10.0.0.5', owned('a'));
    h.claim('10.0.0.6', owned('b'));
    h.claim('10.0.0.7', owned('young'), NOW - 1);
    h.stored.push(pod('b'));
    expect((await h.reconciler.sweep()).map((c) => c.ip.toString())).toEqual(['10.0.0.4', '10.0.0.5']);
    expect(h.calls).toEqual(['pods shop']);
    expect(seen.overdue).toEqual([{ ips: ['10.0.0.4', '10.0.0.5', '10.0.0.6'], graceMs: GRACE }]);
    expect(seen.released).toEqual(['10.0.0.4', '10.0.0.5']);
    expect(recorded).toEqual([
      {
        regarding: { apiVersion: 'v1', kind: 'Pod', namespace: 'shop', name: 'a' },
        type: 'Normal',
        reason: 'Released',
        action: 'Release',
        note: 'Released 10.0.0.4 from IPPool web, 10.0.0.5 from IPPool web',
      },
    ]);
  });

  it('counts nothing released whose release the ledger refused', async () => {
    const { seen, metrics } = recordingMetrics();
    const { recorded, sink } = recordingEvents();
    const h = harness(new RefusingLedger([web]), { metrics, events: sink });
    h.claim('10.0.0.5', owned('gone'));
    expect(await h.reconciler.sweep()).toEqual([]);
    expect(seen.released).toEqual([]);
    expect(recorded).toEqual([]);
    expect(h.held('10.0.0.5')).toBeDefined();
  });

  it('asks the API server nothing more once the lease is lost', async () => {
    const h = harness();
    h.claim('10.0.0.4', owned('gone', 'a'));
    h.claim('10.0.0.5', owned('gone', 'b'));
    const reads = h.holdReads('a');
    const sweep = h.reconciler.sweep();
    await Promise.resolve();
    h.state.leaderUntil = 0;
    reads.open();
    expect(await sweep).toEqual([]);
    expect(h.calls).toEqual(['pods a']);
  });

  it('gives way between slices of 2 000 claims, and judges every slice', async () => {
    const big = compilePool({ metadata: { name: 'big' }, spec: { cidr: '10.1.0.0/16' } });
    const h = harness(new CarelessLedger([big]));
    const ips: string[] = [];
    for (let i = 0; i < 4_001; i++) ips.push(`10.1.${Math.floor(i / 250)}.${(i % 250) + 1}`);
    for (const [i, ip] of ips.entries()) h.claim(ip, owned(`p${i}`), i % 2_000 === 0 ? old : NOW, big);
    const sweep = h.reconciler.sweep();
    // The first slice is judged at once; the rest wait for other work to have its turn.
    expect(h.calls).toEqual([]);
    expect((await sweep).map((c) => c.ip.toString())).toEqual([ips[0], ips[2_000], ips[4_000]]);
  });

  it('keeps an egress address for exactly its grace period after the last pod showing it, whatever else pods show', async () => {
    const h = harness(undefined, { egressGraceMs: 1_000 });
    const owner: Owner = { kind: 'Egress', namespace: 'shop', workload: 'Deployment', name: 'api' };
    h.claim('192.168.9.5', owner, old, egressPool);
    // Another pod shows an egress address that no claim holds (given by hand): it changes nothing.
    h.watched.push({ ...pod('api-1'), egress: ['192.168.9.5'] }, { ...pod('x'), egress: ['192.168.9.77'] });
    await h.reconciler.round();
    // Still shown half a grace period into this replica's leadership: the grace period counts from here.
    h.clock.now += 500;
    await h.reconciler.round();
    h.watched.splice(0, 1);
    h.clock.now += 999;
    await h.reconciler.round();
    expect(h.held('192.168.9.5')).toBeDefined();
    h.clock.now += 1;
    await h.reconciler.round();
    expect(h.held('192.168.9.5')).toBeUndefined();
    // Past the release the sweep goes on as before.
    h.claim('10.0.0.5', owned('gone'));
    await h.reconciler.round();
    expect(h.held('10.0.0.5')).toBeUndefined();
  });

  it('does not release an egress address from a sweep run by a replica that has not yet led a round', async () => {
    const h = harness(undefined, { egressGraceMs: 1_000 });
    h.claim('192.168.9.5', { kind: 'Egress', namespace: 'shop', workload: 'Pod', name: 'bare' }, old, egressPool);
    expect(await h.reconciler.sweep()).toEqual([]);
    h.clock.now += 1_000;
    expect(await h.reconciler.sweep()).toEqual([]);
    await h.reconciler.round();
    h.clock.now += 1_000;
    await h.reconciler.round();
    expect(h.held('192.168.9.5')).toBeUndefined();
  });
});

describe("a deleted pod's claims", () => {
  it("release by address only a claim not yet named, of the pod's own namespace", async () => {
    const h = harness();
    h.claim('10.0.0.5', unnamed('req-1'), NOW);
    // The address the deleted pod showed was claimed by name for another pod, not stored yet.
    h.claim('10.0.0.6', owned('web-2'), NOW);
    h.claim('10.0.0.7', { kind: 'StatefulSet', namespace: 'shop', name: '', ordinal: 0 }, NOW);
    h.reconciler.podGone(pod('x', ['10.0.0.5'], 'other'));
    h.reconciler.podGone(pod('web-1', ['10.0.0.6', '10.0.0.7']));
    await h.reconciler.prompt();
    expect(h.held('10.0.0.5')).toBeDefined();
    expect(h.held('10.0.0.6')).toBeDefined();
    expect(h.held('10.0.0.7')).toBeDefined();
  });

  it('wait, while a cache is incomplete, for the first pass once it is complete again, not for the grace period', async () => {
    const h = harness();
    h.claim('10.0.0.5', owned('web-1'), NOW);
    h.state.complete = false;
    h.reconciler.podGone(pod('web-1'));
    await h.reconciler.prompt();
    expect(h.held('10.0.0.5')).toBeDefined();
    h.state.complete = true;
    await h.reconciler.round();
    expect(h.held('10.0.0.5')).toBeUndefined();
  });

  it('are released at once for up to 10 000 deleted pods at a time; past that the rest wait for the sweep, and the next burst is prompt again', async () => {
    const big = compilePool({ metadata: { name: 'big' }, spec: { cidr: '10.1.0.0/16' } });
    const h = harness(new CarelessLedger([big]));
    const ip = (i: number) => `10.1.${Math.floor(i / 250)}.${(i % 250) + 1}`;
    for (let i = 0; i <= 10_000; i++) {
      h.claim(ip(i), owned(`p${i}`), NOW, big);
      h.reconciler.podGone(pod(`p${i}`));
    }
    await h.reconciler.prompt();
    expect(h.held(ip(9_999))).toBeUndefined();
    expect(h.held(ip(10_000))).toBeDefined();
    h.claim(ip(10_001), owned('next'), NOW, big);
    h.reconciler.podGone(pod('next'));
    await h.reconciler.prompt();
    expect(h.held(ip(10_001))).toBeUndefined();
  });
});

describe('IPPool status', () => {
  it('says the capacity and use of each family, the total, and when it was observed', async () => {
    const dual = compilePool({
      metadata: { name: 'dual' },
      spec: { ranges: ['10.2.0.1-10.2.0.10', 'fd00::/64'] },
    });
    const h = harness(new CarelessLedger([dual]));
    h.claim('10.2.0.1', owned('a'), NOW, dual);
    h.claim('10.2.0.2', owned('b'), NOW, dual);
    h.ledger.index.add({ pool: 'dual', ip: v6('fd00::1'), owner: owned('a'), createdAt: NOW });
    await h.reconciler.writePoolStatus();
    expect(h.statuses.get('dual')).toEqual([
      {
        capacity: Number.MAX_SAFE_INTEGER,
        allocated: 3,
        families: [
          { family: 'ipv4', capacity: '10', allocated: 2 },
          { family: 'ipv6', capacity: '18446744073709551615', allocated: 1 },
        ],
        observedAt: new Date(NOW).toISOString(),
      },
    ]);
    h.clock.now += 1_000;
    h.claim('10.2.0.3', owned('c'), NOW, dual);
    await h.reconciler.writePoolStatus();
    expect(h.statuses.get('dual')?.[1]).toMatchObject({
      allocated: 4,
      observedAt: new Date(NOW + 1_000).toISOString(),
    });
  });

  it('gives the exact total of a pool that a number can hold', async () => {
    const h = harness(new CarelessLedger([web]));
    await h.reconciler.writePoolStatus();
    expect(h.statuses.get('web')?.[0]).toMatchObject({ capacity: 254, allocated: 0 });
  });

  it("is not written for a ClusterSet's shared pool, which is not an IPPool of this cluster", async () => {
    const shared = { ...compilePool({ metadata: { name: 'shared' }, spec: { cidr: '10.9.0.0/24' } }), shared: true };
    const h = harness(new CarelessLedger([shared, web]));
    h.claim('10.9.0.1', owned('a'), NOW, shared);
    await h.reconciler.writePoolStatus();
    expect(h.statusWrites).toEqual(['web']);
  });

  it('is written for no more pools once the lease would run out before a write lands', async () => {
    const h = harness();
    const write = h.holdStatus();
    const writing = h.reconciler.writePoolStatus();
    await Promise.resolve();
    h.state.leaderUntil = h.clock.now;
    write.open();
    await writing;
    expect(h.statusWrites).toHaveLength(1);
  });
});

describe("the reconciler's calls to the API server", () => {
  /** An API server on loopback that answers each request with what `answer` says, and records it. */
  async function apiServer(answer: (method: string, path: string) => { status: number; body?: unknown }) {
    const seen: { method: string; path: string; body: unknown }[] = [];
    const server = createServer((req, res) => {
      let text = '';
      req.on('data', (chunk: Buffer) => (text += chunk.toString()));
      req.on('end', () => {
        const path = req.url ?? '';
        seen.push({ method: req.method ?? '', path, body: text ? JSON.parse(text) : undefined });
        const { status, body } = answer(req.method ?? '', path);
        res
          .writeHead(status, { 'content-type': 'application/json' })
          .end(JSON.stringify(body ?? { kind: 'Status', code: status }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const kc = kubeConfigAt(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return {
      seen,
      kc,
      close: () => {
        server.closeAllConnections();
        return new Promise((r) => server.close(r));
      },
    };
  }

  it("read a namespace's pods as records, with the addresses of the CNI's annotations", async () => {
    const api = await apiServer(() => ({
      status: 200,
      body: {
        kind: 'PodList',
        items: [
          {
            metadata: {
              name: 'web-1',
              namespace: 'shop',
              uid: 'u1',
              creationTimestamp: '2024-05-01T10:00:00Z',
              annotations: { 'cni.projectcalico.org/ipAddrs': '["10.0.0.5"]' },
            },
            status: { phase: 'Running' },
          },
        ],
      },
    }));
    try {
      const pods = await kubeReconcilerApi(api.kc, ['cni.projectcalico.org/ipAddrs']).namespacePods('shop');
      expect(pods).toEqual([
        {
          namespace: 'shop',
          name: 'web-1',
          uid: 'u1',
          addresses: ['10.0.0.5'],
          egress: [],
          // Not scheduled, and the reconciler does not judge namespaces: nothing against other owners.
          unforged: [],
          inUse: [],
        },
      ]);
      expect(api.seen.map((s) => `${s.method} ${s.path}`)).toEqual(['GET /api/v1/namespaces/shop/pods']);
    } finally {
      await api.close();
    }
  });

  it('tell a StatefulSet that exists from one that does not, and fail on any other answer', async () => {
    const api = await apiServer((_, path) =>
      path.endsWith('/db')
        ? { status: 200, body: { kind: 'StatefulSet', metadata: { name: 'db' } } }
        : path.endsWith('/gone')
          ? { status: 404 }
          : { status: 500 },
    );
    try {
      const calls = kubeReconcilerApi(api.kc, []);
      expect(await calls.statefulSetExists('shop', 'db')).toBe(true);
      expect(await calls.statefulSetExists('shop', 'gone')).toBe(false);
      await expect(calls.statefulSetExists('shop', 'broken')).rejects.toThrow();
      // Its size and own annotations, for a scale-down's release.
      expect(await calls.statefulSet!('shop', 'db')).toEqual({ replicas: 1, ordinalsStart: 0, annotations: undefined });
      expect(await calls.statefulSet!('shop', 'gone')).toBeUndefined();
      await expect(calls.statefulSet!('shop', 'broken')).rejects.toThrow();
      expect(api.seen.map((s) => `${s.method} ${s.path}`)).toEqual(
        ['db', 'gone', 'broken', 'db', 'gone', 'broken'].map(
          (n) => `GET /apis/apps/v1/namespaces/shop/statefulsets/${n}`,
        ),
      );
    } finally {
      await api.close();
    }
  });

  it("write an IPPool's status subresource", async () => {
    const api = await apiServer(() => ({ status: 200, body: { kind: 'IPPool', metadata: { name: 'web' } } }));
    try {
      const status = {
        capacity: 254,
        allocated: 1,
        families: [{ family: 'ipv4', capacity: '254', allocated: 1 }],
        observedAt: '2024-05-01T10:00:00.000Z',
      };
      await kubeReconcilerApi(api.kc, []).writePoolStatus('web', status);
      expect(api.seen).toEqual([
        {
          method: 'PATCH',
          path: '/apis/netpin.io/v1alpha1/ippools/web/status',
          body: [{ op: 'add', path: '/status', value: status }],
        },
      ]);
    } finally {
      await api.close();
    }
  });
});

describe('stale claims of a pod that claimed twice under its name', () => {
  it('are those whose address it does not show, whichever of them it shows', () => {
    const first: Claim = { pool: 'web', ip: v4('10.0.0.8'), owner: owned('bare'), createdAt: old };
    const second: Claim = { pool: 'web', ip: v4('10.0.0.9'), owner: owned('bare'), createdAt: old };
    expect(staleClaims([first, second], [pod('bare', ['10.0.0.8'])], () => false, NOW, GRACE)).toEqual([second]);
  });
});

describe('stale claims, and StatefulSets', () => {
  it("keep no pod's claim for a StatefulSet that happens to share its name", () => {
    expect(staleClaims([named], [], (_, name) => name === 'fixed', NOW, GRACE)).toEqual([named]);
  });
});

describe('the reconciler, further', () => {
  afterEach(() => vi.useRealTimers());

  it('keeps no process alive with its timers', async () => {
    const h = harness();
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    h.reconciler.start();
    h.reconciler.podGone(pod('web-1'));
    expect(timers()).toBe(before);
    await h.reconciler.stop();
  });

  it('leaves no timer behind once stopped, sets none for a deletion told after, and one for a burst', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'] });
    const h = harness();
    h.reconciler.podGone(pod('web-1'));
    h.reconciler.podGone(pod('web-2'));
    expect(vi.getTimerCount()).toBe(1);
    // A pass run at once makes the one pending needless.
    await h.reconciler.prompt();
    expect(vi.getTimerCount()).toBe(0);
    h.reconciler.start();
    h.reconciler.podGone(pod('web-3'));
    expect(vi.getTimerCount()).toBe(3);
    await h.reconciler.stop();
    expect(vi.getTimerCount()).toBe(0);
    h.reconciler.podGone(pod('web-4'));
    expect(vi.getTimerCount()).toBe(0);
    const quiet = harness();
    quiet.reconciler.start();
    await quiet.reconciler.stop();
    quiet.reconciler.podGone(pod('web-5'));
    expect(vi.getTimerCount()).toBe(0);
  });

  it('goes on past a claim it keeps because its StatefulSet exists, when it logs what it kept', async () => {
    const quiet = { info: () => undefined, warn: () => undefined } as unknown as Logger;
    const h = harness(undefined, { log: quiet });
    h.claim('10.0.0.4', { kind: 'StatefulSet', namespace: 'shop', name: 'db', ordinal: 0 });
    h.claim('10.0.0.5', owned('gone'));
    h.statefulSets.add('shop/db');
    expect((await h.reconciler.sweep()).map((c) => c.ip.toString())).toEqual(['10.0.0.5']);
    expect(h.held('10.0.0.4')).toBeDefined();
  });

  it('tells nothing overdue, and learns no sightings, while it may not act', async () => {
    const { seen, metrics } = recordingMetrics();
    const h = harness(undefined, { metrics });
    h.claim('10.0.0.5', owned('gone'));
    h.state.complete = false;
    expect(await h.reconciler.sweep()).toEqual([]);
    expect(seen.overdue).toEqual([]);
  });

  it('judges each claim once in a sweep of many slices', async () => {
    const { seen, metrics } = recordingMetrics();
    const big = compilePool({ metadata: { name: 'big' }, spec: { cidr: '10.1.0.0/16' } });
    const h = harness(new CarelessLedger([big]), { metrics });
    const ips: string[] = [];
    for (let i = 0; i < 4_001; i++) ips.push(`10.1.${Math.floor(i / 250)}.${(i % 250) + 1}`);
    for (const [i, ip] of ips.entries()) h.claim(ip, owned(`p${i}`), i % 2_000 === 0 ? old : NOW, big);
    await h.reconciler.sweep();
    expect(seen.overdue).toEqual([{ ips: [ips[0], ips[2_000], ips[4_000]], graceMs: GRACE }]);
  });

  it("asks the API server nothing of a StatefulSet's reservation while the watch sees the StatefulSet", async () => {
    const { seen, metrics } = recordingMetrics();
    const h = harness(undefined, { metrics, viewStatefulSets: new Set(['shop/db']) });
    h.claim('10.0.0.7', { kind: 'StatefulSet', namespace: 'shop', name: 'db', ordinal: 1 });
    h.claim('10.0.0.8', { kind: 'StatefulSet', namespace: 'shop', name: 'old', ordinal: 0 });
    expect((await h.reconciler.sweep()).map((c) => c.ip.toString())).toEqual(['10.0.0.8']);
    expect(seen.overdue).toEqual([{ ips: ['10.0.0.8'], graceMs: GRACE }]);
    expect(h.calls).toEqual(['pods shop', 'sts shop/old']);
  });

  it("releases a pod's earlier claim that its retried create left behind, once the pod shows its other address", async () => {
    const h = harness();
    h.claim('10.0.0.8', owned('bare'));
    h.claim('10.0.0.9', owned('bare'));
    h.watched.push(pod('bare', ['10.0.0.9']));
    h.stored.push(pod('bare', ['10.0.0.9']));
    expect((await h.reconciler.sweep()).map((c) => c.ip.toString())).toEqual(['10.0.0.8']);
    expect(h.held('10.0.0.9')).toBeDefined();
  });

  it('releases what a deleted pod held even when it showed an address that nobody holds', async () => {
    const h = harness();
    h.claim('10.0.0.5', owned('web-1'), NOW);
    h.reconciler.podGone(pod('web-1', ['10.0.0.99', '10.0.0.5']));
    await h.reconciler.prompt();
    expect(h.held('10.0.0.5')).toBeUndefined();
  });
});

describe('egress sightings', () => {
  it('are forgotten once no egress claim holds the address: a later claim of it counts from its own creation', async () => {
    const h = harness(undefined, { egressGraceMs: 100_000 });
    await h.reconciler.round();
    const first = h.claim(
      '192.168.9.5',
      { kind: 'Egress', namespace: 'shop', workload: 'Deployment', name: 'old' },
      NOW,
      egressPool,
    );
    h.clock.now = NOW + 40_000;
    h.watched.push({ ...pod('old-1'), egress: ['192.168.9.5'] });
    await h.reconciler.round();
    // The workload is deleted, its claim released with it, and its pod goes.
    h.ledger.index.remove(first);
    h.watched.length = 0;
    h.clock.now = NOW + 40_100;
    await h.reconciler.round();
    // Another workload claims the address; its creation time (whole seconds, the API server's clock)
    // is before the old pod's last sighting.
    const owner: Owner = { kind: 'Egress', namespace: 'shop', workload: 'Deployment', name: 'new' };
    h.claim('192.168.9.5', owner, NOW + 39_500, egressPool);
    h.clock.now = NOW + 139_499;
    await h.reconciler.round();
    expect(h.held('192.168.9.5')).toBeDefined();
    h.clock.now = NOW + 139_500;
    await h.reconciler.round();
    expect(h.held('192.168.9.5')).toBeUndefined();
  });
});

describe("a finished pod (Succeeded or Failed) whose object lingers, as a Job's does until its TTL", () => {
  const keys = ['cni.projectcalico.org/ipAddrs'];
  /** The pod as the watch and the API server give it: its annotations and name stay once it has ended. */
  const ended = (name: string, phase: string, uid = `uid-${name}`): PodRecord =>
    podRecord(
      {
        metadata: {
          name,
          namespace: 'shop',
          uid,
          annotations: { 'netpin.io/allocated': '10.0.0.5', [keys[0]!]: '["10.0.0.5"]' },
        },
        spec: { nodeName: 'node-1', containers: [] },
        status: { phase, podIPs: [{ ip: '10.0.0.5' }] },
      },
      keys,
      true,
    );

  it('holds its claim neither by address nor by name', () => {
    const claim: Claim = { ...named, ip: v4('10.0.0.5'), owner: owned('backup-28301-abcde') };
    expect(holds(ended('backup-28301-abcde', 'Running'), claim)).toBe(true);
    expect(holds(ended('backup-28301-abcde', 'Succeeded'), claim)).toBe(false);
    expect(holds(ended('backup-28301-abcde', 'Failed'), claim)).toBe(false);
  });

  it('keeps a StatefulSet ordinal by name: the StatefulSet replaces a failed pod under that name', () => {
    const claim: Claim = { ...ordinal, ip: v4('10.0.0.5') };
    expect(holds(ended('db-1', 'Failed'), claim)).toBe(true);
    expect(staleClaims([claim], [ended('db-1', 'Failed')], () => false, NOW, GRACE)).toEqual([]);
  });

  it('has its claim released by the sweep once past the grace period, the API server agreeing, while the pod stays', async () => {
    const h = harness();
    const c = h.claim('10.0.0.5', owned('backup-28301-abcde'));
    const young = h.claim('10.0.0.6', owned('young-xyz'), NOW - 1);
    const done = ended('backup-28301-abcde', 'Succeeded');
    h.watched.push(done, ended('young-xyz', 'Failed'));
    h.stored.push(done, ended('young-xyz', 'Failed'));
    expect(await h.reconciler.sweep()).toEqual([c]);
    expect(h.held('10.0.0.5')).toBeUndefined();
    // Within its grace period, a claim waits whatever its pod shows.
    expect(h.held('10.0.0.6')).toBe(young);
  });

  it('keeps the claim when the API server shows the pod still running, whatever the watch said', async () => {
    const h = harness();
    h.claim('10.0.0.5', owned('backup-28301-abcde'));
    h.watched.push(ended('backup-28301-abcde', 'Succeeded'));
    h.stored.push(ended('backup-28301-abcde', 'Running'));
    expect(await h.reconciler.sweep()).toEqual([]);
    expect(h.held('10.0.0.5')).toBeDefined();
  });
});
