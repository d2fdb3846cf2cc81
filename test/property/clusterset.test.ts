// Two member clusters share a pool through a broker: over random interleavings of their claims,
// releases, handovers and broker outages (calls failing before or after they take effect), every
// claim a member hands out as newly its own is, at that moment, held in the broker by that member:
// never one the broker gives the other cluster. The broker here is a map keyed by
// name, with the API server's create, patch and delete preconditions; fast-check's scheduler orders
// every call and answer. Not a stand-in for the broker in any end-to-end test
// (test/e2e/clusterset.test.ts runs a real one).
import { ApiException, KubeConfig } from '@kubernetes/client-node';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ClusterSetLedger } from '../../src/cluster/clusterset/ledger.js';
import type { Membership } from '../../src/cluster/clusterset/membership.js';
import { KubeLedger, type ClaimsApi, type IPClaimObject } from '../../src/cluster/kube-ledger.js';
import { ClaimIndex } from '../../src/ipam/claim-index.js';
import type { Claim, Owner } from '../../src/ipam/claim.js';
import { compilePool, type Pool } from '../../src/ipam/pool.js';
import { parseAddress, type Address } from '../../src/net/address.js';
import { runs } from './runs.js';

const shared: Pool = {
  ...compilePool({ metadata: { name: 'shared' }, spec: { ranges: ['10.99.0.1-10.99.0.6'] } }),
  shared: true,
};
const ADDRESSES = ['10.99.0.1', '10.99.0.2', '10.99.0.3', '10.99.0.4', '10.99.0.5', '10.99.0.6'];
const CLUSTERS = ['a', 'b'] as const;
type Cluster = (typeof CLUSTERS)[number];

function fail(code: number): never {
  throw new ApiException(code, `HTTP ${code}`, JSON.stringify({ message: `HTTP ${code}` }), {});
}

interface PatchOp {
  op: string;
  path: string;
  value?: unknown;
}

/** IPClaims by name, as an API server keeps them; every call waits for the scheduler, and fails while `down`. */
class Broker {
  readonly objects = new Map<string, IPClaimObject>();
  down = false;
  private version = 0;
  private uids = 0;

  constructor(private readonly s: fc.Scheduler) {}

  private async turn<T>(effect: () => T): Promise<T> {
    await this.s.schedule(Promise.resolve());
    if (this.down) fail(503);
    const result = effect();
    // The answer may be lost after the effect: a write that landed, whose caller saw an error.
    await this.s.schedule(Promise.resolve());
    if (this.down) fail(504);
    return result;
  }

  private stamp(o: IPClaimObject): IPClaimObject {
    o.metadata!.resourceVersion = String(++this.version);
    return structuredClone(o);
  }

  readonly api = {
    createClusterCustomObject: ({ body }: { body: IPClaimObject }) =>
      this.turn(() => {
        const name = body.metadata!.name!;
        if (this.objects.has(name)) fail(409);
        const o = structuredClone(body);
        o.metadata = { ...o.metadata, uid: `u${++this.uids}`, creationTimestamp: new Date(0) };
        this.objects.set(name, o);
        return this.stamp(o);
      }),
    getClusterCustomObject: ({ name }: { name: string }) =>
      this.turn(() => {
        const o = this.objects.get(name);
        if (!o) fail(404);
        return structuredClone(o);
      }),
    deleteClusterCustomObject: ({
      name,
      body,
    }: {
      name: string;
      body?: { preconditions?: { uid?: string; resourceVersion?: string } };
    }) =>
      this.turn(() => {
        const o = this.objects.get(name);
        if (!o) fail(404);
        const p = body?.preconditions;
        if (
          (p?.uid && p.uid !== o.metadata!.uid) ||
          (p?.resourceVersion && p.resourceVersion !== o.metadata!.resourceVersion)
        )
          fail(409);
        this.objects.delete(name);
        return {};
      }),
    patchClusterCustomObject: ({ name, body }: { name: string; body: PatchOp[] }) =>
      this.turn(() => {
        const o = this.objects.get(name);
        if (!o) fail(404);
        const next = structuredClone(o) as unknown as Record<string, Record<string, unknown>>;
        for (const op of body) {
          const [, top, key] = op.path.split('/');
          if (op.op === 'test') {
            if ((next[top!]![key!.replace('~1', '/')] as unknown) !== op.value) fail(422);
          } else if (op.op === 'remove') delete next[top!]![key!];
          else if (key === undefined) next[top!] = op.value as Record<string, unknown>;
          else next[top!]![key.replace('~1', '/')] = op.value;
        }
        this.objects.set(name, next as unknown as IPClaimObject);
        return this.stamp(next as unknown as IPClaimObject);
      }),
    listClusterCustomObject: () =>
      this.turn(() => ({ items: [...this.objects.values()].map((o) => structuredClone(o)) })),
  } as unknown as ClaimsApi;
}

function member(id: Cluster, broker: Broker): ClusterSetLedger {
  const index = new ClaimIndex();
  index.setPool(shared);
  const local = new KubeLedger(new KubeConfig(), undefined, undefined, broker.api, undefined, index);
  const brokerLedger = new KubeLedger(new KubeConfig(), undefined, undefined, broker.api, undefined, index, {
    cluster: id,
  });
  const membership = { current: { joined: true }, self: { id, source: 'configured', installation: id } };
  return new ClusterSetLedger(local, brokerLedger, membership as unknown as Membership);
}

type Step =
  | { do: 'claim'; by: Cluster; ip: string; ordinal: number }
  | { do: 'next'; by: Cluster; ordinal: number }
  | { do: 'release'; by: Cluster; pick: number }
  | { do: 'handover'; by: Cluster; pick: number }
  | { do: 'outage'; down: boolean };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    do: fc.constant('claim' as const),
    by: fc.constantFrom(...CLUSTERS),
    ip: fc.constantFrom(...ADDRESSES),
    ordinal: fc.nat(2),
  }),
  fc.record({ do: fc.constant('next' as const), by: fc.constantFrom(...CLUSTERS), ordinal: fc.nat(2) }),
  fc.record({ do: fc.constant('release' as const), by: fc.constantFrom(...CLUSTERS), pick: fc.nat(5) }),
  fc.record({ do: fc.constant('handover' as const), by: fc.constantFrom(...CLUSTERS), pick: fc.nat(5) }),
  fc.record({ do: fc.constant('outage' as const), down: fc.boolean() }),
);

const owner = (ordinal: number): Owner => ({ kind: 'StatefulSet', namespace: 'shop', name: 'db', ordinal });
const held = (m: ClusterSetLedger): Claim[] =>
  [...m.index.allClaims()].filter((c) => c.shared && c.owner.cluster === undefined && c.ref !== undefined);

/** A claim handed out as newly this cluster's: the broker must hold exactly it, for this cluster, now. */
function checkFresh(by: Cluster, known: ReadonlySet<string | undefined>, claim: Claim, broker: Broker): void {
  // Known before, or a create of this member still in flight (the same owner asked twice): not fresh.
  if (known.has(claim.ref) || claim.ref === undefined) return;
  const stored = broker.objects.get(claim.ip.toString());
  expect(stored?.metadata?.uid, `${claim.ip.toString()} handed out by ${by}`).toBe(claim.ref);
  expect(stored?.spec.cluster).toBe(by);
}

async function run(m: Record<Cluster, ClusterSetLedger>, broker: Broker, st: Step): Promise<void> {
  if (st.do === 'outage') {
    broker.down = st.down;
    return;
  }
  const ledger = m[st.by];
  const other = st.by === 'a' ? 'b' : 'a';
  const known = new Set(held(ledger).map((c) => c.ref));
  let claim: Claim;
  try {
    if (st.do === 'claim') claim = await ledger.claim(shared, parseAddress(st.ip) as Address, owner(st.ordinal));
    else if (st.do === 'next') claim = await ledger.claimNext(shared, 'ipv4', owner(st.ordinal));
    else {
      const mine = held(ledger);
      const c = mine[st.pick % Math.max(mine.length, 1)];
      if (!c) return;
      if (st.do === 'release') await ledger.release(c);
      else if (await ledger.promise(c, other)) {
        const promised = ledger.index.holderOf(c.ip);
        if (promised?.handoverTo === other) await ledger.release(promised);
      }
      return;
    }
  } catch {
    // Refused: a conflict, an exhausted pool, a broker out of reach. Nothing was handed out.
    return;
  }
  checkFresh(st.by, known, claim, broker);
}

describe('a pool shared by two clusters', () => {
  it('hands out as a cluster’s own only what the broker holds for that cluster', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.array(fc.array(step, { minLength: 1, maxLength: 3 }), { maxLength: 8 }),
        async (s, batches) => {
          const broker = new Broker(s);
          const m = { a: member('a', broker), b: member('b', broker) };
          for (const batch of batches) {
            // Each batch at once: the scheduler interleaves every call and answer of its steps.
            const done = Promise.all(batch.map((st) => run(m, broker, st)));
            await s.waitFor(done);
          }
          // Every address the broker holds names one of the two clusters.
          for (const o of broker.objects.values()) expect(CLUSTERS).toContain(o.spec.cluster);
        },
      ),
      { numRuns: runs(150) },
    );
  });
});
