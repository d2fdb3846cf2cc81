// Fixed addresses on Cilium: an IPPool with spec.cni.cilium.pinned makes netpin pick every address
// and give each one to Cilium as a CiliumPodIPPool of that one address, which netpin keeps in the API
// server, with Cilium's real CRD from its Go module. Nothing runs the pods or Cilium here: what is
// proven is what netpin keeps in the API server, and that Cilium's CRD accepts it. netpin runs as the
// chart's ServiceAccount, with the chart's RBAC and admission policy: they must allow all it does.
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoordinationV1Api, type V1Pod } from '@kubernetes/client-node';
import { chartIdentity, type ChartIdentity } from '../../harness/chart-identity.js';
import { applyCiliumPodIPPoolCrd } from '../../harness/cni-crds.js';
import {
  applyCrds,
  clients,
  createNamespace,
  createPool,
  listClaims,
  podsWithPrefix,
  refusal,
  registerWebhooks,
  waitFor,
  type Clients,
} from '../../harness/cluster.js';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.js';
import { startNetpin, type Netpin } from '../../harness/netpin.js';

const NS = 'shop';
const GRACE_SECONDS = 3;
// The reconciler's interval: the leader syncs the pools after each sweep.
const ROUND_MS = 5_000;
// ciliumPinnedPools.keepYoungMs: a pool no claim needs stays this long after its creation.
const KEEP_YOUNG_MS = 60_000;
const STS = 'db';
const MANAGED = { 'app.kubernetes.io/managed-by': 'netpin' };
const POOLS = { group: 'cilium.io', version: 'v2alpha1', plural: 'ciliumpodippools' };

let cp: ControlPlane;
let c: Clients;
let chart: ChartIdentity;
let netpin: Netpin | undefined;

const spec = { containers: [{ name: 'app', image: 'registry.example/app:1' }], terminationGracePeriodSeconds: 0 };

interface CiliumPool {
  metadata: {
    name: string;
    uid: string;
    resourceVersion: string;
    creationTimestamp: string;
    labels?: Record<string, string>;
  };
  spec: Record<string, unknown>;
}

/** The CiliumPodIPPool of that name, as the API server holds it; undefined when there is none. */
async function ciliumPool(name: string): Promise<CiliumPool | undefined> {
  try {
    return (await c.custom.getClusterCustomObject({ ...POOLS, name })) as CiliumPool;
  } catch (e) {
    if ((e as { code?: number }).code === 404) return undefined;
    throw e;
  }
}

async function createCiliumPool(name: string, poolSpec: Record<string, unknown>): Promise<CiliumPool> {
  return (await c.custom.createClusterCustomObject({
    ...POOLS,
    body: { apiVersion: 'cilium.io/v2alpha1', kind: 'CiliumPodIPPool', metadata: { name }, spec: poolSpec },
  })) as CiliumPool;
}

const poolName = (address: string) => `netpin-${address.replaceAll(':', '-')}`;

/** The spec netpin gives the pool of one address: that address alone, as a block of one. */
function pinnedSpec(address: string): Record<string, unknown> {
  const v6 = address.includes(':');
  const bits = v6 ? 128 : 32;
  return {
    [v6 ? 'ipv6' : 'ipv4']: { cidrs: [`${address}/${bits}`], maskSize: bits },
    allowFirstIP: false,
    allowLastIP: false,
  };
}

/** uid and resourceVersion: equal only if the object was neither deleted nor written since. */
const identity = (p: CiliumPool | undefined) => p && `${p.metadata.uid}@${p.metadata.resourceVersion}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * How often the netpin serving now has replaced a pool it found changed (its warning). The API server
 * keeps the resourceVersion on a replace that changes nothing, so only netpin can tell of a needless one.
 */
const putBacks = () => netpin!.output().split('put back a resource changed by hand').length - 1;

/** The StatefulSet's n pods, each with its address, by ordinal. */
async function statefulSetPods(n: number, not: ReadonlySet<string> = new Set()): Promise<V1Pod[]> {
  return waitFor(
    `${n} pods of ${STS}`,
    async () => {
      const pods = (await podsWithPrefix(c, NS, `${STS}-`)).filter(
        (p) => p.metadata?.annotations?.['netpin.io/allocated'] && !not.has(p.metadata.uid!),
      );
      if (pods.length !== n) return undefined;
      return pods.sort((a, b) => a.metadata!.name!.localeCompare(b.metadata!.name!));
    },
    60_000,
    250,
  );
}

const allocated = (p: V1Pod) => p.metadata!.annotations!['netpin.io/allocated']!;

/** The addresses of the StatefulSet's ordinals, as its claims hold them, by ordinal. */
async function ordinalAddresses(): Promise<string[]> {
  const claims = (await listClaims(c, 'pin')).filter((x) => x.owner.kind === 'StatefulSet' && x.owner.name === STS);
  return claims.sort((a, b) => a.owner.ordinal! - b.owner.ordinal!).map((x) => x.ip);
}

async function scale(replicas: number): Promise<void> {
  await c.apps.replaceNamespacedStatefulSetScale({
    name: STS,
    namespace: NS,
    body: { metadata: { name: STS, namespace: NS }, spec: { replicas } },
  });
}

/** netpin as the chart runs it; again on the same port and certificate, behind the webhooks registered once. */
const startAsChart = () =>
  startNetpin({
    kubeconfig: chart.kubeconfigPath,
    cni: 'cilium',
    claimGraceSeconds: GRACE_SECONDS,
    leaseNamespace: chart.namespace,
    ...(netpin ? { port: netpin.port, certDir: netpin.certDir } : {}),
  });

beforeAll(async () => {
  cp = await startControlPlane();
  c = clients(cp.kubeconfigPath);
  await applyCrds(c);
  await applyCiliumPodIPPoolCrd(c);
  await createNamespace(c, NS, { 'netpin.io/enabled': 'true' });
  chart = await chartIdentity(cp, c, 'cilium', '/apis/cilium.io/v2alpha1/ciliumpodippools');
  netpin = await startAsChart();
  await registerWebhooks(c, netpin, cp.binDir);
});

afterAll(async () => {
  await netpin?.stop();
  await cp?.stop();
});

describe('a pinned IPPool on Cilium', () => {
  // The StatefulSet's addresses by ordinal, as the first test found them.
  let addresses: string[] = [];
  // The CiliumPodIPPool made by hand under a name netpin would use, as it was made (uid@resourceVersion).
  let squatter: string | undefined;

  it('gives the pods of a StatefulSet of 3 their addresses, each through a CiliumPodIPPool of its own', async () => {
    // Admitted through netpin's IPPool webhook, and stored as written: the CRD keeps spec.cni.cilium.pinned.
    await createPool(c, 'pin', { cidr: '10.77.0.0/28', cni: { cilium: { pinned: true } } });
    const stored = (await c.custom.getClusterCustomObject({
      group: 'netpin.io',
      version: 'v1alpha1',
      plural: 'ippools',
      name: 'pin',
    })) as { spec: { cni?: unknown } };
    expect(stored.spec.cni).toEqual({ cilium: { pinned: true } });

    await c.apps.createNamespacedStatefulSet({
      namespace: NS,
      body: {
        // Ordinals above a lower size give their addresses back at once (the last test).
        metadata: { name: STS, annotations: { 'netpin.io/scale-down-release': '0s' } },
        spec: {
          replicas: 3,
          // Nothing runs the pods: in order, the controller would wait forever for the first to be ready.
          podManagementPolicy: 'Parallel',
          serviceName: STS,
          selector: { matchLabels: { app: STS } },
          template: { metadata: { labels: { app: STS }, annotations: { 'netpin.io/pool': 'pin' } }, spec },
        },
      },
    });
    const pods = await statefulSetPods(3);
    addresses = pods.map(allocated);
    expect(new Set(addresses).size).toBe(3);
    for (const a of addresses) expect(a).toMatch(/^10\.77\.0\.(\d|1[0-5])$/);
    // Each ordinal's reservation holds its pod's address.
    expect(await ordinalAddresses()).toEqual(addresses);
    for (const [k, pod] of pods.entries()) {
      const a = addresses[k]!;
      expect(pod.metadata!.name).toBe(`${STS}-${k}`);
      expect(pod.metadata!.annotations!['ipam.cilium.io/ipv4-pool']).toBe(`netpin-${a}`);
      // Only the family key: ip-pool would send the other family of a dual-stack cluster nowhere.
      expect(pod.metadata!.annotations!['ipam.cilium.io/ip-pool']).toBeUndefined();
      const pool = (await ciliumPool(`netpin-${a}`))!;
      expect(pool, `CiliumPodIPPool netpin-${a}`).toBeDefined();
      expect(pool.metadata.labels).toEqual(MANAGED);
      expect(pool.spec).toEqual(pinnedSpec(a));
    }
    // Those three and no more of netpin's.
    const managed = (await c.custom.listClusterCustomObject({
      ...POOLS,
      labelSelector: 'app.kubernetes.io/managed-by=netpin',
    })) as { items: CiliumPool[] };
    expect(managed.items.map((p) => p.metadata.name).sort()).toEqual(addresses.map((a) => `netpin-${a}`).sort());

    // netpin's own pools, inside pin, are no CiliumPodIPPool Cilium assigns from: pin may still change.
    await c.custom.patchClusterCustomObject({
      group: 'netpin.io',
      version: 'v1alpha1',
      plural: 'ippools',
      name: 'pin',
      body: [{ op: 'add', path: '/metadata/labels', value: { team: 'db' } }],
    });
  });

  it('gives a StatefulSet pod deleted and made again its address and its pool, which stays all along', async () => {
    const [pod] = (await podsWithPrefix(c, NS, `${STS}-1`)) as [V1Pod];
    const a = addresses[1]!;
    const before = await ciliumPool(`netpin-${a}`);
    // As kubectl delete does: the default grace period (a pod on no node goes at once).
    await c.core.deleteNamespacedPod({ name: `${STS}-1`, namespace: NS });
    const again = await waitFor(`${STS}-1 made again`, async () => {
      const p = (await podsWithPrefix(c, NS, `${STS}-1`)).find((x) => x.metadata!.uid !== pod.metadata!.uid);
      return p?.metadata?.annotations?.['netpin.io/allocated'] ? p : undefined;
    });
    expect(allocated(again)).toBe(a);
    expect(again.metadata!.annotations!['ipam.cilium.io/ipv4-pool']).toBe(`netpin-${a}`);
    // Neither deleted nor changed in between: admission found it as it must be.
    expect(identity(await ciliumPool(`netpin-${a}`))).toBe(identity(before));
  });

  it('puts back a pool edited by hand, and makes again one deleted by hand', async () => {
    const [edited, deleted] = [addresses[0]!, addresses[2]!];
    const before = (await ciliumPool(`netpin-${edited}`))!;
    const changed = structuredClone(before);
    changed.spec.ipv4 = { cidrs: ['10.77.0.15/32'], maskSize: 32 };
    const written = (await c.custom.replaceClusterCustomObject({
      ...POOLS,
      name: before.metadata.name,
      body: changed,
    })) as CiliumPool;
    expect(written.spec.ipv4).toEqual({ cidrs: ['10.77.0.15/32'], maskSize: 32 });
    await waitFor(
      `netpin-${edited} put back`,
      async () => {
        const now = await ciliumPool(`netpin-${edited}`);
        return now && isDeepStrictEqual(now.spec, pinnedSpec(edited));
      },
      4 * ROUND_MS,
      250,
    );
    // The same object, replaced: no delete.
    expect((await ciliumPool(`netpin-${edited}`))!.metadata.uid).toBe(before.metadata.uid);
    expect(putBacks()).toBe(1);

    const gone = (await ciliumPool(`netpin-${deleted}`))!;
    await c.custom.deleteClusterCustomObject({ ...POOLS, name: gone.metadata.name });
    const remade = await waitFor(
      `netpin-${deleted} made again`,
      async () => {
        const now = await ciliumPool(`netpin-${deleted}`);
        return now && now.metadata.uid !== gone.metadata.uid ? now : undefined;
      },
      4 * ROUND_MS,
      250,
    );
    expect(remade.metadata.labels).toEqual(MANAGED);
    expect(remade.spec).toEqual(pinnedSpec(deleted));
  });

  it('leaves the pools as they are across a restart: a new process lists them and writes none', async () => {
    const names = addresses.map((a) => `netpin-${a}`);
    const read = async () => Promise.all(names.map(async (n) => identity(await ciliumPool(n))));
    const before = await read();
    // Two rounds of the leader that made them: a pool compared unequal to the one wanted would be replaced.
    await sleep(2 * ROUND_MS + 1_000);
    expect(await read()).toEqual(before);
    expect(putBacks()).toBe(1);
    // Every call the chart's RBAC allowed: no round failed, and admission made every pool it needed.
    expect(netpin!.output()).not.toContain('reconcile failed');
    expect(netpin!.output()).not.toContain('could not make the objects a pod needs');

    await netpin!.stop();
    netpin = await startAsChart();
    const pid = netpin.child.pid;
    // The new process leads (its lease identity ends in its pid), then has its rounds.
    await waitFor(
      'the new netpin to lead',
      async () => {
        const lease = await c.kc
          .makeApiClient(CoordinationV1Api)
          .readNamespacedLease({ name: 'netpin-reconciler', namespace: chart.namespace });
        return lease.spec?.holderIdentity?.endsWith(`-${pid}`);
      },
      30_000,
      250,
    );
    await sleep(2 * ROUND_MS + 1_000);
    expect(await read()).toEqual(before);
    expect(putBacks()).toBe(0);
  });

  it('refuses an address whose pool name is taken by a CiliumPodIPPool not of netpin, and leaves that pool alone', async () => {
    const taken = '10.77.0.12';
    const theirs = await createCiliumPool(poolName(taken), {
      ipv4: { cidrs: ['10.77.0.12/32'], maskSize: 32 },
    });
    const message = await refusal(
      c.core.createNamespacedPod({
        namespace: NS,
        body: { metadata: { name: 'squatted', annotations: { 'netpin.io/ip': taken } }, spec },
      }),
    );
    expect(message).toContain(`CiliumPodIPPool netpin-${taken}`);
    expect(message).toContain("without netpin's label");
    // The claim made before the pool was found in the way was given back.
    expect((await listClaims(c, 'pin')).map((x) => x.ip)).not.toContain(taken);
    await sleep(2 * ROUND_MS + 1_000);
    expect((await listClaims(c, 'pin')).map((x) => x.ip)).not.toContain(taken);
    squatter = identity(theirs);
    expect(identity(await ciliumPool(poolName(taken)))).toBe(squatter);
  });

  it("refuses a pinned IPPool overlapping a CiliumPodIPPool Cilium assigns from, and admits one outside Cilium's pools", async () => {
    await createCiliumPool('default', { ipv4: { cidrs: ['10.0.0.0/8'], maskSize: 24 } });
    const message = await refusal(createPool(c, 'clash', { cidr: '10.88.0.0/28', cni: { cilium: { pinned: true } } }));
    expect(message).toContain('10.88.0.1-10.88.0.14 lies in CiliumPodIPPool default');
    await expect(
      c.custom.getClusterCustomObject({ group: 'netpin.io', version: 'v1alpha1', plural: 'ippools', name: 'clash' }),
    ).rejects.toMatchObject({ code: 404 });
    await createPool(c, 'pin6', { cidr: 'fd00:77::/124', cni: { cilium: { pinned: true } } });
    await createPool(c, 'outside', { cidr: '192.168.88.0/28', cni: { cilium: { pinned: true } } });
  });

  it('refuses netpin.io/ip in an IPPool that Cilium assigns from, naming spec.cni.cilium.pinned', async () => {
    await createPool(c, 'assigned', { cidr: '172.20.0.0/28', cni: { cilium: { pool: 'team-a' } } });
    const message = await refusal(
      c.core.createNamespacedPod({
        namespace: NS,
        body: { metadata: { name: 'unpinned', annotations: { 'netpin.io/ip': '172.20.0.5' } }, spec },
      }),
    );
    expect(message).toContain('spec.cni.cilium.pinned: true');
    expect(message).toContain('IPPool assigned is not pinned');
    expect(await listClaims(c, 'assigned')).toEqual([]);
    expect(await ciliumPool('netpin-172.20.0.5')).toBeUndefined();
  });

  it('makes the pool of a pod at its admission, and deletes it once the claim is released and the pool is no longer young', async () => {
    const fixed = { v4: '10.77.0.10', v6: 'fd00:77::5', dual: '10.77.0.11,fd00:77::6' };
    for (const [family, a] of Object.entries(fixed)) {
      await c.core.createNamespacedPod({
        namespace: NS,
        body: { metadata: { name: `fixed-${family}`, annotations: { 'netpin.io/ip': a } }, spec },
      });
    }
    const addresses = Object.values(fixed).flatMap((a) => a.split(','));
    // There when the creates return: admission made them, not the leader's next round.
    const made = new Map<string, CiliumPool>();
    for (const a of addresses) {
      const pool = await ciliumPool(poolName(a));
      expect(pool, `CiliumPodIPPool ${poolName(a)} right after the pod's admission`).toBeDefined();
      expect(pool!.metadata.labels).toEqual(MANAGED);
      expect(pool!.spec).toEqual(pinnedSpec(a));
      made.set(a, pool!);
    }
    expect(poolName(fixed.v6)).toBe('netpin-fd00-77--5');
    const v6Pod = (await c.core.readNamespacedPod({ name: 'fixed-v6', namespace: NS })).metadata!.annotations!;
    expect(v6Pod['ipam.cilium.io/ipv6-pool']).toBe('netpin-fd00-77--5');
    expect(v6Pod['ipam.cilium.io/ipv4-pool']).toBeUndefined();
    // Dual-stack: one pool per family, each named by its family's key, and never ip-pool.
    const dualPod = (await c.core.readNamespacedPod({ name: 'fixed-dual', namespace: NS })).metadata!.annotations!;
    expect(dualPod['ipam.cilium.io/ipv4-pool']).toBe('netpin-10.77.0.11');
    expect(dualPod['ipam.cilium.io/ipv6-pool']).toBe('netpin-fd00-77--6');
    expect(dualPod['ipam.cilium.io/ip-pool']).toBeUndefined();

    for (const family of Object.keys(fixed))
      await c.core.deleteNamespacedPod({ name: `fixed-${family}`, namespace: NS });
    await waitFor(
      'the claims released',
      async () => {
        const held = (await listClaims(c)).map((x) => x.ip);
        return addresses.every((a) => !held.includes(a));
      },
      (GRACE_SECONDS + 4) * 1000 + 2 * ROUND_MS,
      250,
    );
    // Young still: kept, for a claim another replica's watch might not have brought yet.
    for (const [a, pool] of made) {
      const age = Date.now() - Date.parse(pool.metadata.creationTimestamp);
      if (age < KEEP_YOUNG_MS - ROUND_MS) expect(identity(await ciliumPool(poolName(a)))).toBe(identity(pool));
    }
    await waitFor(
      'the pools deleted',
      async () => (await Promise.all(addresses.map((a) => ciliumPool(poolName(a))))).every((p) => !p),
      KEEP_YOUNG_MS + 3 * ROUND_MS,
      500,
    );
    for (const pool of made.values()) {
      // Not before they were a minute old (creationTimestamp has whole seconds).
      expect(Date.now() - Date.parse(pool.metadata.creationTimestamp)).toBeGreaterThanOrEqual(KEEP_YOUNG_MS - 1_000);
    }
  });

  it("deletes a StatefulSet's pools once it is scaled down and deleted and its reservations released", async () => {
    await scale(1);
    await waitFor('the ordinals above 0 released', async () => {
      const held = await ordinalAddresses();
      return held.length === 1 && held[0] === addresses[0];
    });
    await waitFor(
      'the pools of ordinals 1 and 2 deleted',
      async () => !(await ciliumPool(`netpin-${addresses[1]}`)) && !(await ciliumPool(`netpin-${addresses[2]}`)),
      KEEP_YOUNG_MS + 3 * ROUND_MS,
      500,
    );
    // Ordinal 0 keeps its own.
    expect(await ciliumPool(`netpin-${addresses[0]}`)).toBeDefined();

    await c.apps.deleteNamespacedStatefulSet({ name: STS, namespace: NS });
    await waitFor(
      `the pool of ${STS}-0 deleted`,
      async () => (await ordinalAddresses()).length === 0 && !(await ciliumPool(`netpin-${addresses[0]}`)),
      KEEP_YOUNG_MS + 3 * ROUND_MS,
      500,
    );
    // No pool of netpin's is left, and the one not of netpin is as it was made.
    const managed = (await c.custom.listClusterCustomObject({
      ...POOLS,
      labelSelector: 'app.kubernetes.io/managed-by=netpin',
    })) as { items: CiliumPool[] };
    expect(managed.items).toEqual([]);
    expect(squatter).toBeDefined();
    expect(identity(await ciliumPool('netpin-10.77.0.12'))).toBe(squatter);
    // Since the restart, no pool was replaced, and no round failed (the chart's RBAC allowed every call).
    expect(putBacks()).toBe(0);
    expect(netpin!.output()).not.toContain('reconcile failed');
    expect(netpin!.output()).not.toContain('could not make the objects a pod needs');
  });
});
