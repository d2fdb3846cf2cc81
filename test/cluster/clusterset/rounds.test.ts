import { describe, expect, it, vi } from 'vitest';
import { ClusterSetRounds } from '../../../src/cluster/clusterset/rounds.js';
import type { Claim } from '../../../src/ipam/claim.js';
import { v4 } from '../../cni/fixtures.js';
import { db, setLedger } from './fixtures.js';

describe("the leader's ClusterSet rounds", () => {
  const peer = (ip: string, cluster: string): Claim => ({
    pool: 'shared',
    ip: v4(ip),
    owner: { kind: 'Pod', namespace: 'shop', name: ip, cluster },
    createdAt: 0,
    ref: ip,
    shared: true,
  });

  /** The rounds of member a, whose broker lists `members()` and whose clock reads `now()`, and peers' claims. */
  function departures(members: () => Set<string> | undefined, now: () => number, ...peers: Claim[]) {
    const { ledger, index, broker } = setLedger({ joined: true });
    (ledger.membership.members as ReturnType<typeof vi.fn>).mockImplementation(async () => members());
    for (const c of peers) index.add(c);
    return { rounds: new ClusterSetRounds(ledger, broker, 60_000, () => undefined, now), broker };
  }

  it('releases the claims of a cluster that left, only after the leave grace, and never on an unreadable broker', async () => {
    let now = 1_000_000;
    let members: Set<string> | undefined = new Set(['a']);
    const { rounds, broker } = departures(
      () => members,
      () => now,
      peer('10.99.0.7', 'b'),
      peer('10.99.0.8', 'c'),
    );
    members = new Set(['a', 'c']);
    await rounds.run();
    now += 59_000;
    await rounds.run();
    expect(broker.release).not.toHaveBeenCalled();
    // The broker cannot be read for a while: nothing is judged, and the count goes on.
    members = undefined;
    now += 5_000;
    await rounds.run();
    expect(broker.release).not.toHaveBeenCalled();
    members = new Set(['a', 'c']);
    await rounds.run();
    expect(broker.release.mock.calls.map(([c]) => c.ip.toString())).toEqual(['10.99.0.7']);
  });

  it('starts the count again when the cluster comes back', async () => {
    let now = 0;
    let members = new Set(['a']);
    const { rounds, broker } = departures(
      () => members,
      () => now,
      peer('10.99.0.7', 'b'),
    );
    await rounds.run();
    now = 50_000;
    members = new Set(['a', 'b']);
    await rounds.run();
    now = 70_000;
    members = new Set(['a']);
    await rounds.run();
    expect(broker.release).not.toHaveBeenCalled();
  });

  it("promises this cluster's shared ordinals to the member its StatefulSet names, and to no one else", async () => {
    const { ledger, index, broker } = setLedger({ joined: true }, new Set(['a', 'b']));
    const mine: Claim = { pool: 'shared', ip: v4('10.99.0.2'), owner: db(0), createdAt: 0, ref: 'm', shared: true };
    const local: Claim = { pool: 'own', ip: v4('10.1.0.2'), owner: db(1), createdAt: 0, ref: 'l' };
    index.add(mine);
    index.add(local);
    index.add({ ...peer('10.99.0.3', 'b'), owner: db(2, 'b') });
    const to = new Map([['shop/db', 'b']]);
    const rounds = new ClusterSetRounds(ledger, broker, 60_000, (ns, name) => to.get(`${ns}/${name}`));
    await rounds.run();
    expect(broker.promise.mock.calls).toEqual([[mine, 'b']]);
    // A name that is no member, or this cluster itself, is no handover.
    broker.promise.mockClear();
    to.set('shop/db', 'zz');
    await rounds.run();
    to.set('shop/db', 'a');
    await rounds.run();
    expect(broker.promise).not.toHaveBeenCalled();
  });

  it('releases at the very end of the leave grace, and never this cluster’s own claims', async () => {
    let now = 0;
    const own: Claim = { ...peer('10.99.0.9', 'x'), owner: { kind: 'Pod', namespace: 'shop', name: 'mine' } };
    const { rounds, broker } = departures(
      () => new Set(['a']),
      () => now,
      peer('10.99.0.7', 'b'),
      own,
    );
    await rounds.run();
    now = 60_000;
    await rounds.run();
    expect(broker.release.mock.calls.map(([c]) => c.ip.toString())).toEqual(['10.99.0.7']);
  });

  it('judges nothing of the set while this cluster is no member in good standing', async () => {
    let now = 0;
    const { ledger, index, broker } = setLedger({ joined: false, why: 'taken' }, new Set(['a']));
    index.add(peer('10.99.0.7', 'b'));
    const rounds = new ClusterSetRounds(
      ledger,
      broker,
      60_000,
      () => 'b',
      () => now,
    );
    await rounds.run();
    now = 120_000;
    await rounds.run();
    expect(ledger.membership.members).not.toHaveBeenCalled();
    expect(broker.release).not.toHaveBeenCalled();
  });

  it('promises a StatefulSet’s ordinal once, and no pod’s claim', async () => {
    const { ledger, index, broker } = setLedger({ joined: true }, new Set(['a', 'b']));
    const promised: Claim = {
      pool: 'shared',
      ip: v4('10.99.0.2'),
      owner: db(0),
      createdAt: 0,
      ref: 'm',
      shared: true,
      handoverTo: 'b',
    };
    const pod: Claim = {
      pool: 'shared',
      ip: v4('10.99.0.3'),
      owner: { kind: 'Pod', namespace: 'shop', name: 'db' },
      createdAt: 0,
      ref: 'p',
      shared: true,
    };
    index.add(promised);
    index.add(pod);
    await new ClusterSetRounds(ledger, broker, 60_000, () => 'b').run();
    await new ClusterSetRounds(ledger, broker, 60_000, () => undefined).run();
    expect(broker.promise).not.toHaveBeenCalled();
  });
});
