import { ApiException, KubeConfig, type CustomObjectsApi } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  claimName,
  KubeLedger,
  listClaims,
  toClaim,
  toObject,
  type ClaimsApi,
  type IPClaimObject,
  type LedgerMetrics,
} from '../../src/cluster/kube-ledger.js';
import { ClusterSetLedger } from '../../src/cluster/clusterset/ledger.js';
import type { Membership, Standing } from '../../src/cluster/clusterset/membership.js';
import { parseIntent } from '../../src/intent/parse.js';
import { Allocator } from '../../src/ipam/allocator.js';
import { ClaimIndex } from '../../src/ipam/claim-index.js';
import { ConflictError, ExhaustedError, type Claim, type Owner } from '../../src/ipam/claim.js';
import { compilePool, type IPPoolObject } from '../../src/ipam/pool.js';
import { v4, v6 } from '../cni/fixtures.js';
import { statusOf } from '../../src/cluster/kube.js';
import { WatchStandIn } from './watch-stand-in.js';

/** A promise the test resolves when it chooses: an API call held open while something else happens. */
function gate() {
  let open!: () => void;
  const promise = new Promise<void>((res) => (open = res));
  return { promise, open };
}

type Op = 'create' | 'get' | 'patch' | 'delete' | 'list' | 'listPools';

/**
 * IPClaims as the API server keeps them, for deterministic unit tests of the ledger's writes: names are
 * unique, every write moves the resourceVersion on, a delete honours its preconditions and a JSON patch
 * its `test` of the uid. Each call is recorded. Lists come a page of `limit` at a time, IPPools too. A
 * call can be held open (before it takes effect) or made to fail. Not a stand-in for the API server in
 * any end-to-end test.
 */
class ClaimStore {
  readonly objects = new Map<string, IPClaimObject>();
  readonly pools: IPPoolObject[] = [];
  readonly calls: string[] = [];
  /** Each list call: the resource, and the limit and continue token it asked with. */
  readonly lists: { plural: string; limit?: number; next?: string }[] = [];
  /** Lists answer as some servers and proxies do: one page, without metadata (no continue, no version). */
  bareLists = false;
  /** The creationTimestamp of objects created from now on; by default the time of their creation. */
  creationTime: Date | undefined;
  private version = 1;
  private uids = 0;
  private readonly holds = new Map<Op, Promise<void>>();
  private readonly failures = new Map<Op, number>();
  private readonly answerHolds = new Map<Op, Promise<void>>();
  private readonly answerFailures = new Map<Op, number>();

  private fail(code: number, message: string): never {
    throw new ApiException(code, message, JSON.stringify({ message }), {});
  }

  /** Holds the next calls of `op` open, before they take effect, until the gate is opened. */
  hold(op: Op) {
    const g = gate();
    this.holds.set(op, g.promise);
    return g;
  }

  /** Makes the next call of `op` fail with this HTTP status. */
  failNext(op: Op, code: number): void {
    this.failures.set(op, code);
  }

  /** Holds the answer to the next calls of `op` until the gate is opened: they have taken effect by then. */
  holdAnswer(op: Op) {
    const g = gate();
    this.answerHolds.set(op, g.promise);
    return g;
  }

  /** Makes the next call of `op` take effect and then fail, as a write that landed and whose answer was lost. */
  failNextAnswer(op: Op, code: number): void {
    this.answerFailures.set(op, code);
  }

  private async after<T>(op: Op, result: T): Promise<T> {
    await this.answerHolds.get(op);
    const code = this.answerFailures.get(op);
    if (code !== undefined) {
      this.answerFailures.delete(op);
      this.fail(code, `${op}: no answer`);
    }
    return result;
  }

  private async before(op: Op): Promise<void> {
    await this.holds.get(op);
    const code = this.failures.get(op);
    if (code !== undefined) {
      this.failures.delete(op);
      this.fail(code, `${op} failed`);
    }
  }

  private stamp(obj: IPClaimObject): IPClaimObject {
    obj.metadata!.resourceVersion = String(++this.version);
    return structuredClone(obj);
  }

  /** Stores an object as another writer would, with a uid and a resourceVersion; returns it as stored. */
  put(body: IPClaimObject, creationTimestamp = this.creationTime ?? new Date()): IPClaimObject {
    const obj = structuredClone(body);
    obj.metadata = { ...obj.metadata, uid: `uid-${++this.uids}`, creationTimestamp };
    this.objects.set(obj.metadata.name!, obj);
    return this.stamp(obj);
  }

  readonly api = {
    createClusterCustomObject: async ({ body }: { body: IPClaimObject }) => {
      const name = body.metadata!.name!;
      this.calls.push(`create ${name}`);
      await this.before('create');
      if (this.objects.has(name)) this.fail(409, `ipclaims "${name}" already exists`);
      return this.after('create', this.put(body));
    },
    getClusterCustomObject: async ({ name }: { name: string }) => {
      this.calls.push(`get ${name}`);
      await this.before('get');
      const obj = this.objects.get(name) ?? this.fail(404, `ipclaims "${name}" not found`);
      return structuredClone(obj);
    },
    patchClusterCustomObject: async ({
      name,
      body,
    }: {
      name: string;
      body: { op: string; path: string; value: unknown }[];
    }) => {
      this.calls.push(`patch ${name}`);
      await this.before('patch');
      const obj = this.objects.get(name) ?? this.fail(404, `ipclaims "${name}" not found`);
      // A JSON patch of anything but operations is refused whole, as the API server refuses it.
      const ops = ['test', 'add', 'replace', 'remove'];
      if (body.some((op) => typeof op !== 'object' || !ops.includes(op.op) || !op.path?.startsWith('/')))
        this.fail(400, 'invalid JSON patch');
      for (const op of body) {
        if (op.op === 'test' && op.path === '/metadata/uid' && obj.metadata!.uid !== op.value)
          this.fail(422, 'test failed');
        if (op.op === 'add' && op.path === '/metadata/annotations')
          obj.metadata!.annotations = op.value as Record<string, string>;
        if (op.op === 'replace' && op.path === '/spec/owner')
          obj.spec.owner = op.value as IPClaimObject['spec']['owner'];
        if (op.op === 'test' && op.path === '/metadata/resourceVersion' && obj.metadata!.resourceVersion !== op.value)
          this.fail(422, 'test failed');
        if (op.op === 'replace' && op.path === '/spec/cluster') obj.spec.cluster = op.value as string;
        if (op.op === 'add' && op.path === '/spec/handoverTo') obj.spec.handoverTo = op.value as string;
        if (op.op === 'remove' && op.path === '/spec/handoverTo') delete obj.spec.handoverTo;
        if (op.op === 'add' && op.path === '/metadata/labels/netpin.io~1cluster')
          obj.metadata!.labels = { ...obj.metadata!.labels, 'netpin.io/cluster': op.value as string };
      }
      return this.after('patch', this.stamp(obj));
    },
    deleteClusterCustomObject: async ({
      name,
      body,
    }: {
      name: string;
      body?: { preconditions?: { uid?: string; resourceVersion?: string } };
    }) => {
      this.calls.push(`delete ${name}`);
      await this.before('delete');
      const obj = this.objects.get(name) ?? this.fail(404, `ipclaims "${name}" not found`);
      const p = body?.preconditions ?? {};
      if (
        (p.uid && p.uid !== obj.metadata!.uid) ||
        (p.resourceVersion && p.resourceVersion !== obj.metadata!.resourceVersion)
      )
        this.fail(409, 'Precondition failed');
      this.objects.delete(name);
      return {};
    },
    listClusterCustomObject: async ({
      plural,
      limit,
      _continue,
    }: {
      plural: string;
      limit?: number;
      _continue?: string;
    }) => {
      this.lists.push({ plural, limit, next: _continue });
      // As the objects were when the list was asked for, whatever changes while it is held open.
      const all: unknown[] = structuredClone(plural === 'ippools' ? this.pools : [...this.objects.values()]);
      const resourceVersion = String(this.version);
      await this.before(plural === 'ipclaims' ? 'list' : 'listPools');
      if (this.bareLists) return { items: all };
      const from = Number(_continue ?? 0);
      const to = limit === undefined ? all.length : from + limit;
      return {
        items: all.slice(from, to),
        metadata: { resourceVersion, ...(to < all.length && { continue: String(to) }) },
      };
    },
  } as unknown as ClaimsApi;
}

const web = compilePool({ metadata: { name: 'web' }, spec: { cidr: '10.0.0.0/24' } });
// Overlaps web: created at the same moment on two replicas, before either saw the other.
const web2 = compilePool({ metadata: { name: 'web2' }, spec: { ranges: ['10.0.0.0-10.0.0.9'] } });
const pod = (name: string): Owner => ({ kind: 'Pod', namespace: 'shop', name });

function ledgerOn(store: ClaimStore, pools = [web], metrics?: LedgerMetrics): KubeLedger {
  const ledger = new KubeLedger(new KubeConfig(), undefined, undefined, store.api, metrics);
  for (const p of pools) ledger.index.setPool(p);
  return ledger;
}

describe('IPClaim names', () => {
  it('are the address alone, one spelling per address', () => {
    expect(claimName(v4('10.0.0.5'))).toBe('10.0.0.5');
    expect(claimName(v6('fd00::5'))).toBe('fd00-0-0-0-0-0-0-5');
    expect(toObject({ pool: 'web', ip: v4('10.0.0.5'), owner: pod('a'), createdAt: 0 }).metadata?.name).toBe(
      '10.0.0.5',
    );
  });

  it('make one address in two overlapping pools one claim: the second replica loses the create', async () => {
    const store = new ClaimStore();
    const a = ledgerOn(store, [web]);
    const b = ledgerOn(store, [web2]);
    await a.claim(web, v4('10.0.0.5'), pod('first'));
    const err = await b.claim(web2, v4('10.0.0.5'), pod('second')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as ConflictError).message).toBe('10.0.0.5 is held by pod shop/first');
    expect(store.objects.size).toBe(1);
  });
});

describe('a release', () => {
  it('deletes exactly the claim the caller judged: once renewed, the old state deletes nothing and the index keeps the new', async () => {
    const store = new ClaimStore();
    const ledger = ledgerOn(store);
    const judged = await ledger.claim(web, v4('10.0.0.5'), pod('a'));
    expect(await ledger.renew(judged)).toBe(true);
    expect(await ledger.release(judged)).toBe(false);
    expect(store.objects.has('10.0.0.5')).toBe(true);
    const held = ledger.index.holderOf(v4('10.0.0.5'))!;
    expect(held.version).not.toBe(judged.version);
    expect(await ledger.release(held)).toBe(true);
    expect(store.objects.size).toBe(0);
    expect(ledger.index.holderOf(v4('10.0.0.5'))).toBeUndefined();
  });

  it('of a claim still being created deletes nothing', async () => {
    const store = new ClaimStore();
    const ledger = ledgerOn(store);
    const pending: Claim = { pool: 'web', ip: v4('10.0.0.5'), owner: pod('a'), createdAt: 0 };
    await store.api.createClusterCustomObject({
      group: 'netpin.io',
      version: 'v1alpha1',
      plural: 'ipclaims',
      body: toObject({ ...pending, owner: pod('other') }),
    });
    expect(await ledger.release(pending)).toBe(false);
    expect(store.calls.filter((c) => c.startsWith('delete'))).toEqual([]);
  });

  it('makes a later renewal fail, so that the owner claims afresh', async () => {
    const store = new ClaimStore();
    const ledger = ledgerOn(store);
    const claim = await ledger.claim(web, v4('10.0.0.5'), pod('a'));
    expect(await ledger.release(claim)).toBe(true);
    expect(await ledger.renew(claim)).toBe(false);
  });
});

describe('claims stored under the old <pool>.<address> names', () => {
  const legacy = (ip: string, owner: Owner): IPClaimObject => {
    const obj = toObject({ pool: 'web', ip: v4(ip), owner, createdAt: 0 });
    obj.metadata!.name = `web.${ip.replace(/\./g, '-')}`;
    return obj;
  };
  const put = async (store: ClaimStore, ledger: KubeLedger, obj: IPClaimObject) => {
    const stored = (await store.api.createClusterCustomObject({
      group: 'netpin.io',
      version: 'v1alpha1',
      plural: 'ipclaims',
      body: obj,
    })) as IPClaimObject;
    ledger.index.add(toClaim(stored)!);
  };

  it('are released under their own name, and moved by the leader to the address, owner and all', async () => {
    const store = new ClaimStore();
    const ledger = ledgerOn(store);
    await put(store, ledger, legacy('10.0.0.5', pod('a')));
    await put(store, ledger, legacy('10.0.0.6', pod('b')));
    expect(await ledger.release(ledger.index.holderOf(v4('10.0.0.6'))!)).toBe(true);
    expect(store.calls).toContain('delete web.10-0-0-6');

    expect(await ledger.migrate(10, () => true)).toBe(1);
    expect([...store.objects.keys()]).toEqual(['10.0.0.5']);
    expect(store.objects.get('10.0.0.5')!.spec.owner).toEqual({ kind: 'Pod', namespace: 'shop', name: 'a' });
    expect(store.objects.get('10.0.0.5')!.metadata!.annotations?.['netpin.io/admitted-at']).toBeDefined();
  });

  it('stay when the address is claimed under its own name by another owner, and no more than asked move', async () => {
    const store = new ClaimStore();
    const ledger = ledgerOn(store);
    await put(store, ledger, legacy('10.0.0.5', pod('a')));
    await put(store, ledger, legacy('10.0.0.6', pod('b')));
    await put(store, ledger, legacy('10.0.0.7', pod('c')));
    await store.api.createClusterCustomObject({
      group: 'netpin.io',
      version: 'v1alpha1',
      plural: 'ipclaims',
      body: toObject({ pool: 'web', ip: v4('10.0.0.5'), owner: pod('intruder'), createdAt: 0 }),
    });
    expect(await ledger.migrate(1, () => true)).toBe(1);
    expect(store.objects.has('web.10-0-0-5')).toBe(true);
    expect([...store.objects.keys()].sort()).toEqual(['10.0.0.5', '10.0.0.6', 'web.10-0-0-5', 'web.10-0-0-7']);
    expect(await ledger.migrate(10, () => false)).toBe(0);
  });
});

const recordingMetrics = () => {
  const writes: string[] = [];
  const metrics: LedgerMetrics = { write: (op, outcome) => writes.push(`${op} ${outcome}`) };
  return { writes, metrics };
};

/** An IPClaim object as another writer stored it. */
const storedBy = (store: ClaimStore, ip: string, owner: Owner, pool = 'web') =>
  store.put(toObject({ pool, ip: v4(ip), owner, createdAt: 0 }));

describe('IPClaim objects', () => {
  it('record each kind of owner, and read back as the same claim', () => {
    const owners: Owner[] = [
      { kind: 'Pod', namespace: 'shop', name: 'a', uid: 'u-1' },
      { kind: 'Pod', namespace: 'shop', name: '', uid: 'req-1' },
      { kind: 'Pod', namespace: 'shop', name: 'b' },
      { kind: 'StatefulSet', namespace: 'shop', name: 'db', ordinal: 2 },
      { kind: 'Egress', namespace: 'shop', workload: 'Deployment', name: 'api' },
      { kind: 'Egress', namespace: 'shop', workload: 'StatefulSet', name: 'db', ordinal: 0 },
    ];
    for (const owner of owners) {
      const claim: Claim = { pool: 'web', ip: v4('10.0.0.5'), owner, createdAt: Date.parse('2024-05-01T10:00:00Z') };
      const obj = toObject(claim);
      expect(obj).toEqual({
        apiVersion: 'netpin.io/v1alpha1',
        kind: 'IPClaim',
        metadata: { name: '10.0.0.5', labels: { 'netpin.io/pool': 'web' } },
        spec: { pool: 'web', ip: '10.0.0.5', owner },
      });
      expect(Object.keys(obj.spec.owner).sort()).toEqual(Object.keys(owner).sort());
      obj.metadata = {
        ...obj.metadata,
        uid: 'uid-7',
        resourceVersion: '42',
        creationTimestamp: new Date('2024-05-01T10:00:00Z'),
      };
      const back = toClaim(obj);
      expect(back).toEqual({ ...claim, ref: 'uid-7', version: '42' });
      expect(back).not.toHaveProperty('name');
    }
  });

  it('fill in what an older or hand-written object left out', () => {
    const obj = (owner: Record<string, unknown>): IPClaimObject => ({
      metadata: { name: '10.0.0.5', creationTimestamp: new Date(5_000) },
      spec: { pool: 'web', ip: '10.0.0.5', owner: owner as IPClaimObject['spec']['owner'] },
    });
    expect(toClaim(obj({ kind: 'StatefulSet', namespace: 'shop' }))?.owner).toStrictEqual({
      kind: 'StatefulSet',
      namespace: 'shop',
      name: '',
      ordinal: 0,
    });
    expect(toClaim(obj({ kind: 'Egress', namespace: 'shop' }))?.owner).toStrictEqual({
      kind: 'Egress',
      namespace: 'shop',
      workload: 'Pod',
      name: '',
    });
    expect(toClaim(obj({ kind: 'Pod', namespace: 'shop' }))?.owner).toStrictEqual({
      kind: 'Pod',
      namespace: 'shop',
      name: '',
      uid: undefined,
    });
  });

  it('that are malformed are no claim', () => {
    const base = toObject({ pool: 'web', ip: v4('10.0.0.5'), owner: pod('a'), createdAt: 0 });
    expect(toClaim({ ...base, spec: undefined } as unknown as IPClaimObject)).toBeUndefined();
    expect(toClaim({ ...base, spec: { ...base.spec, ip: '10.0.0' } })).toBeUndefined();
    expect(toClaim({ ...base, spec: { ...base.spec, owner: undefined } } as unknown as IPClaimObject)).toBeUndefined();
    expect(
      toClaim({ ...base, spec: { ...base.spec, owner: { kind: 'Pod', namespace: '' } } } as IPClaimObject),
    ).toBeUndefined();
  });

  it('date a claim from the later of its creation and its last admission', () => {
    const at = (created: string | undefined, admitted?: string) => {
      const obj = toObject({ pool: 'web', ip: v4('10.0.0.5'), owner: pod('a'), createdAt: 0 });
      obj.metadata = {
        ...obj.metadata,
        ...(created && { creationTimestamp: new Date(created) }),
        ...(admitted !== undefined && { annotations: { 'netpin.io/admitted-at': admitted } }),
      };
      return toClaim(obj)!.createdAt;
    };
    expect(at('2024-05-01T10:00:00Z')).toBe(Date.parse('2024-05-01T10:00:00Z'));
    expect(at('2024-05-01T10:00:00Z', '2024-05-01T10:05:00.250Z')).toBe(Date.parse('2024-05-01T10:05:00.250Z'));
    expect(at('2024-05-01T10:00:00Z', '2024-05-01T09:00:00Z')).toBe(Date.parse('2024-05-01T10:00:00Z'));
    expect(at('2024-05-01T10:00:00Z', 'yesterday-ish')).toBe(Date.parse('2024-05-01T10:00:00Z'));
    // Not stored yet, so no creation time: it counts from now.
    const before = Date.now();
    const now = at(undefined);
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now).toBeLessThanOrEqual(Date.now());
    expect(at(undefined, '2000-01-01T00:00:00Z')).toBeGreaterThanOrEqual(before);
  });

  it('name a claim stored under another name than its address', () => {
    const obj = toObject({ pool: 'web', ip: v4('10.0.0.5'), owner: pod('a'), createdAt: 0 });
    expect(toClaim(obj)).not.toHaveProperty('name');
    expect(toClaim({ ...obj, metadata: { ...obj.metadata, name: undefined } })).not.toHaveProperty('name');
    expect(toClaim({ ...obj, metadata: { ...obj.metadata, name: 'web.10-0-0-5' } })?.name).toBe('web.10-0-0-5');
  });

  it('are listed a page at a time, following the continue tokens', async () => {
    const store = new ClaimStore();
    for (let i = 1; i <= 5; i++) storedBy(store, `10.0.0.${i}`, pod(`p${i}`));
    const items = await listClaims(store.api as unknown as CustomObjectsApi, 2);
    expect(items.map((o) => o.metadata?.name)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5']);
    expect(store.lists).toEqual([
      { plural: 'ipclaims', limit: 2, next: undefined },
      { plural: 'ipclaims', limit: 2, next: '2' },
      { plural: 'ipclaims', limit: 2, next: '4' },
    ]);
  });
});

describe('a claim', () => {
  it('held by its owner already is that claim, and held by another is refused, both without a write', async () => {
    const store = new ClaimStore();
    const ledger = ledgerOn(store);
    const mine = await ledger.claim(web, v4('10.0.0.5'), pod('a'));
    expect(await ledger.claim(web, v4('10.0.0.5'), pod('a'))).toBe(mine);
    await expect(ledger.claim(web, v4('10.0.0.5'), pod('b'))).rejects.toBeInstanceOf(ConflictError);
    expect(store.calls).toEqual(['create 10.0.0.5']);
  });

  it('takes its address in the index before the create is answered, and holds the stored object after', async () => {
    const store = new ClaimStore();
    const { writes, metrics } = recordingMetrics();
    const ledger = ledgerOn(store, [web], metrics);
    const answer = store.hold('create');
    const claiming = ledger.claim(web, v4('10.0.0.1'), pod('a'));
    expect(ledger.index.holderOf(v4('10.0.0.1'))?.owner).toEqual(pod('a'));
    expect(ledger.index.holderOf(v4('10.0.0.1'))?.ref).toBeUndefined();
    expect(ledger.index.firstFree('web', 'ipv4')?.toString()).toBe('10.0.0.2');
    answer.open();
    const claim = await claiming;
    const obj = store.objects.get('10.0.0.1')!;
    expect(claim).toMatchObject({ pool: 'web', owner: pod('a'), ref: obj.metadata?.uid });
    expect(claim.version).toBe(obj.metadata?.resourceVersion);
    expect(ledger.index.holderOf(v4('10.0.0.1'))).toBe(claim);
    expect(writes).toEqual(['create ok']);
  });

  it('whose create fails gives the address back here, and says what it was doing', async () => {
    const store = new ClaimStore();
    const { writes, metrics } = recordingMetrics();
    const ledger = ledgerOn(store, [web], metrics);
    store.failNext('create', 500);
    const err = (await ledger.claim(web, v4('10.0.0.5'), pod('a')).catch((e: unknown) => e)) as Error;
    expect(err).not.toBeInstanceOf(ConflictError);
    expect(err.message).toBe('claiming 10.0.0.5 in IPPool web: HTTP 500: create failed');
    // The API server's answer stays with the error, for whoever handles it.
    expect(statusOf(err.cause)).toBe(500);
    expect(ledger.index.holderOf(v4('10.0.0.5'))).toBeUndefined();
    expect(ledger.index.firstFree('web', 'ipv4')?.toString()).toBe('10.0.0.1');
    expect(writes).toEqual(['create error']);
  });

  it('that another replica won is refused, and the index learns the winner', async () => {
    const store = new ClaimStore();
    const { writes, metrics } = recordingMetrics();
    const ledger = ledgerOn(store, [web], metrics);
    const winner = storedBy(store, '10.0.0.5', pod('b'));
    const err = await ledger.claim(web, v4('10.0.0.5'), pod('a')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as ConflictError).holder).toMatchObject({ owner: pod('b'), ref: winner.metadata?.uid });
    expect(ledger.index.holderOf(v4('10.0.0.5'))).toMatchObject({ owner: pod('b'), ref: winner.metadata?.uid });
    expect(writes).toEqual(['create conflict']);
  });

  it('that its own owner created first elsewhere (a retried create) is that stored claim', async () => {
    const store = new ClaimStore();
    const ledger = ledgerOn(store);
    const first = storedBy(store, '10.0.0.5', pod('a'));
    const claim = await ledger.claim(web, v4('10.0.0.5'), pod('a'));
    expect(claim).toMatchObject({ owner: pod('a'), ref: first.metadata?.uid });
    expect(ledger.index.holderOf(v4('10.0.0.5'))).toBe(claim);
  });

  it('lost to a writer whose claim cannot be read, or is malformed, fails without naming a holder', async () => {
    const store = new ClaimStore();
    const ledger = ledgerOn(store);
    storedBy(store, '10.0.0.5', pod('b'));
    store.failNext('get', 500);
    const unread = (await ledger.claim(web, v4('10.0.0.5'), pod('a')).catch((e: unknown) => e)) as Error;
    expect(unread).not.toBeInstanceOf(ConflictError);
    expect(unread.message).toBe('reading IPClaim 10.0.0.5, which another writer created first: HTTP 500: get failed');

    const bad = store.put({ ...toObject({ pool: 'web', ip: v4('10.0.0.6'), owner: pod('b'), createdAt: 0 }) });
    bad.spec.ip = 'nonsense';
    store.objects.set('10.0.0.6', bad);
    const malformed = (await ledger.claim(web, v4('10.0.0.6'), pod('a')).catch((e: unknown) => e)) as Error;
    expect(malformed).not.toBeInstanceOf(ConflictError);
    expect(malformed.message).toBe('IPClaim 10.0.0.6 is malformed');
    expect(statusOf(malformed.cause)).toBe(409);
    expect(ledger.index.holderOf(v4('10.0.0.6'))).toBeUndefined();
  });
});

describe('the next free address', () => {
  it('moves past addresses other replicas won meanwhile', async () => {
    const store = new ClaimStore();
    const ledger = ledgerOn(store);
    storedBy(store, '10.0.0.1', pod('x'));
    storedBy(store, '10.0.0.2', pod('y'));
    const claim = await ledger.claimNext(web, 'ipv4', pod('a'));
    expect(claim.ip.toString()).toBe('10.0.0.3');
    expect(ledger.index.holderOf(v4('10.0.0.1'))?.owner).toEqual(pod('x'));
  });

  it('is refused as exhausted when the pool has none, and gives up after 64 races lost in a row', async () => {
    const tiny = compilePool({ metadata: { name: 'tiny' }, spec: { ranges: ['10.0.1.1-10.0.1.65'] } });
    const store = new ClaimStore();
    const ledger = ledgerOn(store, [tiny]);
    for (let i = 1; i <= 64; i++) storedBy(store, `10.0.1.${i}`, pod(`x${i}`), 'tiny');
    const err = (await ledger.claimNext(tiny, 'ipv4', pod('a')).catch((e: unknown) => e)) as Error;
    expect(err.message).toBe('IPPool tiny: lost 64 races for a free address in a row');
    expect(store.calls.filter((c) => c.startsWith('create'))).toHaveLength(64);
    expect((await ledger.claimNext(tiny, 'ipv4', pod('a'))).ip.toString()).toBe('10.0.1.65');
    await expect(ledger.claimNext(tiny, 'ipv4', pod('b'))).rejects.toBeInstanceOf(ExhaustedError);
  });

  it('stops at the first failure that is not a lost race', async () => {
    const store = new ClaimStore();
    const ledger = ledgerOn(store);
    store.failNext('create', 503);
    await expect(ledger.claimNext(web, 'ipv4', pod('a'))).rejects.toThrow('claiming 10.0.0.1 in IPPool web: HTTP 503');
    expect(store.calls).toEqual(['create 10.0.0.1']);
  });
});

describe('a renewal', () => {
  it('of a claim still being created writes nothing: that create is the write', async () => {
    const store = new ClaimStore();
    const ledger = ledgerOn(store);
    expect(await ledger.renew({ pool: 'web', ip: v4('10.0.0.5'), owner: pod('a'), createdAt: 0 })).toBe(true);
    expect(store.calls).toEqual([]);
  });

  it('writes when it was handed out again, and the index holds the renewed claim from then', async () => {
    const store = new ClaimStore();
    const { writes, metrics } = recordingMetrics();
    const ledger = ledgerOn(store, [web], metrics);
    const claim = await ledger.claim(web, v4('10.0.0.5'), pod('a'));
    writes.length = 0;
    const before = Date.now();
    expect(await ledger.renew(claim)).toBe(true);
    const obj = store.objects.get('10.0.0.5')!;
    const admitted = Date.parse(obj.metadata!.annotations!['netpin.io/admitted-at']!);
    expect(admitted).toBeGreaterThanOrEqual(before);
    const held = ledger.index.holderOf(v4('10.0.0.5'))!;
    expect(held).toMatchObject({ owner: pod('a'), ref: claim.ref, createdAt: admitted });
    expect(held.version).toBe(obj.metadata?.resourceVersion);
    expect(writes).toEqual(['patch ok']);
  });

  it('of a claim deleted, or claimed again by someone else, fails and forgets only that claim', async () => {
    const store = new ClaimStore();
    const { writes, metrics } = recordingMetrics();
    const ledger = ledgerOn(store, [web], metrics);
    const gone = await ledger.claim(web, v4('10.0.0.5'), pod('a'));
    store.objects.delete('10.0.0.5');
    expect(await ledger.renew(gone)).toBe(false);
    expect(ledger.index.holderOf(v4('10.0.0.5'))).toBeUndefined();

    const replaced = await ledger.claim(web, v4('10.0.0.6'), pod('a'));
    store.objects.delete('10.0.0.6');
    // The watch has told the deletion and the new claim already.
    const successor = toClaim(storedBy(store, '10.0.0.6', pod('a')))!;
    ledger.index.remove(replaced);
    ledger.index.add(successor);
    expect(await ledger.renew(replaced)).toBe(false);
    expect(ledger.index.holderOf(v4('10.0.0.6'))).toBe(successor);
    expect(writes).toEqual(['create ok', 'patch gone', 'create ok', 'patch gone']);
  });

  it('that fails otherwise throws, and changes nothing here', async () => {
    const store = new ClaimStore();
    const { writes, metrics } = recordingMetrics();
    const ledger = ledgerOn(store, [web], metrics);
    const claim = await ledger.claim(web, v4('10.0.0.5'), pod('a'));
    writes.length = 0;
    store.failNext('patch', 500);
    const err = (await ledger.renew(claim).catch((e: unknown) => e)) as Error;
    expect(err.message).toBe('renewing the claim on 10.0.0.5 in IPPool web: HTTP 500: patch failed');
    expect(statusOf(err.cause)).toBe(500);
    expect(ledger.index.holderOf(v4('10.0.0.5'))).toBe(claim);
    expect(writes).toEqual(['patch error']);
  });
});

describe('naming the pod of a claim', () => {
  it('writes the pod into this very object, under whatever name it is stored', async () => {
    const store = new ClaimStore();
    const ledger = ledgerOn(store);
    const claim = await ledger.claim(web, v4('10.0.0.5'), { kind: 'Pod', namespace: 'shop', name: '', uid: 'req-1' });
    await ledger.bind(claim, { name: 'api-x1', uid: 'pod-uid' });
    expect(store.objects.get('10.0.0.5')!.spec.owner).toEqual({
      kind: 'Pod',
      namespace: 'shop',
      name: 'api-x1',
      uid: 'pod-uid',
    });

    const legacy = store.put({
      ...toObject({
        pool: 'web',
        ip: v4('10.0.0.6'),
        owner: { kind: 'Pod', namespace: 'shop', name: '', uid: 'req-2' },
        createdAt: 0,
      }),
    });
    store.objects.delete('10.0.0.6');
    legacy.metadata!.name = 'web.10-0-0-6';
    store.objects.set('web.10-0-0-6', legacy);
    await ledger.bind(toClaim(legacy)!, { name: 'api-x2', uid: 'pod-uid-2' });
    expect(store.objects.get('web.10-0-0-6')!.spec.owner.name).toBe('api-x2');
  });

  it('of a claim gone or claimed again since does nothing, and another failure throws', async () => {
    const store = new ClaimStore();
    const ledger = ledgerOn(store);
    const claim = await ledger.claim(web, v4('10.0.0.5'), { kind: 'Pod', namespace: 'shop', name: '', uid: 'req-1' });
    store.objects.delete('10.0.0.5');
    const other = storedBy(store, '10.0.0.5', pod('b'));
    await ledger.bind(claim, { name: 'api-x1', uid: 'pod-uid' });
    expect(store.objects.get('10.0.0.5')!.spec.owner).toEqual(other.spec.owner);
    store.objects.delete('10.0.0.5');
    await ledger.bind(claim, { name: 'api-x1', uid: 'pod-uid' });
    store.failNext('patch', 500);
    await expect(ledger.bind(claim, { name: 'api-x1', uid: 'pod-uid' })).rejects.toThrow(
      'binding 10.0.0.5 to pod api-x1: HTTP 500',
    );
  });
});

describe('a release, further', () => {
  it('of a claim already deleted is done; one the API server refuses otherwise stays held and throws', async () => {
    const store = new ClaimStore();
    const { writes, metrics } = recordingMetrics();
    const ledger = ledgerOn(store, [web], metrics);
    const a = await ledger.claim(web, v4('10.0.0.5'), pod('a'));
    const b = await ledger.claim(web, v4('10.0.0.6'), pod('b'));
    writes.length = 0;
    store.objects.delete('10.0.0.5');
    expect(await ledger.release(a)).toBe(true);
    expect(ledger.index.holderOf(v4('10.0.0.5'))).toBeUndefined();
    store.failNext('delete', 500);
    const err = (await ledger.release(b).catch((e: unknown) => e)) as Error;
    expect(err.message).toBe('releasing 10.0.0.6: HTTP 500: delete failed');
    expect(statusOf(err.cause)).toBe(500);
    expect(ledger.index.holderOf(v4('10.0.0.6'))).toBe(b);
    expect(store.objects.has('10.0.0.6')).toBe(true);
    expect(await ledger.release(b)).toBe(true);
    expect(writes).toEqual(['delete gone', 'delete error', 'delete ok']);
  });

  it('that fails its preconditions is told as a conflict and releases nothing', async () => {
    const store = new ClaimStore();
    const { writes, metrics } = recordingMetrics();
    const ledger = ledgerOn(store, [web], metrics);
    const a = await ledger.claim(web, v4('10.0.0.5'), pod('a'));
    writes.length = 0;
    store.objects.delete('10.0.0.5');
    storedBy(store, '10.0.0.5', pod('a'));
    expect(await ledger.release(a)).toBe(false);
    expect(store.objects.has('10.0.0.5')).toBe(true);
    expect(ledger.index.holderOf(v4('10.0.0.5'))).toBe(a);
    expect(writes).toEqual(['delete conflict']);
  });

  it('of a claim read without a version is conditional on its uid alone', async () => {
    const store = new ClaimStore();
    const ledger = ledgerOn(store);
    const obj = storedBy(store, '10.0.0.5', pod('a'));
    const claim = { ...toClaim(obj)!, version: undefined };
    ledger.index.add(claim);
    store.objects.get('10.0.0.5')!.metadata!.resourceVersion = '99';
    expect(await ledger.release(claim)).toBe(true);
    expect(store.objects.size).toBe(0);
  });
});

describe('moving claims stored under old names', () => {
  const legacyObject = (store: ClaimStore, ip: string, owner: Owner): IPClaimObject => {
    const obj = toObject({ pool: 'web', ip: v4(ip), owner, createdAt: 0 });
    obj.metadata!.name = `web.${ip.replace(/\./g, '-')}`;
    return store.put(obj, new Date('2024-05-01T10:00:00Z'));
  };
  const legacyIn = (store: ClaimStore, ledger: KubeLedger, ip: string, owner: Owner) => {
    const claim = toClaim(legacyObject(store, ip, owner))!;
    ledger.index.add(claim);
    return claim;
  };

  it('carries the time of the last admission over, so that the grace period does not start again', async () => {
    const store = new ClaimStore();
    const ledger = ledgerOn(store);
    const claim = legacyIn(store, ledger, '10.0.0.5', pod('a'));
    // Stored under the address already: nothing to move.
    await ledger.claim(web, v4('10.0.0.9'), pod('z'));
    expect(await ledger.migrate(10, () => true)).toBe(1);
    expect(store.calls.filter((c) => c.endsWith('10.0.0.9'))).toEqual(['create 10.0.0.9']);
    const moved = store.objects.get('10.0.0.5')!;
    expect(moved.metadata!.annotations).toEqual({ 'netpin.io/admitted-at': '2024-05-01T10:00:00.000Z' });
    expect(moved.spec).toEqual(toObject(claim).spec);
    expect(store.objects.has('web.10-0-0-5')).toBe(false);
  });

  it('finishes a move an earlier round began: the new object exists already, for the same owner', async () => {
    const store = new ClaimStore();
    const ledger = ledgerOn(store);
    legacyIn(store, ledger, '10.0.0.5', pod('a'));
    storedBy(store, '10.0.0.5', pod('a'));
    expect(await ledger.migrate(10, () => true)).toBe(1);
    expect([...store.objects.keys()]).toEqual(['10.0.0.5']);
  });

  it('leaves the old object when the new name holds a malformed one, and goes on with the next', async () => {
    const store = new ClaimStore();
    // With a log, which tells the conflict (what it says is not checked here).
    const quiet = { error: () => undefined, warn: () => undefined, info: () => undefined } as unknown as Logger;
    const ledger = new KubeLedger(new KubeConfig(), quiet, undefined, store.api);
    ledger.index.setPool(web);
    legacyIn(store, ledger, '10.0.0.5', pod('a'));
    legacyIn(store, ledger, '10.0.0.6', pod('b'));
    const bad = storedBy(store, '10.0.0.5', pod('a'));
    bad.spec.ip = 'nonsense';
    store.objects.set('10.0.0.5', bad);
    expect(await ledger.migrate(10, () => true)).toBe(1);
    expect([...store.objects.keys()].sort()).toEqual(['10.0.0.5', '10.0.0.6', 'web.10-0-0-5']);
  });

  it('counts an old object deleted or replaced meanwhile as moved, and stops at any other failure', async () => {
    const store = new ClaimStore();
    const ledger = ledgerOn(store);
    legacyIn(store, ledger, '10.0.0.5', pod('a'));
    const replaced = legacyIn(store, ledger, '10.0.0.6', pod('b'));
    legacyIn(store, ledger, '10.0.0.7', pod('c'));
    legacyIn(store, ledger, '10.0.0.8', pod('d'));
    store.objects.delete('web.10-0-0-5');
    // Deleted and created again under the old name by hand: another uid, which the delete must not take.
    store.objects.delete(replaced.name!);
    store.put({ ...legacyObject(new ClaimStore(), '10.0.0.6', pod('b')) });
    expect(await ledger.migrate(2, () => true)).toBe(2);
    expect(store.objects.has('web.10-0-0-6')).toBe(true);

    store.failNext('delete', 500);
    await expect(ledger.migrate(10, () => true)).rejects.toThrow();
    expect(store.objects.has('web.10-0-0-7')).toBe(true);
    store.failNext('create', 500);
    await expect(ledger.migrate(10, () => true)).rejects.toThrow();
    expect(store.objects.has('web.10-0-0-8')).toBe(true);
    expect(store.objects.has('10.0.0.8')).toBe(false);
  });

  it('asks before each move whether it may go on', async () => {
    const store = new ClaimStore();
    const ledger = ledgerOn(store);
    legacyIn(store, ledger, '10.0.0.5', pod('a'));
    legacyIn(store, ledger, '10.0.0.6', pod('b'));
    let asked = 0;
    expect(await ledger.migrate(10, () => asked++ < 1)).toBe(1);
    expect(store.objects.has('web.10-0-0-6')).toBe(true);
  });
});

/** Ledgers started in a test, stopped after it with their watch stand-in. */
const started: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const stop of started.splice(0)) await stop();
});

const poolObject = (name: string, spec: Record<string, unknown>): IPPoolObject =>
  ({ apiVersion: 'netpin.io/v1alpha1', kind: 'IPPool', metadata: { name }, spec }) as IPPoolObject;

/**
 * A ledger started on the claims API of `store` (its lists) and a watch stand-in (its watches): what the
 * index holds then follows from what the test sends, in the order it sends it.
 */
async function watchedLedger(store: ClaimStore, claimsPage?: number) {
  const watch = await new WatchStandIn().start();
  const ledger = new KubeLedger(watch.kc, undefined, claimsPage, store.api);
  // Closing the stand-in's connections ends a watch stop() could not abort yet (one still connecting).
  started.push(() => Promise.all([ledger.stop(), watch.stop()]).then(() => undefined));
  await ledger.start();
  await Promise.all([watch.watching('ipclaims'), watch.watching('ippools')]);
  let sentinels = 0;
  const watches = () => watch.requests.filter((r) => r.resource === 'ipclaims').length;
  return {
    ledger,
    watch,
    send: (type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: unknown) => watch.send('ipclaims', type, obj),
    /** Resolves once every event sent before has been handled: events of one watch are handled in order. */
    async settle() {
      const ip = `10.255.0.${++sentinels}`;
      const obj = {
        ...toObject({ pool: 'sentinel', ip: v4(ip), owner: pod('sentinel'), createdAt: 0 }),
        metadata: { name: ip, uid: `sentinel-${sentinels}` },
      };
      watch.send('ipclaims', 'ADDED', obj);
      await expect.poll(() => ledger.index.holderOf(v4(ip))).toBeDefined();
      watch.send('ipclaims', 'DELETED', obj);
      await expect.poll(() => ledger.index.holderOf(v4(ip))).toBeUndefined();
    },
    /** Breaks the watch of IPClaims, as a 410 Gone does; resolves once it is listed again and watching. */
    async relist(during?: () => Promise<void>) {
      const before = watches();
      const list = store.hold('list');
      watch.send('ipclaims', 'ERROR' as 'ADDED', { kind: 'Status', code: 410, reason: 'Expired' });
      const lists = store.lists.length;
      await expect.poll(() => store.lists.length, { timeout: 5_000 }).toBeGreaterThan(lists);
      await during?.();
      list.open();
      await watch.watching('ipclaims', before);
    },
  };
}

/** The object `store` holds under this name, as a list or a watch would send it. */
const objectOf = (store: ClaimStore, name: string) => structuredClone(store.objects.get(name)!);

describe('the ledger started on its watches', () => {
  it('is ready once the pools and the claims are both listed, and complete only while both watches are', async () => {
    const store = new ClaimStore();
    store.pools.push(poolObject('web', { cidr: '10.0.0.0/24' }));
    storedBy(store, '10.0.0.5', pod('a'));
    const watch = await new WatchStandIn().start();
    const ledger = new KubeLedger(watch.kc, undefined, undefined, store.api);
    started.push(() => Promise.all([ledger.stop(), watch.stop()]).then(() => undefined));
    expect(ledger.complete()).toBe(false);
    const list = store.hold('list');
    const starting = ledger.start();
    await expect.poll(() => ledger.index.pool('web')).toBeDefined();
    expect(ledger.synced).toBe(false);
    expect(ledger.complete()).toBe(false);
    list.open();
    await starting;
    expect(ledger.synced).toBe(true);
    expect(ledger.complete()).toBe(true);
    expect(ledger.index.holderOf(v4('10.0.0.5'))).toMatchObject({ owner: pod('a') });
    expect(ledger.index.firstFree('web', 'ipv4')?.toString()).toBe('10.0.0.1');
    void ledger.stop();
    expect(ledger.complete()).toBe(false);
  });

  it('lists the claims a page at a time, and watches from where the list ended', async () => {
    const store = new ClaimStore();
    for (let i = 1; i <= 5; i++) storedBy(store, `10.0.0.${i}`, pod(`p${i}`));
    const version = String(Number(store.objects.get('10.0.0.5')!.metadata!.resourceVersion));
    const { ledger, watch } = await watchedLedger(store, 2);
    expect([...ledger.index.allClaims()].map((c) => c.ip.toString())).toEqual([
      '10.0.0.1',
      '10.0.0.2',
      '10.0.0.3',
      '10.0.0.4',
      '10.0.0.5',
    ]);
    expect(store.lists.filter((l) => l.plural === 'ipclaims')).toEqual([
      { plural: 'ipclaims', limit: 2, next: undefined },
      { plural: 'ipclaims', limit: 2, next: '2' },
      { plural: 'ipclaims', limit: 2, next: '4' },
    ]);
    expect(watch.requests.find((r) => r.resource === 'ipclaims')?.resourceVersion).toBe(version);
    expect(watch.requests.find((r) => r.resource === 'ippools')?.resourceVersion).toBe(version);
  });

  it('lists IPPools 500 at a time, leaves out a malformed one, and follows the watch', async () => {
    const store = new ClaimStore();
    for (let i = 0; i < 501; i++)
      store.pools.push(poolObject(`p${i}`, { cidr: `10.${100 + (i >> 8)}.${i & 255}.0/30` }));
    store.pools.push(poolObject('bad', { cidr: 5 }));
    const { ledger, watch } = await watchedLedger(store);
    expect(ledger.index.allPools()).toHaveLength(501);
    expect(ledger.index.pool('bad')).toBeUndefined();
    expect(store.lists.filter((l) => l.plural === 'ippools')).toEqual([
      { plural: 'ippools', limit: 500, next: undefined },
      { plural: 'ippools', limit: 500, next: '500' },
    ]);
    watch.send('ippools', 'ADDED', {
      ...poolObject('web', { cidr: '10.0.0.0/24' }),
      metadata: { name: 'web', resourceVersion: '7' },
    });
    await expect.poll(() => ledger.index.pool('web')).toBeDefined();
    watch.send('ippools', 'DELETED', { ...poolObject('p0', {}), metadata: { name: 'p0', resourceVersion: '8' } });
    await expect.poll(() => ledger.index.pool('p0')).toBeUndefined();
    watch.send('ippools', 'ADDED', {
      ...poolObject('bad2', { ranges: 'x' }),
      metadata: { name: 'bad2', resourceVersion: '9' },
    });
    watch.send('ippools', 'ADDED', {
      ...poolObject('late', { cidr: '10.9.0.0/24' }),
      metadata: { name: 'late', resourceVersion: '10' },
    });
    await expect.poll(() => ledger.index.pool('late')).toBeDefined();
    expect(ledger.index.pool('bad2')).toBeUndefined();
  });

  it('reads the pools again on demand, adding one the watch has not brought yet and leaving the others as they are', async () => {
    const store = new ClaimStore();
    store.pools.push(poolObject('web', { cidr: '10.0.0.0/24' }));
    const unstarted = new KubeLedger(new KubeConfig(), undefined, undefined, store.api);
    await unstarted.refreshPools();
    expect(unstarted.index.allPools()).toEqual([]);
    expect(unstarted.complete()).toBe(false);
    await unstarted.stop();

    const { ledger } = await watchedLedger(store);
    store.pools.splice(0, 1, poolObject('web', { cidr: '10.0.0.0/28' }));
    store.pools.push(poolObject('new', { cidr: '10.0.1.0/24' }), poolObject('bad', { cidr: 5 }));
    await ledger.refreshPools();
    expect(ledger.index.pool('new')?.capacity.ipv4).toBe(254n);
    expect(ledger.index.pool('web')?.capacity.ipv4).toBe(254n);
    expect(ledger.index.pool('bad')).toBeUndefined();
  });

  it('holds what the watch tells: a new claim, its new owner, its deletion, and nothing for a malformed object', async () => {
    const store = new ClaimStore();
    const { ledger, send, settle } = await watchedLedger(store);
    const obj = storedBy(store, '10.0.0.5', { kind: 'Pod', namespace: 'shop', name: '', uid: 'req-1' });
    send('ADDED', obj);
    await expect.poll(() => ledger.index.holderOf(v4('10.0.0.5'))?.ref).toBe(obj.metadata?.uid);
    const bound = {
      ...obj,
      metadata: { ...obj.metadata, resourceVersion: '90' },
      spec: { ...obj.spec, owner: pod('api-x1') },
    };
    send('MODIFIED', bound);
    await expect.poll(() => ledger.index.holderOf(v4('10.0.0.5'))?.owner).toEqual(pod('api-x1'));
    expect(ledger.index.holderOf(v4('10.0.0.5'))?.version).toBe('90');
    send('ADDED', { ...obj, spec: { ...obj.spec, ip: 'nonsense' } });
    send('DELETED', { ...obj, spec: { ...obj.spec, ip: 'nonsense' } });
    await settle();
    send('DELETED', bound);
    await expect.poll(() => ledger.index.holderOf(v4('10.0.0.5'))).toBeUndefined();
  });

  it('keeps a newer object of an address when a late event of the one before it comes', async () => {
    const store = new ClaimStore();
    const before = storedBy(store, '10.0.0.5', pod('a'));
    store.objects.delete('10.0.0.5');
    const { ledger, send, settle } = await watchedLedger(store);
    const after = storedBy(store, '10.0.0.5', pod('a'));
    send('ADDED', after);
    await expect.poll(() => ledger.index.holderOf(v4('10.0.0.5'))?.ref).toBe(after.metadata?.uid);
    send('DELETED', before);
    // Another object at an address held by a stored claim is news only after that claim's deletion.
    send('ADDED', { ...storedBy(new ClaimStore(), '10.0.0.5', pod('b')), metadata: { name: '10.0.0.5', uid: 'x' } });
    await settle();
    expect(ledger.index.holderOf(v4('10.0.0.5'))?.ref).toBe(after.metadata?.uid);
  });

  it('confirms a claim being created when the watch shows it before the create is answered, and keeps it if that answer is lost', async () => {
    const store = new ClaimStore();
    const { ledger, send } = await watchedLedger(store);
    ledger.index.setPool(web);
    const answer = store.holdAnswer('create');
    const claiming = ledger.claim(web, v4('10.0.0.5'), pod('a'));
    await expect.poll(() => store.objects.has('10.0.0.5')).toBe(true);
    send('ADDED', objectOf(store, '10.0.0.5'));
    const uid = store.objects.get('10.0.0.5')!.metadata!.uid;
    await expect.poll(() => ledger.index.holderOf(v4('10.0.0.5'))?.ref).toBe(uid);
    answer.open();
    const claim = await claiming;
    expect(claim.ref).toBe(uid);
    expect(ledger.index.holderOf(v4('10.0.0.5'))).toBe(claim);

    // A create that lands, shown by the watch, whose answer is then lost: the address stays held here.
    const lost = store.holdAnswer('create');
    store.failNextAnswer('create', 504);
    const failing = ledger.claim(web, v4('10.0.0.6'), pod('b')).catch((e: unknown) => e);
    await expect.poll(() => store.objects.has('10.0.0.6')).toBe(true);
    send('ADDED', objectOf(store, '10.0.0.6'));
    await expect.poll(() => ledger.index.holderOf(v4('10.0.0.6'))?.ref).toBeDefined();
    lost.open();
    expect(await failing).toBeInstanceOf(Error);
    expect(ledger.index.holderOf(v4('10.0.0.6'))).toMatchObject({
      owner: pod('b'),
      ref: store.objects.get('10.0.0.6')!.metadata!.uid,
    });
    expect(ledger.index.firstFree('web', 'ipv4')?.toString()).toBe('10.0.0.1');
  });

  it('answers a create with its own claim when the address was released and claimed again before the answer came', async () => {
    const store = new ClaimStore();
    const { ledger, send } = await watchedLedger(store);
    ledger.index.setPool(web);
    const answer = store.holdAnswer('create');
    const claiming = ledger.claim(web, v4('10.0.0.5'), pod('a'));
    await expect.poll(() => store.objects.has('10.0.0.5')).toBe(true);
    const mine = objectOf(store, '10.0.0.5');
    send('ADDED', mine);
    send('DELETED', mine);
    const other = {
      ...mine,
      metadata: { ...mine.metadata, uid: 'uid-other', resourceVersion: '50' },
      spec: { ...mine.spec, owner: pod('b') },
    };
    send('ADDED', other);
    await expect.poll(() => ledger.index.holderOf(v4('10.0.0.5'))?.ref).toBe('uid-other');
    answer.open();
    const claim = await claiming;
    expect(claim).toMatchObject({ owner: pod('a'), ref: mine.metadata?.uid });

    // Released before the answer, and nobody else's yet.
    const next = store.holdAnswer('create');
    const claimingNext = ledger.claim(web, v4('10.0.0.6'), pod('c'));
    await expect.poll(() => store.objects.has('10.0.0.6')).toBe(true);
    const mineNext = objectOf(store, '10.0.0.6');
    send('ADDED', mineNext);
    await expect.poll(() => ledger.index.holderOf(v4('10.0.0.6'))?.ref).toBe(mineNext.metadata?.uid);
    send('DELETED', mineNext);
    await expect.poll(() => ledger.index.holderOf(v4('10.0.0.6'))).toBeUndefined();
    next.open();
    expect(await claimingNext).toMatchObject({ owner: pod('c'), ref: mineNext.metadata?.uid });
  });

  it('after a broken watch, lists again: forgets what was deleted meanwhile, takes what changed, and keeps the rest as it was', async () => {
    const store = new ClaimStore();
    storedBy(store, '10.0.0.1', pod('deleted'));
    storedBy(store, '10.0.0.2', pod('unchanged'));
    storedBy(store, '10.0.0.3', pod('renewed'));
    storedBy(store, '10.0.0.4', pod('replaced'));
    const { ledger, relist } = await watchedLedger(store);
    ledger.index.setPool(web);
    const unchanged = ledger.index.holderOf(v4('10.0.0.2'));
    const renewed = ledger.index.holderOf(v4('10.0.0.3'))!;
    // While nothing watched: one claim deleted, one renewed, one deleted and claimed again by another owner.
    store.objects.delete('10.0.0.1');
    await store.api.patchClusterCustomObject({
      group: 'netpin.io',
      version: 'v1alpha1',
      plural: 'ipclaims',
      name: '10.0.0.3',
      body: [
        { op: 'add', path: '/metadata/annotations', value: { 'netpin.io/admitted-at': new Date().toISOString() } },
      ],
    });
    store.objects.delete('10.0.0.4');
    const successor = storedBy(store, '10.0.0.4', pod('other'));
    // An allocation under way across the list, and one made while it was listing.
    const create = store.hold('create');
    const pending = ledger.claim(web, v4('10.0.0.5'), pod('pending'));
    let during: Claim | undefined;
    await relist(async () => {
      store.hold('create').open();
      during = await ledger.claim(web, v4('10.0.0.6'), pod('during'));
    });
    expect(ledger.index.holderOf(v4('10.0.0.1'))).toBeUndefined();
    expect(ledger.index.holderOf(v4('10.0.0.2'))).toBe(unchanged);
    expect(ledger.index.holderOf(v4('10.0.0.3'))?.version).not.toBe(renewed.version);
    expect(ledger.index.holderOf(v4('10.0.0.4'))).toMatchObject({ owner: pod('other'), ref: successor.metadata?.uid });
    expect(ledger.index.holderOf(v4('10.0.0.5'))?.owner).toEqual(pod('pending'));
    expect(ledger.index.holderOf(v4('10.0.0.6'))).toBe(during);
    create.open();
    expect((await pending).ref).toBe(store.objects.get('10.0.0.5')!.metadata!.uid);
  });
});

describe('the watch, for claims stored under old names', () => {
  const legacyObject = (store: ClaimStore, ip: string, owner: Owner): IPClaimObject => {
    const obj = toObject({ pool: 'web', ip: v4(ip), owner, createdAt: 0 });
    obj.metadata!.name = `web.${ip.replace(/\./g, '-')}`;
    return store.put(obj);
  };

  it('takes the object under the address itself in place of the old one, and never the reverse, in whatever order they come', async () => {
    const store = new ClaimStore();
    // A move half done when the ledger starts: both objects exist, listed in either order.
    legacyObject(store, '10.0.0.6', pod('b'));
    const newB = storedBy(store, '10.0.0.6', pod('b'));
    const newC = storedBy(store, '10.0.0.7', pod('c'));
    legacyObject(store, '10.0.0.7', pod('c'));
    const oldA = legacyObject(store, '10.0.0.5', pod('a'));
    const { ledger, send, settle } = await watchedLedger(store);
    expect(ledger.index.holderOf(v4('10.0.0.6'))?.ref).toBe(newB.metadata?.uid);
    expect(ledger.index.holderOf(v4('10.0.0.6'))?.name).toBeUndefined();
    expect(ledger.index.holderOf(v4('10.0.0.7'))?.ref).toBe(newC.metadata?.uid);
    expect(ledger.index.holderOf(v4('10.0.0.7'))?.name).toBeUndefined();
    expect(ledger.index.holderOf(v4('10.0.0.5'))).toMatchObject({ ref: oldA.metadata?.uid, name: 'web.10-0-0-5' });

    // The leader moves the third: the new object comes, then the old one's deletion.
    const newA = storedBy(store, '10.0.0.5', pod('a'));
    send('ADDED', newA);
    await expect.poll(() => ledger.index.holderOf(v4('10.0.0.5'))?.ref).toBe(newA.metadata?.uid);
    send('DELETED', oldA);
    // An old object changed after the new one is held (a bind racing the move) does not take its place.
    send('MODIFIED', {
      ...legacyObject(new ClaimStore(), '10.0.0.6', pod('b')),
      metadata: { name: 'web.10-0-0-6', uid: 'old-b', resourceVersion: '77' },
    });
    await settle();
    expect(ledger.index.holderOf(v4('10.0.0.5'))?.ref).toBe(newA.metadata?.uid);
    expect(ledger.index.holderOf(v4('10.0.0.5'))?.name).toBeUndefined();
    expect(ledger.index.holderOf(v4('10.0.0.6'))?.ref).toBe(newB.metadata?.uid);
  });
});

describe('a renewal', () => {
  it("unbinds a named pod's claim from the pod it named, in the API server and the index: the pod now admitted may be another", async () => {
    const store = new ClaimStore();
    const ledger = ledgerOn(store);
    const claim = await ledger.claim(web, v4('10.0.0.5'), pod('web-1'));
    await ledger.bind(claim, { name: 'web-1', uid: 'pod-uid-1' });
    const bound = toClaim(store.objects.get('10.0.0.5')!)!;
    expect(bound.owner).toEqual({ ...pod('web-1'), uid: 'pod-uid-1' });
    ledger.index.replace(claim, bound);
    expect(await ledger.renew(bound)).toBe(true);
    expect(store.objects.get('10.0.0.5')!.spec.owner).toEqual({ kind: 'Pod', namespace: 'shop', name: 'web-1' });
    expect(ledger.index.holderOf(v4('10.0.0.5'))!.owner).toEqual(pod('web-1'));
  });
});

describe('IPClaim objects, as they may come', () => {
  it('without metadata (not stored yet) read as a claim with no uid, counted from now', () => {
    const obj = toObject({ pool: 'web', ip: v4('10.0.0.5'), owner: pod('a'), createdAt: 0 });
    const before = Date.now();
    const claim = toClaim({ ...obj, metadata: undefined })!;
    expect(claim).toMatchObject({ pool: 'web', owner: pod('a'), ref: undefined, version: undefined });
    expect(claim.createdAt).toBeGreaterThanOrEqual(before);
    expect(claim).not.toHaveProperty('name');
  });

  it('in a list answer without metadata: one page, taken whole', async () => {
    const store = new ClaimStore();
    store.bareLists = true;
    storedBy(store, '10.0.0.5', pod('a'));
    store.pools.push(poolObject('web', { cidr: '10.0.0.0/24' }));
    expect((await listClaims(store.api as unknown as CustomObjectsApi, 2)).map((o) => o.metadata?.name)).toEqual([
      '10.0.0.5',
    ]);
    const { ledger } = await watchedLedger(store);
    expect(ledger.index.holderOf(v4('10.0.0.5'))?.owner).toEqual(pod('a'));
    expect(ledger.index.pool('web')).toBeDefined();
  });
});

describe('the ledger started on its watches, further', () => {
  it('is not complete while the pools are still listing, though the claims are in', async () => {
    const store = new ClaimStore();
    storedBy(store, '10.0.0.5', pod('a'));
    store.pools.push(poolObject('web', { cidr: '10.0.0.0/24' }));
    const watch = await new WatchStandIn().start();
    const ledger = new KubeLedger(watch.kc, undefined, undefined, store.api);
    started.push(() => Promise.all([ledger.stop(), watch.stop()]).then(() => undefined));
    const pools = store.hold('listPools');
    const starting = ledger.start();
    await expect.poll(() => ledger.index.holderOf(v4('10.0.0.5'))).toBeDefined();
    await watch.watching('ipclaims');
    expect(ledger.complete()).toBe(false);
    pools.open();
    await starting;
    expect(ledger.complete()).toBe(true);
  });

  it('keeps the time of its admission for a claim being created that a list shows before the create is answered', async () => {
    const store = new ClaimStore();
    const { ledger, relist } = await watchedLedger(store);
    ledger.index.setPool(web);
    // The API server's clock, in whole seconds, is behind this replica's.
    store.creationTime = new Date(Date.now() - 60_000);
    const answer = store.holdAnswer('create');
    const before = Date.now();
    const claiming = ledger.claim(web, v4('10.0.0.5'), pod('a'));
    await expect.poll(() => store.objects.has('10.0.0.5')).toBe(true);
    await relist();
    const uid = store.objects.get('10.0.0.5')!.metadata!.uid;
    expect(ledger.index.holderOf(v4('10.0.0.5'))?.ref).toBe(uid);
    answer.open();
    const claim = await claiming;
    expect(claim.ref).toBe(uid);
    expect(claim.createdAt).toBeGreaterThanOrEqual(before);
    expect(ledger.index.holderOf(v4('10.0.0.5'))).toBe(claim);
  });

  it('takes, listing again, an object under an old name that replaced another under an old name while nothing watched', async () => {
    const store = new ClaimStore();
    const legacy = (ip: string, owner: Owner, pool = 'web') => {
      const obj = toObject({ pool, ip: v4(ip), owner, createdAt: 0 });
      obj.metadata!.name = `${pool}.${ip.replace(/\./g, '-')}`;
      return store.put(obj);
    };
    const first = legacy('10.0.0.5', pod('a'));
    const { ledger, relist, send, settle } = await watchedLedger(store);
    expect(ledger.index.holderOf(v4('10.0.0.5'))?.ref).toBe(first.metadata?.uid);
    // An old replica, mid-upgrade, gives the address again once it was released.
    store.objects.delete(first.metadata!.name!);
    const second = legacy('10.0.0.5', pod('b'));
    await relist();
    expect(ledger.index.holderOf(v4('10.0.0.5'))).toMatchObject({ owner: pod('b'), ref: second.metadata?.uid });
    // One under the old name of an overlapping pool comes later: the one held stays.
    send('ADDED', legacy('10.0.0.5', pod('c'), 'web2'));
    await settle();
    expect(ledger.index.holderOf(v4('10.0.0.5'))?.ref).toBe(second.metadata?.uid);
  });
});

describe("a ClusterSet member's claims in the broker", () => {
  const shared = { ...web, shared: true };
  const identity = { id: 'a', source: 'configured' as const, installation: 'uid-a' };
  const taken = 'the cluster id a is taken by another member of the ClusterSet (installation uid-other)';
  const member = (broker: ClaimStore, local: ClaimStore, standing: Standing = { joined: true }) => {
    const index = new ClaimIndex();
    const own = new KubeLedger(new KubeConfig(), undefined, undefined, local.api, undefined, index);
    const set = new KubeLedger(new KubeConfig(), undefined, undefined, broker.api, undefined, index, { cluster: 'a' });
    index.setPool(shared);
    const membership = { current: standing, holdsId: standing.joined, self: identity } as unknown as Membership;
    return new ClusterSetLedger(own, set, membership);
  };
  /** A claim stored in the broker under id a: this installation's, or another's that holds the id. */
  const underA = (broker: ClaimStore, ledger: ClusterSetLedger, ip: string, owner: Owner): Claim => {
    const obj = broker.put(toObject({ pool: 'web', ip: v4(ip), owner, createdAt: 0 }, { cluster: 'a' }));
    const claim = toClaim(obj, { cluster: 'a' })!;
    ledger.index.add(claim);
    return claim;
  };

  it('handed over, go to the member promised in one write, and are kept there for its StatefulSet to come', async () => {
    const [broker, local] = [new ClaimStore(), new ClaimStore()];
    const ledger = member(broker, local);
    const owner: Owner = { kind: 'StatefulSet', namespace: 'shop', name: 'db', ordinal: 0 };
    broker.creationTime = new Date(Date.now() - 3_600_000);
    const claim = underA(broker, ledger, '10.0.0.7', owner);
    expect(await ledger.promise(claim, 'b')).toBe(true);
    const before = Date.now();
    expect(await ledger.release(ledger.index.holderOf(claim.ip)!)).toBe(true);
    const obj = broker.objects.get('10.0.0.7')!;
    expect(obj.spec).toMatchObject({ cluster: 'b', owner });
    expect(obj.spec.handoverTo).toBeUndefined();
    expect(obj.metadata?.labels?.['netpin.io/cluster']).toBe('b');
    // b's: a peer's claim here, and there a claim as new as the handover.
    expect(ledger.index.holderOf(claim.ip)?.owner).toEqual({ ...owner, cluster: 'b' });
    expect(toClaim(obj, { cluster: 'b' })?.createdAt).toBeGreaterThanOrEqual(before);
    // And kept there for ten minutes, its StatefulSet applied or not.
    expect(toClaim(obj, { cluster: 'b' })?.keptUntil).toBeGreaterThanOrEqual(before + 600_000);
    expect(broker.calls).toEqual(['patch 10.0.0.7', 'patch 10.0.0.7']);
  });

  it('are neither handed out, renewed, named nor released by an installation that does not hold the id', async () => {
    const [broker, local] = [new ClaimStore(), new ClaimStore()];
    const ledger = member(broker, local, { joined: false, why: taken });
    const ordinal = underA(broker, ledger, '10.0.0.7', {
      kind: 'StatefulSet',
      namespace: 'shop',
      name: 'db',
      ordinal: 0,
    });
    const unnamed = underA(broker, ledger, '10.0.0.8', { kind: 'Pod', namespace: 'shop', name: '', uid: 'u1' });
    const named = underA(broker, ledger, '10.0.0.9', pod('x'));
    // Its owner's pod, admitted here: refused, however the claim's names match.
    const allocator = new Allocator(ledger);
    const allocate = (annotations: Record<string, string>, owner: Owner) =>
      allocator.allocate({
        intent: parseIntent(annotations).intent,
        namespace: 'shop',
        namespaceLabels: {},
        owner,
        dryRun: false,
      });
    await expect(allocate({ 'netpin.io/pool': 'web' }, ordinal.owner)).rejects.toThrow(
      `IPPool web is shared by the ClusterSet, and ${taken}`,
    );
    await expect(allocate({ 'netpin.io/pool': 'web' }, named.owner)).rejects.toThrow(taken);
    await expect(ledger.renew(named)).rejects.toThrow(taken);
    await ledger.bind(unnamed, { name: 'y', uid: 'u1' });
    // Its leader's sweep, which sees none of the pods, releases nothing.
    for (const c of [ordinal, unnamed, named]) expect(await ledger.release(c)).toBe(false);
    expect(broker.calls).toEqual([]);
    expect(broker.objects.size).toBe(3);
  });

  it('are marked shared from their create, so that their renewal and release go to the broker', async () => {
    const [broker, local] = [new ClaimStore(), new ClaimStore()];
    const ledger = member(broker, local);
    const claim = await ledger.claimNext(shared, 'ipv4', pod('x'));
    expect(claim.shared).toBe(true);
    expect(ledger.index.holderOf(claim.ip)).toBe(claim);
    expect(broker.objects.get(claim.ip.toString())?.spec.cluster).toBe('a');
    expect(await ledger.renew(claim)).toBe(true);
    expect(await ledger.release(ledger.index.holderOf(claim.ip)!)).toBe(true);
    expect(broker.objects.size).toBe(0);
    expect(broker.calls).toEqual(['create 10.0.0.1', 'patch 10.0.0.1', 'delete 10.0.0.1']);
    // Never this cluster's API server, where the claim is not: a 404 there was taken for a release.
    expect(local.calls).toEqual([]);
  });
});
