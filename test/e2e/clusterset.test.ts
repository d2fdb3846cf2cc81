// A netpin ClusterSet on three real control planes: members `a` and `b`, each with its own netpin,
// and a broker (an API server with netpin's CRDs and the namespace netpin-clusterset) whose IPPool
// `shared` both members draw from. Claims of the shared pool are IPClaims in the broker: creating one
// decides between the clusters as it decides between replicas. Nothing schedules the pods, so they
// stay Pending; what is proven is what each netpin admits and what the broker keeps.
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import {
  CoordinationV1Api,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
  type V1StatefulSet,
} from '@kubernetes/client-node';
import {
  apiMessage,
  createNamespace,
  createPool,
  podsWithPrefix,
  waitFor,
  type Clients,
} from '../../harness/cluster.js';
import { startClusterSet, type ClusterSet, type ClusterSetMember } from '../../harness/clusterset.js';
import { runCommand, type Run } from '../../harness/process.js';
import { repoPath } from '../../harness/repo.js';
import { postReview, startNetpin } from '../../harness/netpin.js';
import { podCreate } from '../../harness/review-bodies.js';
import { MEMBERS_NAMESPACE } from '../../src/cluster/clusterset/membership.js';
import { CLUSTER_LABEL } from '../../src/cluster/kube-ledger/ipclaim.js';

const NS = 'shop';
const SHARED = 'shared';
// 30 addresses (a cidr leaves out its network and broadcast addresses): both members fill it in a moment.
const SHARED_CIDR = '10.99.0.0/27';
const SHARED_SIZE = 30;
const GRACE_SECONDS = 5;
const LEAVE_GRACE_SECONDS = 5;
// The reconciler's round (src/server/kube-backend.ts): the ClusterSet's rounds run after each sweep.
const ROUND_MS = 5_000;

const spec = { containers: [{ name: 'app', image: 'registry.example/app:1' }], terminationGracePeriodSeconds: 0 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Member extends ClusterSetMember<'a' | 'b'> {
  /** The member's own pool, kept in its own API server. */
  localPool: string;
  localPrefix: string;
}

interface BrokerClaim {
  name: string;
  labels: Record<string, string>;
  spec: {
    pool: string;
    ip: string;
    cluster?: string;
    handoverTo?: string;
    owner: { kind: string; namespace: string; name?: string; ordinal?: number };
  };
}

let set: ClusterSet<'a' | 'b'>;
let bc: Clients;
/** The broker's member Leases. */
let leases: CoordinationV1Api;
const members = {} as Record<'a' | 'b', Member>;
let a: Member;
let b: Member;

/** Each member's own pool, beside the shared one. */
const localPool = (id: string) => `local-${id}`;
const localPrefix = (index: number) => `10.98.${index + 1}.`;

async function brokerClaims(): Promise<BrokerClaim[]> {
  const list = (await bc.custom.listClusterCustomObject({
    group: 'netpin.io',
    version: 'v1alpha1',
    plural: 'ipclaims',
  })) as {
    items: Array<{ metadata: { name: string; labels?: Record<string, string> }; spec: BrokerClaim['spec'] }>;
  };
  return list.items.map((i) => ({ name: i.metadata.name, labels: i.metadata.labels ?? {}, spec: i.spec }));
}

function pod(name: string, annotations: Record<string, string>, labels: Record<string, string> = {}): V1Pod {
  return { metadata: { name, annotations, labels }, spec } as V1Pod;
}

/** Creates a pod through the member's API server (and so its webhooks): the pod, or the refusal's message. */
async function create(m: Member, body: V1Pod): Promise<{ pod: V1Pod } | { refused: string }> {
  try {
    return { pod: await m.c.core.createNamespacedPod({ namespace: NS, body }) };
  } catch (e) {
    return { refused: apiMessage(e) };
  }
}

const allocated = (p: V1Pod) => p.metadata?.annotations?.['netpin.io/allocated'];
const inShared = (ip: string | undefined) => ip !== undefined && ip.startsWith('10.99.0.');

/** The shared addresses the pods of both members use: address -> `<cluster>/<pod>` of each pod using it. */
async function sharedInUse(): Promise<Map<string, string[]>> {
  const users = new Map<string, string[]>();
  for (const m of [a, b]) {
    for (const p of await podsWithPrefix(m.c, NS, '')) {
      const ip = allocated(p);
      if (inShared(ip)) users.set(ip!, [...(users.get(ip!) ?? []), `${m.id}/${p.metadata!.name!}`]);
    }
  }
  return users;
}

/**
 * No shared address held twice: each is used by one pod of one cluster, and the broker's claims of bare
 * pods are exactly the pods' addresses, each naming the cluster whose pod uses it (StatefulSets'
 * reservations outlive their pods, so they are checked where they are kept, not here).
 */
async function noAddressHeldTwice(): Promise<void> {
  const settled = await waitFor(
    "the broker's claims of bare pods to equal the pods' shared addresses",
    async () => {
      const users = await sharedInUse();
      const claims = (await brokerClaims()).filter((x) => x.spec.owner.kind === 'Pod');
      const byIp = new Map(claims.map((x) => [x.spec.ip, x]));
      // The StatefulSet's pods hold their addresses by its reservations, not by claims of pods.
      const podIps = [...users.keys()].filter((ip) => users.get(ip)!.every((u) => !/\/db-\d+$/.test(u))).sort();
      const claimIps = [...byIp.keys()].sort();
      return JSON.stringify(podIps) === JSON.stringify(claimIps) ? { users, byIp } : undefined;
    },
    (GRACE_SECONDS + 20) * 1000,
    500,
  );
  for (const [ip, who] of settled.users) {
    expect(who, `${ip} is used by more than one pod`).toHaveLength(1);
    const claim = settled.byIp.get(ip);
    if (claim) expect(`${claim.spec.cluster}/${claim.spec.owner.name}`).toBe(who[0]);
  }
}

/** Deletes the member's pods with this label, and waits until the broker holds no claim of theirs. */
async function deletePods(m: Member, selector: string): Promise<void> {
  const gone = (await m.c.core.listNamespacedPod({ namespace: NS, labelSelector: selector })).items.map(
    (p) => p.metadata!.name!,
  );
  await m.c.core.deleteCollectionNamespacedPod({ namespace: NS, labelSelector: selector, gracePeriodSeconds: 0 });
  await waitFor(
    `the broker to release the claims of ${m.id}'s pods ${selector}`,
    async () =>
      !(await brokerClaims()).some(
        (x) => x.spec.cluster === m.id && x.spec.owner.kind === 'Pod' && gone.includes(x.spec.owner.name ?? ''),
      ),
    (GRACE_SECONDS + 20) * 1000,
    300,
  );
}

beforeAll(async () => {
  const started = performance.now();
  set = await startClusterSet({
    members: ['a', 'b'],
    sharedPool: SHARED,
    sharedCidr: SHARED_CIDR,
    namespace: NS,
    claimGraceSeconds: GRACE_SECONDS,
    leaveGraceSeconds: LEAVE_GRACE_SECONDS,
    prepareMember: ({ id, index, c }) => createPool(c, localPool(id), { cidr: `${localPrefix(index)}0/28` }),
  });
  for (const [i, m] of [set.members.a, set.members.b].entries())
    members[m.id] = { ...m, localPool: localPool(m.id), localPrefix: localPrefix(i) };
  ({ a, b } = members);
  bc = set.broker.c;
  leases = bc.kc.makeApiClient(CoordinationV1Api);
  // Both joined: their Leases in the broker, each held by its installation (the uid of its kube-system).
  const joined = await leases.listNamespacedLease({ namespace: MEMBERS_NAMESPACE });
  expect(joined.items).toHaveLength(2);
  for (const m of [a, b]) {
    const uid = (await m.c.core.readNamespace({ name: 'kube-system' })).metadata!.uid!;
    expect(joined.items.find((l) => l.metadata!.name === m.id)?.spec?.holderIdentity).toBe(uid);
  }
  console.log(`ClusterSet of 2 members and a broker up in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}, 240_000);

afterAll(async () => {
  await set?.stop();
});

beforeEach(({ onTestFailed }) => {
  onTestFailed(() => {
    for (const m of [a, b]) console.log(`--- netpin ${m?.id}:\n${m?.netpin?.output().slice(-8_000)}`);
  });
});

describe('a ClusterSet of two members sharing an IPPool through a broker', () => {
  it('gives one fixed address asked for at the same moment in both clusters to exactly one of them', async () => {
    const ask = (m: Member) => create(m, pod('one', { 'netpin.io/ip': '10.99.0.5' }, { scenario: 'race' }));
    const [inA, inB] = await Promise.all([ask(a), ask(b)]);
    const results = { a: inA, b: inB };
    const winners = (['a', 'b'] as const).filter((id) => 'pod' in results[id]);
    expect(winners, JSON.stringify(results)).toHaveLength(1);
    const winner = winners[0]!;
    const loser = winner === 'a' ? 'b' : 'a';
    const refusal = results[loser] as { refused: string };
    expect(refusal.refused).toContain(`10.99.0.5 is held by pod ${NS}/one in cluster ${winner}`);
    expect(allocated((results[winner] as { pod: V1Pod }).pod)).toBe('10.99.0.5');

    const claims = (await brokerClaims()).filter((x) => x.spec.ip === '10.99.0.5');
    expect(claims).toHaveLength(1);
    expect(claims[0]!.spec.cluster).toBe(winner);
    expect(claims[0]!.labels[CLUSTER_LABEL]).toBe(winner);
    // Nothing of the shared pool is kept in either member's own API server.
    for (const m of [a, b]) {
      const own = (await m.c.custom.listClusterCustomObject({
        group: 'netpin.io',
        version: 'v1alpha1',
        plural: 'ipclaims',
      })) as { items: unknown[] };
      expect(own.items).toHaveLength(0);
    }
    // The loser names the winner's claim from its index too, now that its watch of the broker has it.
    const again = await waitFor('the loser to refuse from its index', async () => {
      const r = await create(members[loser], pod('two', { 'netpin.io/ip': '10.99.0.5' }));
      return 'refused' in r ? r.refused : undefined;
    });
    expect(again).toContain(`in cluster ${winner}`);
    console.log(`race for 10.99.0.5: won by ${winner}; ${loser} refused with: ${refusal.refused}`);
  });

  it('fills the shared pool from both clusters at once without giving any address twice', async () => {
    const before = (await brokerClaims()).length;
    const PER_CLUSTER = 24;
    const started = performance.now();
    const results = await Promise.all(
      // Interleaved: a's and b's requests in flight together.
      Array.from({ length: PER_CLUSTER }, (_, i) =>
        [a, b].map((m) =>
          create(m, pod(`fill-${i}`, { 'netpin.io/pool': SHARED }, { scenario: 'fill' })).then((r) => ({ m: m.id, r })),
        ),
      ).flat(),
    );
    const ms = performance.now() - started;
    onTestFinished(() => Promise.all([deletePods(a, 'scenario=fill'), deletePods(b, 'scenario=fill')]).then(() => {}));
    const admitted = results.flatMap(({ m, r }) => ('pod' in r ? [{ m, ip: allocated(r.pod)! }] : []));
    const refused = results.flatMap(({ r }) => ('refused' in r ? [r.refused] : []));
    expect(admitted).toHaveLength(SHARED_SIZE - before);
    expect(new Set(admitted.map((x) => x.ip)).size).toBe(admitted.length);
    for (const x of admitted) expect(inShared(x.ip)).toBe(true);
    expect(refused).toHaveLength(2 * PER_CLUSTER - admitted.length);
    for (const r of refused) expect(r).toContain(`IPPool ${SHARED} has no free IPv4 address`);

    const claims = await brokerClaims();
    expect(claims).toHaveLength(SHARED_SIZE);
    for (const x of admitted) {
      const claim = claims.find((cl) => cl.spec.ip === x.ip);
      expect(claim?.spec.cluster, x.ip).toBe(x.m);
    }
    await noAddressHeldTwice();
    const perCluster = (id: string) => admitted.filter((x) => x.m === id).length;
    console.log(
      `shared pool filled in ${ms.toFixed(0)} ms: ${perCluster('a')} addresses to a, ${perCluster('b')} to b, ${refused.length} refused`,
    );
  });

  it("refuses the shared pool in band while the broker is down, keeps serving the member's own pool, and resumes", async () => {
    await set.broker.cp.stopApiserver();
    let down: Array<{
      m: Member;
      shared: { pod: V1Pod } | { refused: string };
      own: { pod: V1Pod } | { refused: string };
    }>;
    try {
      down = await Promise.all(
        [a, b].map(async (m) => ({
          m,
          shared: await create(m, pod(`down-shared-${m.id}`, { 'netpin.io/pool': SHARED }, { scenario: 'outage' })),
          own: await create(m, pod(`down-own-${m.id}`, { 'netpin.io/pool': m.localPool }, { scenario: 'outage' })),
        })),
      );
    } finally {
      await set.broker.cp.startApiserver();
    }
    for (const { m, shared, own } of down) {
      expect('refused' in shared, `${m.id}: ${JSON.stringify(shared)}`).toBe(true);
      expect((shared as { refused: string }).refused).toMatch(/ClusterSet's broker/);
      expect('pod' in own, `${m.id}: ${JSON.stringify(own)}`).toBe(true);
      expect(allocated((own as { pod: V1Pod }).pod)).toMatch(new RegExp(`^${m.localPrefix.replaceAll('.', '\\.')}`));
      console.log(`broker down, ${m.id} refused the shared pool with: ${(shared as { refused: string }).refused}`);
    }

    const resumed = performance.now();
    for (const m of [a, b]) {
      await waitFor(
        `${m.id} to claim from the shared pool again`,
        async () => {
          const r = await create(m, pod(`up-shared-${m.id}`, { 'netpin.io/pool': SHARED }, { scenario: 'outage' }));
          return 'pod' in r;
        },
        60_000,
        500,
      );
    }
    console.log(
      `shared claims resumed ${((performance.now() - resumed) / 1000).toFixed(1)} s after the broker was back`,
    );
    await noAddressHeldTwice();
  });

  it('refuses to join under an id another installation holds, and then neither serves nor releases its claims', async () => {
    // A claim of a's for the duplicate to get wrong, if it took a's claims for its own.
    const held = await create(a, pod('held-by-a', { 'netpin.io/pool': SHARED }, { scenario: 'dup' }));
    expect('pod' in held).toBe(true);
    const heldIp = allocated((held as { pod: V1Pod }).pod)!;
    const aClaimsBefore = (await brokerClaims()).filter((x) => x.spec.cluster === 'a').map((x) => x.name);

    // Another installation (cluster b's API server) that calls itself a: with a reconciler of its own.
    await createNamespace(b.c, 'dup-lease');
    const dup = await startNetpin({
      kubeconfig: b.cp.kubeconfigPath,
      certDir: join(b.cp.dir, 'dup-netpin-certs'),
      claimGraceSeconds: GRACE_SECONDS,
      leaseNamespace: 'dup-lease',
      extraArgs: set.joinArgs('a'),
    });
    try {
      const answer = await waitFor('the duplicate to answer', async () => {
        const r = await postReview(
          dup,
          '/mutate',
          podCreate({ namespace: NS, name: 'dup-0', annotations: { 'netpin.io/pool': SHARED } }),
        );
        return r.status === 200 ? r.json.response : undefined;
      });
      expect(answer.allowed).toBe(false);
      expect(answer.status.message).toContain('the cluster id a is taken by another member of the ClusterSet');
      // Asked for a's own address by the owner a's claim names: not renewed, not given.
      const same = await postReview(
        dup,
        '/mutate',
        podCreate({ namespace: NS, name: 'held-by-a', annotations: { 'netpin.io/pool': SHARED } }),
      );
      expect(same.json.response.allowed).toBe(false);
      expect(same.json.response.status.message).toContain('the cluster id a is taken by another member');
      // Its own pool is still served.
      const own = await postReview(
        dup,
        '/mutate',
        podCreate({ namespace: NS, name: 'dup-own', annotations: { 'netpin.io/pool': b.localPool } }),
      );
      expect(own.json.response.allowed, JSON.stringify(own.json.response)).toBe(true);

      // Leading its own reconciler for several rounds past the grace: a's claims (whose pods it cannot see) stay.
      await sleep(GRACE_SECONDS * 1000 + 3 * ROUND_MS);
      const aClaimsAfter = (await brokerClaims()).filter((x) => x.spec.cluster === 'a').map((x) => x.name);
      expect(aClaimsAfter.sort(), dup.output().slice(-4_000)).toEqual(aClaimsBefore.sort());
      expect(aClaimsAfter).toContain(heldIp);
    } finally {
      await dup.stop();
    }
    // The Lease is still a's installation's.
    const lease = await leases.readNamespacedLease({ name: 'a', namespace: MEMBERS_NAMESPACE });
    expect(lease.spec?.holderIdentity).toBe((await a.c.core.readNamespace({ name: 'kube-system' })).metadata!.uid);
  });

  it("hands a StatefulSet's ordinal addresses to the member named in netpin.io/handover-to", async () => {
    const sts: V1StatefulSet = {
      metadata: { name: 'db' },
      spec: {
        replicas: 2,
        serviceName: 'db',
        podManagementPolicy: 'Parallel',
        selector: { matchLabels: { app: 'db' } },
        template: { metadata: { labels: { app: 'db' }, annotations: { 'netpin.io/pool': SHARED } }, spec },
      },
    };
    await a.c.apps.createNamespacedStatefulSet({ namespace: NS, body: sts });
    const inA = await waitFor('db-0 and db-1 in a', async () => {
      const pods = await podsWithPrefix(a.c, NS, 'db-');
      return pods.length === 2 && pods.every((p) => allocated(p)) ? pods : undefined;
    });
    const ordinalsInA = Object.fromEntries(inA.map((p) => [p.metadata!.name!, allocated(p)!]));
    const reservations = async () =>
      (await brokerClaims()).filter((x) => x.spec.owner.kind === 'StatefulSet' && x.spec.owner.name === 'db');
    expect((await reservations()).map((x) => x.spec.cluster)).toEqual(['a', 'a']);

    // kubectl annotate statefulset db netpin.io/handover-to=b
    await a.c.apps.patchNamespacedStatefulSet(
      { name: 'db', namespace: NS, body: { metadata: { annotations: { 'netpin.io/handover-to': 'b' } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    const promised = performance.now();
    await waitFor(
      'both reservations promised to b',
      async () => {
        const r = await reservations();
        return r.length === 2 && r.every((x) => x.spec.handoverTo === 'b' && x.spec.cluster === 'a');
      },
      4 * ROUND_MS,
      300,
    );
    const promisedIn = performance.now() - promised;

    // Promised, not yet handed over: a's pods still run, and b may not take the addresses.
    const taken = await create(b, pod('thief', { 'netpin.io/ip': ordinalsInA['db-0']! }));
    expect('refused' in taken && taken.refused).toContain(`is held by StatefulSet ${NS}/db (ordinal 0) in cluster a`);

    // The garbage collector deletes the pods (unscheduled pods go at once).
    await a.c.apps.deleteNamespacedStatefulSet({ name: 'db', namespace: NS, propagationPolicy: 'Background' });
    await waitFor('db pods gone in a', async () => (await podsWithPrefix(a.c, NS, 'db-', true)).length === 0);
    const deleted = performance.now();
    const handed = await waitFor(
      'both reservations handed to b',
      async () => {
        const r = await reservations();
        return r.length === 2 && r.every((x) => x.spec.cluster === 'b' && x.spec.handoverTo === undefined)
          ? r
          : undefined;
      },
      (GRACE_SECONDS + 20) * 1000,
      300,
    );
    const handedIn = performance.now() - deleted;
    for (const x of handed) expect(x.labels[CLUSTER_LABEL]).toBe('b');

    // b keeps them, a claim as new as the handover, for its claim grace: the StatefulSet is made there meanwhile.
    await sleep(2_000);
    expect((await reservations()).map((x) => x.spec.cluster)).toEqual(['b', 'b']);
    await b.c.apps.createNamespacedStatefulSet({ namespace: NS, body: sts });
    const inB = await waitFor('db-0 and db-1 in b', async () => {
      const pods = await podsWithPrefix(b.c, NS, 'db-');
      return pods.length === 2 && pods.every((p) => allocated(p)) ? pods : undefined;
    });
    expect(Object.fromEntries(inB.map((p) => [p.metadata!.name!, allocated(p)!]))).toEqual(ordinalsInA);
    expect(await reservations()).toHaveLength(2);
    console.log(
      `handover of db: promised in ${(promisedIn / 1000).toFixed(1)} s, handed to b ${(handedIn / 1000).toFixed(1)} s after its pods were gone; b's db got ${JSON.stringify(ordinalsInA)}`,
    );
  });

  it("keeps a stopped member's claims while its Lease stands, and releases them once it has left for the leave grace", async () => {
    for (const i of [0, 1]) {
      const r = await create(b, pod(`leaving-${i}`, { 'netpin.io/pool': SHARED }, { scenario: 'leave' }));
      expect('pod' in r, JSON.stringify(r)).toBe(true);
    }
    const bClaims = async () => (await brokerClaims()).filter((x) => x.spec.cluster === 'b');
    const held = (await bClaims()).map((x) => x.name).sort();
    expect(held.length).toBeGreaterThanOrEqual(2);
    const aHeld = (await brokerClaims())
      .filter((x) => x.spec.cluster === 'a')
      .map((x) => x.name)
      .sort();

    // A partition: b's netpin is gone, its Lease stays. Nothing of b's is released, however long.
    await b.netpin.stop();
    await sleep(LEAVE_GRACE_SECONDS * 1000 + 2 * ROUND_MS);
    expect((await bClaims()).map((x) => x.name).sort()).toEqual(held);

    // b leaves: its Lease is deleted, and nothing makes it again.
    await leases.deleteNamespacedLease({ name: 'b', namespace: MEMBERS_NAMESPACE });
    const left = performance.now();
    await sleep(LEAVE_GRACE_SECONDS * 1000 - 1_500);
    expect((await bClaims()).map((x) => x.name).sort()).toEqual(held);
    await waitFor(
      'a to release the claims of b, which left',
      async () => (await bClaims()).length === 0,
      4 * ROUND_MS,
      300,
    );
    const releasedAfter = performance.now() - left;
    expect(releasedAfter).toBeGreaterThanOrEqual(LEAVE_GRACE_SECONDS * 1000);
    // a's own claims are untouched.
    expect(
      (await brokerClaims())
        .filter((x) => x.spec.cluster === 'a')
        .map((x) => x.name)
        .sort(),
    ).toEqual(aHeld);
    console.log(
      `b left: its ${held.length} claims released ${(releasedAfter / 1000).toFixed(1)} s after its Lease was deleted (leave grace ${LEAVE_GRACE_SECONDS} s)`,
    );
  });

  it('netpin clusterset: shows the members and who holds the shared pool, and takes a cluster out at once with --now', async () => {
    // A member c that joined and holds an address, and whose netpin no longer runs.
    await leases.createNamespacedLease({
      namespace: MEMBERS_NAMESPACE,
      body: { metadata: { name: 'c' }, spec: { holderIdentity: 'uid-of-c' } },
    });
    await bc.custom.createClusterCustomObject({
      group: 'netpin.io',
      version: 'v1alpha1',
      plural: 'ipclaims',
      body: {
        apiVersion: 'netpin.io/v1alpha1',
        kind: 'IPClaim',
        metadata: { name: '10.99.0.30', labels: { 'netpin.io/pool': SHARED, [CLUSTER_LABEL]: 'c' } },
        spec: { pool: SHARED, ip: '10.99.0.30', cluster: 'c', owner: { kind: 'Pod', namespace: NS, name: 'gone' } },
      },
    });
    const status = await cli(['clusterset', 'status', '--broker-kubeconfig', set.broker.kubeconfigPath]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain('c  uid-of-c');
    expect(status.stdout).toMatch(new RegExp(`^${SHARED}  10\\.99\\.0\\.1-10\\.99\\.0\\.30  c  1$`, 'm'));

    const leave = await cli([
      'clusterset',
      'leave',
      '--broker-kubeconfig',
      set.broker.kubeconfigPath,
      '--cluster',
      'c',
      '--now',
    ]);
    expect(leave.code, leave.stderr).toBe(0);
    expect(leave.stdout).toBe('cluster c left the ClusterSet; 1 of its claims released\n');
    // At once, not after the leave grace: the Lease and the claim are gone when the command returns.
    await expect(leases.readNamespacedLease({ name: 'c', namespace: MEMBERS_NAMESPACE })).rejects.toThrow();
    expect((await brokerClaims()).filter((x) => x.spec.cluster === 'c')).toEqual([]);
  });
});

/** The built netpin CLI, as an operator runs it. */
function cli(args: string[]): Promise<Run> {
  return runCommand(process.execPath, [repoPath('dist/src/cli/main.js'), ...args], {
    PATH: process.env.PATH,
    NO_PROXY: '127.0.0.1,localhost',
  });
}
