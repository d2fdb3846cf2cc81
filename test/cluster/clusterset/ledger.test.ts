import { describe, expect, it } from 'vitest';
import { toClaim, toObject } from '../../../src/cluster/kube-ledger.js';
import { ClaimIndex } from '../../../src/ipam/claim-index.js';
import { ConflictError, type Claim, type Owner } from '../../../src/ipam/claim.js';
import { ClusterSetLedger } from '../../../src/cluster/clusterset/ledger.js';
import type { Membership } from '../../../src/cluster/clusterset/membership.js';
import type { KubeLedger } from '../../../src/cluster/kube-ledger.js';
import { v4 } from '../../cni/fixtures.js';
import { db, own, setLedger, shared } from './fixtures.js';

describe("a ClusterSet broker's IPClaims", () => {
  it('name the member cluster holding each, and read back as this cluster’s own or a peer’s', () => {
    const claim: Claim = { pool: 'shared', ip: v4('10.99.0.5'), owner: db(0), createdAt: 0 };
    const obj = toObject(claim, { cluster: 'a' });
    expect(obj.spec.cluster).toBe('a');
    expect(obj.metadata?.labels).toEqual({ 'netpin.io/pool': 'shared', 'netpin.io/cluster': 'a' });
    expect(obj.spec.owner).toEqual({ kind: 'StatefulSet', namespace: 'shop', name: 'db', ordinal: 0 });
    obj.metadata = { ...obj.metadata, uid: 'u', resourceVersion: '3', creationTimestamp: new Date(0) };
    expect(toClaim(obj, { cluster: 'a' })).toMatchObject({ owner: db(0), shared: true });
    expect(toClaim(obj, { cluster: 'b' })?.owner).toEqual(db(0, 'a'));
    // This cluster's own API server knows no cluster field.
    expect(toObject(claim).spec).not.toHaveProperty('cluster');
  });

  it('without a cluster, or with a handover, read as the broker says', () => {
    const obj = toObject({ pool: 'shared', ip: v4('10.99.0.5'), owner: db(0), createdAt: 0 }, { cluster: 'a' });
    expect(toClaim({ ...obj, spec: { ...obj.spec, cluster: undefined } }, { cluster: 'a' })).toBeUndefined();
    expect(toClaim({ ...obj, spec: { ...obj.spec, handoverTo: 'b' } }, { cluster: 'a' })?.handoverTo).toBe('b');
  });

  it("hold an address against this cluster's owner of the same name", () => {
    const index = new ClaimIndex();
    index.add({ pool: 'shared', ip: v4('10.99.0.5'), owner: db(0, 'b'), createdAt: 0, shared: true });
    expect(() => index.heldBy(v4('10.99.0.5'), db(0))).toThrow(ConflictError);
    expect(() => index.heldBy(v4('10.99.0.5'), db(0))).toThrow(
      '10.99.0.5 is held by StatefulSet shop/db (ordinal 0) in cluster b',
    );
    expect(index.claimsOf(db(0))).toEqual([]);
  });
});

describe('a member cluster’s ledger', () => {
  it('claims a shared pool’s address in the broker, and its own pool’s at home', async () => {
    const { ledger, local, broker } = setLedger({ joined: true });
    await ledger.claim(shared, v4('10.99.0.1'), db(0));
    await ledger.claim(own, v4('10.1.0.1'), db(0));
    expect(broker.claim).toHaveBeenCalledTimes(1);
    expect(local.claim).toHaveBeenCalledTimes(1);
  });

  it('refuses a shared pool, saying why, while this cluster is no member in good standing', () => {
    const why = 'the cluster id a is taken by another member of the ClusterSet (installation x)';
    const { ledger, broker } = setLedger({ joined: false, why });
    expect(() => ledger.claim(shared, v4('10.99.0.1'), db(0))).toThrow(
      `IPPool shared is shared by the ClusterSet, and ${why}`,
    );
    expect(broker.claim).not.toHaveBeenCalled();
  });

  it('never releases a peer’s claim, and hands over a promised one instead of freeing it', async () => {
    const { ledger, broker, local } = setLedger({ joined: true });
    const base = { pool: 'shared', ip: v4('10.99.0.5'), createdAt: 0, ref: 'u', shared: true } as const;
    expect(await ledger.release({ ...base, owner: db(0, 'b') })).toBe(false);
    expect(broker.release).not.toHaveBeenCalled();
    await ledger.release({ ...base, owner: db(0), handoverTo: 'b' });
    expect(broker.handOver).toHaveBeenCalledTimes(1);
    expect(broker.release).not.toHaveBeenCalled();
    await ledger.release({ ...base, owner: db(0) });
    expect(broker.release).toHaveBeenCalledTimes(1);
    await ledger.release({ pool: 'own', ip: v4('10.1.0.5'), owner: db(0), createdAt: 0, ref: 'v' });
    expect(local.release).toHaveBeenCalledTimes(1);
  });
});

describe('a StatefulSet handed over to this cluster', () => {
  it('is refused its shared ordinals while the cluster handing it over still holds them', async () => {
    const { ledger, index, broker } = setLedger({ joined: true });
    index.add({
      pool: 'shared',
      ip: v4('10.99.0.4'),
      owner: db(0, 'b'),
      createdAt: 0,
      ref: 'h',
      shared: true,
      handoverTo: 'a',
    });
    expect(() => ledger.claimNext(shared, 'ipv4', db(1))).toThrow(
      'StatefulSet shop/db is being handed over to this cluster from cluster b, which still holds 10.99.0.4',
    );
    // Another StatefulSet, or this cluster's own pool, is not held up.
    await ledger.claim(shared, v4('10.99.0.9'), { ...db(0), name: 'cache' });
    expect(broker.claim).toHaveBeenCalledTimes(1);
  });
});

describe('a member cluster’s ledger, claim by claim', () => {
  const sharedClaim = (owner = db(0)): Claim => ({
    pool: 'shared',
    ip: v4('10.99.0.5'),
    owner,
    createdAt: 0,
    ref: 'u',
    shared: true,
  });
  const ownClaim: Claim = { pool: 'own', ip: v4('10.1.0.5'), owner: db(0), createdAt: 0, ref: 'v' };

  it('needs one index for both stores', () => {
    const { local, broker } = setLedger({ joined: true });
    const other = { ...broker, index: new ClaimIndex() };
    expect(
      () => new ClusterSetLedger(local as unknown as KubeLedger, other as unknown as KubeLedger, {} as Membership),
    ).toThrow('a ClusterSet ledger needs one index for both stores');
  });

  it('renews and names shared claims in the broker and its own at home', async () => {
    const { ledger, local, broker } = setLedger({ joined: true });
    await ledger.renew(sharedClaim());
    await ledger.bind(sharedClaim(), { name: 'p', uid: 'x' });
    expect([broker.renew.mock.calls.length, broker.bind.mock.calls.length]).toEqual([1, 1]);
    await ledger.renew(ownClaim);
    await ledger.bind(ownClaim, { name: 'p', uid: 'x' });
    expect([local.renew.mock.calls.length, local.bind.mock.calls.length]).toEqual([1, 1]);
  });

  it('out of good standing, renews no shared claim and names none, but its own as ever', async () => {
    const { ledger, local, broker } = setLedger({ joined: false, why: 'the broker could not be reached' });
    await expect(ledger.renew(sharedClaim())).rejects.toThrow('the broker could not be reached');
    await ledger.bind(sharedClaim(), { name: 'p', uid: 'x' });
    expect([broker.renew.mock.calls.length, broker.bind.mock.calls.length]).toEqual([0, 0]);
    await ledger.renew(ownClaim);
    await ledger.bind(ownClaim, { name: 'p', uid: 'x' });
    expect([local.renew.mock.calls.length, local.bind.mock.calls.length]).toEqual([1, 1]);
  });

  it('promises nothing out of good standing', () => {
    const { ledger, broker } = setLedger({ joined: false, why: 'taken' });
    expect(() => ledger.promise(sharedClaim(), 'b')).toThrow('taken');
    expect(broker.promise).not.toHaveBeenCalled();
  });

  it('hands out shared claims held already while this installation holds the id, the broker out of reach or not', () => {
    const why = 'the broker could not be reached';
    expect(() => setLedger({ joined: false, why }, undefined, true).ledger.checkHeld([sharedClaim()])).not.toThrow();
    const refused = setLedger({ joined: false, why }, undefined, false).ledger;
    expect(() => refused.checkHeld([sharedClaim()])).toThrow(why);
    expect(() => refused.checkHeld([ownClaim])).not.toThrow();
  });

  it('holds up only the StatefulSet handed over, of that namespace and name, and only when it comes to this cluster', async () => {
    const promised = (to: string, owner: Owner): Claim => ({ ...sharedClaim(owner), handoverTo: to });
    for (const held of [
      promised('c', db(0, 'b')),
      promised('a', { ...db(0, 'b'), name: 'cache' }),
      promised('a', { ...db(0, 'b'), namespace: 'other' }),
      promised('a', { kind: 'Pod', namespace: 'shop', name: 'db', cluster: 'b' }),
    ]) {
      const { ledger, index, broker } = setLedger({ joined: true });
      index.add(held);
      await ledger.claim(shared, v4('10.99.0.9'), db(1));
      expect(broker.claim).toHaveBeenCalledTimes(1);
    }
    // A pod named like the StatefulSet is not held up by its handover.
    const { ledger, index, broker } = setLedger({ joined: true });
    index.add(promised('a', db(0, 'b')));
    await ledger.claim(shared, v4('10.99.0.9'), { kind: 'Pod', namespace: 'shop', name: 'db' });
    expect(broker.claim).toHaveBeenCalledTimes(1);
  });
});
