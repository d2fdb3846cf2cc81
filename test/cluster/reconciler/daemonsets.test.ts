// A DaemonSet's reservation for a node outlives the node's pods; the leader releases it once the
// Node or the DaemonSet is gone, by the watch and again by the API server.
import { describe, expect, it } from 'vitest';
import type { PodRecord } from '../../../src/cluster/pod-tracker.js';
import { Reconciler, type ReconcilerApi } from '../../../src/cluster/reconciler.js';
import type { Claim } from '../../../src/ipam/claim.js';
import { MemoryLedger } from '../../../src/ipam/memory-ledger.js';
import { compilePool } from '../../../src/ipam/pool.js';
import { v4 } from '../../cni/fixtures.js';

const NOW = 10_000_000;
const web = compilePool({ metadata: { name: 'web' }, spec: { cidr: '10.0.0.0/24' } });

/** The DaemonSets and Nodes that exist, as the watch sees them and as the API server has them: apart, to play a lagging watch. */
interface World {
  daemonSets: Set<string>;
  nodes: Set<string>;
}

function setup() {
  const ledger = new MemoryLedger([web]);
  const world = (): World => ({ daemonSets: new Set(['shop/agent']), nodes: new Set(['n1', 'n2']) });
  const watched = world();
  const stored = world();
  const storedPods: PodRecord[] = [];
  const keeps = (w: World, namespace: string, name: string, node: string) =>
    w.daemonSets.has(`${namespace}/${name}`) && w.nodes.has(node);
  const api: ReconcilerApi = {
    namespacePods: async (namespace) => storedPods.filter((p) => p.namespace === namespace),
    statefulSetExists: async () => false,
    daemonSetKeeps: async (namespace, name, node) => keeps(stored, namespace, name, node),
    async writePoolStatus() {},
  };
  const reconciler = new Reconciler(
    api,
    ledger,
    {
      pods: { values: () => [].values() },
      statefulSetExists: () => false,
      daemonSetKeeps: (namespace, name, node) => keeps(watched, namespace, name, node),
      complete: () => true,
    },
    { isLeader: () => true },
    {
      graceMs: 15_000,
      egressGraceMs: 3_600_000,
      intervalMs: 5_000,
      now: () => NOW,
      metrics: { released: () => {}, overdue: () => {} },
    },
  );
  const claims = ['n1', 'n2'].map((node, i): Claim => {
    const c: Claim = {
      pool: 'web',
      ip: v4(`10.0.0.${10 + i}`),
      owner: { kind: 'DaemonSet', namespace: 'shop', name: 'agent', node },
      createdAt: NOW - 60_000,
    };
    ledger.index.add(c);
    return c;
  });
  const held = () => [...ledger.index.allClaims()].map((c) => c.ip.toString()).sort();
  return { reconciler, watched, stored, storedPods, claims, held };
}

describe("a DaemonSet's reservations, on the leader", () => {
  it('are kept while the DaemonSet and the node exist, though no pod runs', async () => {
    const s = setup();
    expect(await s.reconciler.sweep()).toEqual([]);
    expect(s.held()).toEqual(['10.0.0.10', '10.0.0.11']);
  });

  it("releases a node's reservation once the Node is deleted, and only that node's", async () => {
    const s = setup();
    s.watched.nodes.delete('n1');
    s.stored.nodes.delete('n1');
    expect(await s.reconciler.sweep()).toEqual([s.claims[0]]);
    expect(s.held()).toEqual(['10.0.0.11']);
  });

  it('releases every reservation once the DaemonSet is deleted', async () => {
    const s = setup();
    s.watched.daemonSets.clear();
    s.stored.daemonSets.clear();
    expect(await s.reconciler.sweep()).toEqual(s.claims);
    expect(s.held()).toEqual([]);
  });

  it('keeps a reservation the watch thinks free while the API server still has the Node', async () => {
    const s = setup();
    s.watched.nodes.delete('n1');
    expect(await s.reconciler.sweep()).toEqual([]);
    expect(s.held()).toEqual(['10.0.0.10', '10.0.0.11']);
  });

  it('keeps a reservation whose address a pod still shows, the Node gone', async () => {
    const s = setup();
    s.watched.nodes.delete('n1');
    s.stored.nodes.delete('n1');
    s.storedPods.push({
      namespace: 'shop',
      name: 'agent-x',
      uid: 'u',
      addresses: ['10.0.0.10'],
      egress: [],
    } as PodRecord);
    expect(await s.reconciler.sweep()).toEqual([]);
  });
});
