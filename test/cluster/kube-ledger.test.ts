import { ApiException, KubeConfig } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import {
  claimName,
  KubeLedger,
  toClaim,
  toObject,
  type ClaimsApi,
  type IPClaimObject,
} from '../../src/cluster/kube-ledger.js';
import { ConflictError, type Claim, type Owner } from '../../src/ipam/claim.js';
import { compilePool } from '../../src/ipam/pool.js';
import { v4, v6 } from '../cni/fixtures.js';

/**
 * IPClaims as the API server keeps them, for deterministic unit tests of the ledger's writes: names are
 * unique, every write moves the resourceVersion on, a delete honours its preconditions and a JSON patch
 * its `test` of the uid. Each call is recorded. Not a stand-in for the API server in any end-to-end test.
 */
class ClaimStore {
  readonly objects = new Map<string, IPClaimObject>();
  readonly calls: string[] = [];
  private version = 1;
  private uids = 0;

  private fail(code: number, message: string): never {
    throw new ApiException(code, message, JSON.stringify({ message }), {});
  }

  private stamp(obj: IPClaimObject): IPClaimObject {
    obj.metadata!.resourceVersion = String(++this.version);
    return structuredClone(obj);
  }

  readonly api = {
    createClusterCustomObject: async ({ body }: { body: IPClaimObject }) => {
      const name = body.metadata!.name!;
      this.calls.push(`create ${name}`);
      if (this.objects.has(name)) this.fail(409, `ipclaims "${name}" already exists`);
      const obj = structuredClone(body);
      obj.metadata = { ...obj.metadata, uid: `uid-${++this.uids}`, creationTimestamp: new Date() };
      this.objects.set(name, obj);
      return this.stamp(obj);
    },
    getClusterCustomObject: async ({ name }: { name: string }) => {
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
      const obj = this.objects.get(name) ?? this.fail(404, `ipclaims "${name}" not found`);
      for (const op of body) {
        if (op.op === 'test' && op.path === '/metadata/uid' && obj.metadata!.uid !== op.value)
          this.fail(422, 'test failed');
        if (op.op === 'add' && op.path === '/metadata/annotations')
          obj.metadata!.annotations = op.value as Record<string, string>;
        if (op.op === 'replace' && op.path === '/spec/owner')
          obj.spec.owner = op.value as IPClaimObject['spec']['owner'];
      }
      return this.stamp(obj);
    },
    deleteClusterCustomObject: async ({
      name,
      body,
    }: {
      name: string;
      body?: { preconditions?: { uid?: string; resourceVersion?: string } };
    }) => {
      this.calls.push(`delete ${name}`);
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
    listClusterCustomObject: async () => ({ items: [...this.objects.values()].map((o) => structuredClone(o)) }),
  } as unknown as ClaimsApi;
}

const web = compilePool({ metadata: { name: 'web' }, spec: { cidr: '10.0.0.0/24' } });
// Overlaps web: created at the same moment on two replicas, before either saw the other.
const web2 = compilePool({ metadata: { name: 'web2' }, spec: { ranges: ['10.0.0.0-10.0.0.9'] } });
const pod = (name: string): Owner => ({ kind: 'Pod', namespace: 'shop', name });

function ledgerOn(store: ClaimStore, pools = [web]): KubeLedger {
  const ledger = new KubeLedger(new KubeConfig(), undefined, undefined, store.api);
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
