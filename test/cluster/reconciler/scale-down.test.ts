// A StatefulSet scaled down gives back the reservations above its new size after the period its
// netpin.io/scale-down-release asks (an hour by default), or never; the leader releases them.
import { describe, expect, it } from 'vitest';
import type { PodRecord } from '../../../src/cluster/pod-tracker.js';
import {
  Reconciler,
  statefulSetState,
  type ReconcilerApi,
  type StatefulSetState,
} from '../../../src/cluster/reconciler.js';
import type { Claim, Owner } from '../../../src/ipam/claim.js';
import { MemoryLedger } from '../../../src/ipam/memory-ledger.js';
import { compilePool } from '../../../src/ipam/pool.js';
import { v4 } from '../../cni/fixtures.js';

const NOW = 10_000_000;
const HOUR = 3_600_000;
const web = compilePool({ metadata: { name: 'web' }, spec: { cidr: '10.0.0.0/24' } });
const ordinal = (k: number, name = 'db'): Owner => ({ kind: 'StatefulSet', namespace: 'shop', name, ordinal: k });
const pod = (name: string, addresses: string[] = []) =>
  ({ namespace: 'shop', name, uid: `uid-${name}`, addresses, egress: [] }) as PodRecord;

function harness(opts: { viewReadsStatefulSets?: boolean } = {}) {
  const ledger = new MemoryLedger([web]);
  const clock = { now: NOW };
  const state = { leaderUntil: Infinity, complete: true };
  // The StatefulSets as the watch sees them, and as the API server has them now: apart, to play a lagging watch.
  const watched = new Map<string, StatefulSetState>();
  const stored = new Map<string, StatefulSetState>();
  const watchedPods: PodRecord[] = [];
  const storedPods: PodRecord[] = [];
  const calls: string[] = [];
  const api: ReconcilerApi = {
    async namespacePods(namespace) {
      calls.push(`pods ${namespace}`);
      return storedPods.filter((p) => p.namespace === namespace);
    },
    async statefulSetExists(namespace, name) {
      return stored.has(`${namespace}/${name}`);
    },
    async statefulSet(namespace, name) {
      calls.push(`sts ${namespace}/${name}`);
      return stored.get(`${namespace}/${name}`);
    },
    async writePoolStatus() {},
  };
  const released: Claim[] = [];
  const reconciler = new Reconciler(
    api,
    ledger,
    {
      pods: { values: () => watchedPods.values() },
      statefulSetExists: (namespace, name) => watched.has(`${namespace}/${name}`),
      ...(opts.viewReadsStatefulSets !== false && {
        statefulSet: (namespace: string, name: string) => watched.get(`${namespace}/${name}`),
      }),
      complete: () => state.complete,
    },
    { isLeader: (at = clock.now) => at < state.leaderUntil },
    {
      graceMs: 15_000,
      egressGraceMs: HOUR,
      intervalMs: 5_000,
      now: () => clock.now,
      metrics: { released: (c) => released.push(c), overdue: () => {} },
    },
  );
  /** The StatefulSet shop/<name>, the same in the watch and in the API server. */
  const set = (name: string, replicas: number, annotations?: Record<string, string>, ordinalsStart = 0) => {
    const s = { replicas, ordinalsStart, annotations };
    watched.set(`shop/${name}`, s);
    stored.set(`shop/${name}`, s);
  };
  let next = 10;
  const reserve = (k: number, name = 'db'): Claim => {
    const c: Claim = { pool: 'web', ip: v4(`10.0.0.${next++}`), owner: ordinal(k, name), createdAt: NOW - HOUR };
    ledger.index.add(c);
    return c;
  };
  const ordinals = (name = 'db') =>
    [...ledger.index.allClaims()]
      .flatMap((c) => (c.owner.kind === 'StatefulSet' && c.owner.name === name ? [c.owner.ordinal] : []))
      .sort((a, b) => a - b);
  /** One round of leader work at NOW + ms, as the timer runs it; the ordinals it released. */
  const at = async (ms: number) => {
    clock.now = NOW + ms;
    released.length = 0;
    await reconciler.round();
    return released.map((c) => (c.owner.kind === 'StatefulSet' ? c.owner.ordinal : -1));
  };
  return {
    ledger,
    reconciler,
    clock,
    state,
    watched,
    stored,
    watchedPods,
    storedPods,
    calls,
    set,
    reserve,
    ordinals,
    at,
  };
}

describe('a StatefulSet scaled down', () => {
  it('gives back the ordinals above its new size an hour after the leader first saw them outside, by default', async () => {
    const h = harness();
    for (const k of [0, 1, 2, 3, 4]) h.reserve(k);
    h.set('db', 2);
    expect(await h.at(0)).toEqual([]);
    expect(await h.at(HOUR - 1)).toEqual([]);
    expect(await h.at(HOUR)).toEqual([2, 3, 4]);
    expect(h.ordinals()).toEqual([0, 1]);
    // Asked the API server first: its pods, and the StatefulSet as it is now.
    expect(h.calls).toEqual(['pods shop', 'sts shop/db', 'sts shop/db', 'sts shop/db']);
  });

  it('keeps them for the period netpin.io/scale-down-release asks, or for as long as it exists with "never"', async () => {
    const h = harness();
    for (const k of [0, 1, 2]) {
      h.reserve(k);
      h.reserve(k, 'kept');
      h.reserve(k, 'odd');
    }
    h.set('db', 0, { 'netpin.io/scale-down-release': '5s' });
    h.set('kept', 0, { 'netpin.io/scale-down-release': 'never' });
    // Written while netpin did not admit StatefulSets: kept, as with "never".
    h.set('odd', 0, { 'netpin.io/scale-down-release': 'soon' });
    expect(await h.at(0)).toEqual([]);
    expect(await h.at(4_999)).toEqual([]);
    expect(await h.at(5_000)).toEqual([0, 1, 2]);
    expect(await h.at(400 * 24 * HOUR)).toEqual([]);
    expect(h.ordinals('kept')).toEqual([0, 1, 2]);
    expect(h.ordinals('odd')).toEqual([0, 1, 2]);
  });

  it('never gives back an ordinal whose pod exists, terminating or not, by the watch or by the API server', async () => {
    const h = harness();
    for (const k of [0, 1, 2, 3]) h.reserve(k);
    h.set('db', 1, { 'netpin.io/scale-down-release': '0s' });
    h.watchedPods.push(pod('db-2'));
    h.storedPods.push(pod('db-3'));
    expect(await h.at(0)).toEqual([1]);
    expect(h.ordinals()).toEqual([0, 2, 3]);
    // Once the pods are gone, the addresses go too.
    h.watchedPods.length = 0;
    h.storedPods.length = 0;
    expect(await h.at(1)).toEqual([2, 3]);
  });

  it('keeps the addresses of a scale back up within the period, and counts afresh from a later scale-down', async () => {
    const h = harness();
    for (const k of [0, 1, 2]) h.reserve(k);
    h.set('db', 1);
    expect(await h.at(0)).toEqual([]);
    h.set('db', 3);
    expect(await h.at(HOUR / 2)).toEqual([]);
    h.set('db', 1);
    expect(await h.at(HOUR)).toEqual([]);
    expect(await h.at(2 * HOUR - 1)).toEqual([]);
    expect(await h.at(2 * HOUR)).toEqual([1, 2]);
  });

  it('keeps what the API server shows it runs again, or keeps for longer now, whatever a lagging watch says', async () => {
    const h = harness();
    for (const k of [0, 1, 2]) h.reserve(k);
    h.set('db', 1, { 'netpin.io/scale-down-release': '0s' });
    h.stored.set('shop/db', { replicas: 3, ordinalsStart: 0 });
    expect(await h.at(0)).toEqual([]);
    h.stored.set('shop/db', {
      replicas: 1,
      ordinalsStart: 0,
      annotations: { 'netpin.io/scale-down-release': 'never' },
    });
    expect(await h.at(1)).toEqual([]);
    h.stored.delete('shop/db');
    // Deleted meanwhile: nothing keeps them.
    expect(await h.at(2)).toEqual([1, 2]);
  });

  it('gives back the ordinals below a raised spec.ordinals.start too', async () => {
    const h = harness();
    for (const k of [0, 1, 2, 3]) h.reserve(k);
    h.set('db', 2, { 'netpin.io/scale-down-release': '0s' }, 2);
    expect(await h.at(0)).toEqual([0, 1]);
  });

  it('counts the period from when this replica began to lead: a new leader does not know what its predecessor saw', async () => {
    const h = harness();
    for (const k of [0, 1]) h.reserve(k);
    h.set('db', 1, { 'netpin.io/scale-down-release': '10s' });
    expect(await h.at(0)).toEqual([]);
    h.state.leaderUntil = NOW + 5_000;
    expect(await h.at(6_000)).toEqual([]);
    h.state.leaderUntil = Infinity;
    // Leads again from 11 s: the ordinal has been outside for 11 s, but this leadership is new.
    expect(await h.at(11_000)).toEqual([]);
    expect(await h.at(20_999)).toEqual([]);
    expect(await h.at(21_000)).toEqual([1]);
  });

  it('releases nothing while a cache is listing, and exactly the claim judged: one renewed by a scale back up stays', async () => {
    const h = harness();
    const c = h.reserve(1);
    h.reserve(0);
    h.set('db', 1, { 'netpin.io/scale-down-release': '0s' });
    h.state.complete = false;
    expect(await h.at(0)).toEqual([]);
    h.state.complete = true;
    // The scale back up renews the claim between the sweep's judgment and its release.
    const api = (h.reconciler as unknown as { api: ReconcilerApi }).api;
    const read = api.statefulSet!.bind(api);
    api.statefulSet = async (ns, name) => {
      await h.ledger.renew(c);
      return read(ns, name);
    };
    expect(await h.at(1)).toEqual([]);
    expect(h.ordinals()).toEqual([0, 1]);
  });

  it('keeps every reservation while it exists when the view cannot say its size', async () => {
    const h = harness({ viewReadsStatefulSets: false });
    for (const k of [0, 1, 2]) h.reserve(k);
    h.set('db', 0, { 'netpin.io/scale-down-release': '0s' });
    expect(await h.at(HOUR)).toEqual([]);
    expect(h.ordinals()).toEqual([0, 1, 2]);
  });
});

describe('a StatefulSet as the reconciler reads it', () => {
  it('has the replicas and ordinals.start the API server defaults to when unset, and its own annotations', () => {
    expect(statefulSetState(undefined)).toBeUndefined();
    expect(statefulSetState({ metadata: { name: 'db' } })).toEqual({
      replicas: 1,
      ordinalsStart: 0,
      annotations: undefined,
    });
    expect(
      statefulSetState({
        metadata: { name: 'db', annotations: { a: 'b' } },
        spec: { replicas: 0, ordinals: { start: 3 }, selector: {}, serviceName: 'db', template: {} },
      }),
    ).toEqual({ replicas: 0, ordinalsStart: 3, annotations: { a: 'b' } });
  });
});
