// netpin with --ledger kube against a real etcd, kube-apiserver and kube-controller-manager.
// The controllers create the pods; nothing schedules or runs them, so they stay Pending.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { V1Pod } from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.js';
import {
  apiMessage,
  applyCrds,
  calicoIps,
  clients,
  createNamespace,
  createPool,
  listClaims,
  podsWithPrefix,
  registerWebhooks,
  waitFor,
  type Clients,
} from '../../harness/cluster.js';
import { decodePatch, heldAddresses, postReview, startNetpin, type Netpin } from '../../harness/netpin.js';
import { pino } from 'pino';
import { KubeLedger } from '../../src/cluster/kube-ledger.js';
import { loadKubeConfig } from '../../src/cluster/kube.js';
import { expectOrderingRule } from '../../harness/ledger-rules.js';
import { startRelay } from '../../harness/relay.js';
import type { Claim, Owner } from '../../src/ipam/claim.js';
import { parseAddress } from '../../src/net/address.js';

const NS = 'shop';
// The default grace: a claim waits this long for its pod before the reconciler may release it.
const GRACE_SECONDS = 30;

let cp: ControlPlane;
let c: Clients;
let netpin: Netpin;

function podTemplate(annotations: Record<string, string>, app: string) {
  return {
    metadata: { labels: { app }, annotations },
    spec: { containers: [{ name: 'app', image: 'registry.example/app:1' }], terminationGracePeriodSeconds: 0 },
  };
}

async function statefulSetPods(name: string, replicas: number): Promise<V1Pod[]> {
  return waitFor(`${replicas} pods of StatefulSet ${name}`, async () => {
    const pods = await podsWithPrefix(c, NS, `${name}-`);
    return pods.length === replicas ? pods.sort((a, b) => ordinal(a) - ordinal(b)) : undefined;
  });
}

function ordinal(p: V1Pod): number {
  return Number(p.metadata!.name!.split('-').pop());
}

async function scaleStatefulSet(name: string, replicas: number): Promise<void> {
  await waitFor(`scale ${name} to ${replicas}`, async () => {
    const sts = await c.apps.readNamespacedStatefulSet({ name, namespace: NS });
    sts.spec!.replicas = replicas;
    await c.apps.replaceNamespacedStatefulSet({ name, namespace: NS, body: sts });
    return true;
  });
}

beforeAll(async () => {
  cp = await startControlPlane();
  c = clients(cp.kubeconfigPath);
  await applyCrds(c);
  await createNamespace(c, NS, { 'netpin.io/enabled': 'true', team: 'web' });
  await createNamespace(c, 'plain', { team: 'web' });
  await createPool(c, 'web', { cidr: '10.50.0.0/24', namespaceSelector: { matchLabels: { team: 'web' } } });
  await createPool(c, 'small', { ranges: ['10.60.0.1-10.60.0.8'] });
  await createPool(c, 'race', { cidr: '10.70.0.0/23' });
  await createPool(c, 'order', { cidr: '10.80.0.0/28' });
  netpin = await startNetpin({ kubeconfig: cp.kubeconfigPath, claimGraceSeconds: GRACE_SECONDS });
  await registerWebhooks(c, netpin, cp.binDir);
});

afterAll(async () => {
  await netpin?.stop();
  await cp?.stop();
});

describe('StatefulSet', () => {
  it('gives ordinals their addresses in order, keeps them across delete and scaling, releases them with the StatefulSet', async () => {
    await c.apps.createNamespacedStatefulSet({
      namespace: NS,
      body: {
        metadata: { name: 'web' },
        spec: {
          replicas: 5,
          podManagementPolicy: 'Parallel',
          serviceName: 'web',
          selector: { matchLabels: { app: 'web' } },
          template: podTemplate({ 'netpin.io/pool': 'web' }, 'web'),
        },
      },
    });
    const pods = await statefulSetPods('web', 5);
    const ips = pods.map((p) => calicoIps(p)[0]);
    // A fresh /24 without network address: ordinal k holds the k-th free address.
    expect(ips).toEqual(['10.50.0.1', '10.50.0.2', '10.50.0.3', '10.50.0.4', '10.50.0.5']);
    const claims = await listClaims(c, 'web');
    expect(claims.map((x) => [x.owner.kind, x.owner.name, x.owner.ordinal, x.ip]).sort()).toEqual(
      ips.map((ip, k) => ['StatefulSet', 'web', k, ip]).sort(),
    );

    const before = pods.find((p) => p.metadata!.name === 'web-2')!;
    await c.core.deleteNamespacedPod({ name: 'web-2', namespace: NS });
    const again = await waitFor('web-2 re-created', async () => {
      const p = (await podsWithPrefix(c, NS, 'web-2')).find((x) => x.metadata!.uid !== before.metadata!.uid);
      return p;
    });
    expect(calicoIps(again)).toEqual(['10.50.0.3']);

    await scaleStatefulSet('web', 2);
    await statefulSetPods('web', 2);
    await scaleStatefulSet('web', 5);
    const rescaled = await statefulSetPods('web', 5);
    expect(rescaled.map((p) => calicoIps(p)[0])).toEqual(ips);

    // `kubectl scale` goes through the scale subresource: the new ordinals are reserved there, in order,
    // although the controller creates their pods in parallel.
    await c.apps.replaceNamespacedStatefulSetScale({
      name: 'web',
      namespace: NS,
      body: { metadata: { name: 'web', namespace: NS }, spec: { replicas: 8 } },
    });
    const scaled = await statefulSetPods('web', 8);
    expect(scaled.map((p) => calicoIps(p)[0])).toEqual([...ips, '10.50.0.6', '10.50.0.7', '10.50.0.8']);
    await c.apps.replaceNamespacedStatefulSetScale({
      name: 'web',
      namespace: NS,
      body: { metadata: { name: 'web', namespace: NS }, spec: { replicas: 5 } },
    });
    await statefulSetPods('web', 5);

    await c.apps.deleteNamespacedStatefulSet({ name: 'web', namespace: NS });
    await waitFor(
      'the StatefulSet claims to be released',
      async () => (await listClaims(c, 'web')).length === 0,
      60_000,
      500,
    );
  });
});

describe('the Kubernetes ledger', () => {
  it('keeps the ordering rule: claims started in a row get addresses in that order, their writes overlapping', async () => {
    const ledger = new KubeLedger(loadKubeConfig(cp.kubeconfigPath), pino({ level: 'silent' }));
    await ledger.start();
    try {
      const pool = await waitFor('IPPool order in the ledger', async () =>
        ledger.index.allPools().find((p) => p.name === 'order'),
      );
      const owner = (name: string) => ({ kind: 'Pod' as const, namespace: NS, name });
      await expectOrderingRule(
        ledger,
        pool,
        owner('order-fixed'),
        [0, 1, 2, 3, 4].map((k) => owner(`order-${k}`)),
      );
      // Stored as the index says: the API server holds each address for the owner that started first.
      const stored = (await listClaims(c, 'order')).map((x) => [x.ip, x.owner.name]).sort();
      expect(stored).toEqual(
        [...ledger.index.allClaims()]
          .filter((x) => x.pool === 'order')
          .map((x) => [x.ip.toString(), (x.owner as { name: string }).name])
          .sort(),
      );
      expect(stored).toHaveLength(6);
    } finally {
      await ledger.stop();
    }
  });
});

describe('the Kubernetes ledger, started again', () => {
  it('lists every claim a page at a time, and keeps of each what the index needs', async () => {
    const stored = (await listClaims(c)).map((x) => `${x.ip} ${x.owner.kind}/${x.owner.name ?? ''}`).sort();
    expect(stored.length).toBeGreaterThan(4);
    // Two claims a page: the list goes on with the API server's continue token until the last page.
    const ledger = new KubeLedger(loadKubeConfig(cp.kubeconfigPath), pino({ level: 'silent' }), 2);
    await ledger.start();
    try {
      const indexed = [...ledger.index.allClaims()]
        .map((x) => `${x.ip.toString()} ${x.owner.kind}/${'name' in x.owner ? x.owner.name : ''}`)
        .sort();
      expect(indexed).toEqual(stored);
      // And then the watch: a claim another replica makes shows up here, owner and all.
      const other = new KubeLedger(loadKubeConfig(cp.kubeconfigPath), pino({ level: 'silent' }));
      await other.start();
      try {
        const pool = other.index.allPools().find((p) => p.name === 'order')!;
        const made = await other.claimNext(pool, 'ipv4', { kind: 'Pod', namespace: NS, name: 'elsewhere' });
        const seen = await waitFor('the claim in the first ledger', async () => ledger.index.holderOf(made.ip));
        expect(seen.owner).toEqual({ kind: 'Pod', namespace: NS, name: 'elsewhere' });
      } finally {
        await other.stop();
      }
    } finally {
      await ledger.stop();
    }
  });
});

describe('the Kubernetes ledger, cut off from the API server a while', () => {
  it('lists again once back: forgets a claim deleted meanwhile, takes in those made, changed or made again, keeps one it is still creating', async () => {
    await createPool(c, 'cut', { cidr: '10.90.0.0/28' });
    const relay = await startRelay(cp);
    const warnings: Array<{ watch?: string }> = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line)) });
    // Two claims a page: the list that tells what was missed comes in several.
    const ledger = new KubeLedger(loadKubeConfig(relay.kubeconfigPath), log, 2);
    const other = new KubeLedger(loadKubeConfig(cp.kubeconfigPath), pino({ level: 'silent' }));
    await Promise.all([ledger.start(), other.start()]);
    try {
      const pool = await waitFor('IPPool cut in the ledger', async () => ledger.index.pool('cut'));
      const owner = (name: string): Owner => ({ kind: 'Pod', namespace: NS, name });
      const kept = await ledger.claimNext(pool, 'ipv4', owner('kept'));
      const gone = await ledger.claimNext(pool, 'ipv4', owner('gone'));
      const changed = await ledger.claimNext(pool, 'ipv4', owner('changed'));
      const regiven = await ledger.claimNext(pool, 'ipv4', owner('regiven'));
      const keptSince = kept.createdAt;

      relay.cut();
      // While its watch is down, another replica releases one claim, binds another, and makes one.
      await other.release(gone);
      // The same address, so the same IPClaim name, released and claimed by another owner: a new object.
      await other.release(regiven);
      await other.claim(pool, regiven.ip, owner('new-owner'));
      await other.bind(changed, { name: 'changed-pod', uid: 'changed-uid' });
      const made = await other.claim(pool, parseAddress('10.90.0.13')!, owner('made'));
      // And this one has a create under way: in its index, not yet in the API server, so no uid.
      const creating: Claim = { pool: 'cut', ip: parseAddress('10.90.0.14')!, owner: owner('creating'), createdAt: 1 };
      expect(ledger.index.add(creating)).toBe(true);
      relay.mend();

      // No watch told it of the delete: only the list after the watch failed can.
      await waitFor('the released claim to be forgotten', async () => !ledger.index.holderOf(gone.ip));
      expect(warnings.some((w) => w.watch === 'ipclaims')).toBe(true);
      expect(ledger.index.holderOf(made.ip)?.owner).toEqual(owner('made'));
      expect(ledger.index.holderOf(regiven.ip)?.owner).toEqual(owner('new-owner'));
      expect(ledger.index.holderOf(changed.ip)?.owner).toEqual({
        kind: 'Pod',
        namespace: NS,
        name: 'changed-pod',
        uid: 'changed-uid',
      });
      // Listed again unchanged: the very claim, as it was (an update would have reset its grace period).
      expect(ledger.index.holderOf(kept.ip)).toBe(kept);
      expect(kept.createdAt).toBe(keptSince);
      expect(ledger.index.holderOf(creating.ip)).toBe(creating);
    } finally {
      await ledger.stop();
      await other.stop();
      await relay.close();
    }
  });
});

describe('Deployment', () => {
  it('gives 10 replicas 10 distinct addresses', async () => {
    await c.apps.createNamespacedDeployment({
      namespace: NS,
      body: {
        metadata: { name: 'api' },
        spec: {
          replicas: 10,
          selector: { matchLabels: { app: 'api' } },
          template: podTemplate({ 'netpin.io/pool': 'web' }, 'api'),
        },
      },
    });
    const pods = await waitFor('10 api pods', async () => {
      const p = await podsWithPrefix(c, NS, 'api-');
      return p.length === 10 ? p : undefined;
    });
    const ips = pods.map((p) => calicoIps(p)[0]!);
    expect(new Set(ips).size).toBe(10);
    for (const ip of ips) expect(ip).toMatch(/^10\.50\.0\.\d+$/);
    // Every pod carries its claim's address, and every claim has its pod.
    const claimed = (await listClaims(c, 'web')).map((x) => x.ip).sort();
    expect(claimed).toEqual([...ips].sort());
  });

  it('stops at the pool size and tells the ReplicaSet why', async () => {
    // Room for all 8 at apply; created paused, so that no pod exists until a bare pod has taken one
    // address. Unpaused, the ReplicaSet finds room for 7: the template was checked against the ledger,
    // and only a pod created after it can take what the template counted on.
    await c.apps.createNamespacedDeployment({
      namespace: NS,
      body: {
        metadata: { name: 'tiny' },
        spec: {
          replicas: 8,
          paused: true,
          strategy: { type: 'Recreate' },
          selector: { matchLabels: { app: 'tiny' } },
          template: podTemplate({ 'netpin.io/pool': 'small' }, 'tiny'),
        },
      },
    });
    await c.core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: 'squatter', annotations: { 'netpin.io/pool': 'small' } },
        spec: podTemplate({}, 'x').spec,
      },
    });
    await c.apps.patchNamespacedDeployment({
      name: 'tiny',
      namespace: NS,
      body: [{ op: 'replace', path: '/spec/paused', value: false }],
    });
    const event = await waitFor(
      "a FailedCreate event with netpin's message",
      async () => {
        const events = await c.core.listNamespacedEvent({ namespace: NS });
        return events.items.find(
          (e) =>
            e.reason === 'FailedCreate' &&
            e.involvedObject.name?.startsWith('tiny-') &&
            e.message?.includes('netpin.io/pool'),
        );
      },
      90_000,
      500,
    );
    expect(event.message).toContain('IPPool small has no free IPv4 address (8 of 8 held)');
    expect(event.message).toContain('Fix:');
    const pods = [...(await podsWithPrefix(c, NS, 'tiny-')), ...(await podsWithPrefix(c, NS, 'squatter'))];
    expect(pods).toHaveLength(8);
    expect(new Set(pods.map((p) => calicoIps(p)[0])).size).toBe(8);
    // The reconciler keeps `kubectl get ippools` current.
    const status = await waitFor(
      'IPPool small status',
      async () => {
        const pool = (await c.custom.getClusterCustomObject({
          group: 'netpin.io',
          version: 'v1alpha1',
          plural: 'ippools',
          name: 'small',
        })) as { status?: { capacity: number; allocated: number } };
        return pool.status?.allocated === 8 ? pool.status : undefined;
      },
      30_000,
      500,
    );
    expect(status.capacity).toBe(8);
  });
});

describe('bare pods', () => {
  it('refuses an address another pod holds, naming the holder', async () => {
    await c.core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: 'first', annotations: { 'netpin.io/ip': '10.50.0.200' } },
        spec: podTemplate({}, 'x').spec,
      },
    });
    const err = await c.core
      .createNamespacedPod({
        namespace: NS,
        body: {
          metadata: { name: 'second', annotations: { 'netpin.io/ip': '10.50.0.200' } },
          spec: podTemplate({}, 'x').spec,
        },
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeDefined();
    const message = apiMessage(err);
    expect(message).toContain('denied the request');
    expect(message).toContain('10.50.0.200 is held by pod shop/first');
    expect(message).toContain('netpin.io/ip (CNI Calico)');
  });

  it('leaves a namespace without the label alone', async () => {
    const pod = await c.core.createNamespacedPod({
      namespace: 'plain',
      body: {
        metadata: { name: 'untouched', annotations: { 'netpin.io/ip': '10.50.0.201' } },
        spec: podTemplate({}, 'x').spec,
      },
    });
    expect(pod.metadata?.annotations?.['cni.projectcalico.org/ipAddrs']).toBeUndefined();
    expect((await listClaims(c)).some((x) => x.ip === '10.50.0.201')).toBe(false);
  });

  it('claims nothing for a server-side dry run', async () => {
    const before = await listClaims(c);
    const pod = await c.core.createNamespacedPod({
      namespace: NS,
      dryRun: 'All',
      body: { metadata: { name: 'dry', annotations: { 'netpin.io/pool': 'web' } }, spec: podTemplate({}, 'x').spec },
    });
    // The dry run shows what the pod would get ...
    expect(calicoIps(pod)[0]).toMatch(/^10\.50\.0\.\d+$/);
    // ... and nothing is kept, nor created.
    expect(await listClaims(c)).toEqual(before);
    await expect(c.core.readNamespacedPod({ name: 'dry', namespace: NS })).rejects.toThrow();
  });
});

describe('claims written under the old <pool>.<address> names', () => {
  it('hold their address, and the leader moves them to the address itself, owner and all', async () => {
    await createPool(c, 'legacy', { cidr: '10.81.0.0/28' });
    // A pod netpin did not pin, holding a claim an earlier version wrote: its name keeps it held.
    await c.core.createNamespacedPod({
      namespace: 'plain',
      body: { metadata: { name: 'legacy' }, spec: podTemplate({}, 'x').spec },
    });
    const owner = { kind: 'Pod', namespace: 'plain', name: 'legacy' };
    await c.custom.createClusterCustomObject({
      group: 'netpin.io',
      version: 'v1alpha1',
      plural: 'ipclaims',
      body: {
        apiVersion: 'netpin.io/v1alpha1',
        kind: 'IPClaim',
        metadata: { name: 'legacy.10-81-0-14', labels: { 'netpin.io/pool': 'legacy' } },
        spec: { pool: 'legacy', ip: '10.81.0.14', owner },
      },
    });
    const moved = await waitFor(
      'the claim under its new name',
      async () => {
        const claims = (await listClaims(c, 'legacy')).filter((x) => x.ip === '10.81.0.14');
        return claims.length === 1 && claims[0]!.name === '10.81.0.14' ? claims[0] : undefined;
      },
      30_000,
      500,
    );
    expect(moved.owner).toEqual(owner);
    // Held all along, as the webhook's index saw the old object, then the new one, then the old one go.
    const err = await c.core
      .createNamespacedPod({
        namespace: NS,
        body: {
          metadata: { name: 'wants-14', annotations: { 'netpin.io/ip': '10.81.0.14' } },
          spec: podTemplate({}, 'x').spec,
        },
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(apiMessage(err)).toContain('10.81.0.14 is held by pod plain/legacy');
  });
});

describe('IPPool validation', () => {
  it('refuses an overlapping pool', async () => {
    const err = await createPool(c, 'clash', { cidr: '10.50.0.128/25' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(apiMessage(err)).toContain('IPPool clash overlaps IPPool web at 10.50.0.129-10.50.0.254');
  });

  it('refuses to drop a held address', async () => {
    const pool = (await c.custom.getClusterCustomObject({
      group: 'netpin.io',
      version: 'v1alpha1',
      plural: 'ippools',
      name: 'small',
    })) as { spec: Record<string, unknown> };
    pool.spec.ranges = ['10.60.0.1-10.60.0.4'];
    const err = await c.custom
      .replaceClusterCustomObject({
        group: 'netpin.io',
        version: 'v1alpha1',
        plural: 'ippools',
        name: 'small',
        body: pool,
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(apiMessage(err)).toContain('the change would drop 4 held addresses');
  });
});

describe('concurrency and restarts', () => {
  it('hands 200 pods racing through two replicas 200 distinct addresses, and the claims match the pods', async () => {
    const second = await startNetpin({ kubeconfig: cp.kubeconfigPath, claimGraceSeconds: GRACE_SECONDS });
    try {
      const replicas = [netpin, second];
      const reviews = Array.from({ length: 200 }, (_, i) => ({
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: {
          uid: `race-${i}-${Date.now()}`,
          kind: { group: '', version: 'v1', kind: 'Pod' },
          resource: { group: '', version: 'v1', resource: 'pods' },
          namespace: NS,
          name: `race-${i}`,
          operation: 'CREATE',
          object: {
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: { name: `race-${i}`, namespace: NS, annotations: { 'netpin.io/pool': 'race' } },
            spec: podTemplate({}, 'race').spec,
          },
        },
      }));
      const answers = await Promise.all(reviews.map((r, i) => postReview(replicas[i % 2]!, '/mutate', r)));
      const ips = answers.map((a) => {
        expect(a.status).toBe(200);
        expect(a.json.response.allowed, JSON.stringify(a.json.response.status)).toBe(true);
        const op = decodePatch(a.json.response).find((o) => o.path === '/metadata/annotations/netpin.io~1allocated');
        return op!.value as string;
      });
      expect(new Set(ips).size).toBe(200);
      // The API server calls the first replica only: once its watch has brought it the second one's claims,
      // each pod must find its own. (Before, a pod may get another address and its first claim go back,
      // which test/e2e/reliability covers.)
      await waitFor(
        'the first replica to see all 200 claims',
        async () => (await heldAddresses(netpin, 'race')) === 200,
      );

      // Now the pods themselves, through the API server (and the webhook registered there).
      await Promise.all(
        reviews.map((r) => c.core.createNamespacedPod({ namespace: NS, body: r.request.object as V1Pod })),
      );
      const pods = await podsWithPrefix(c, NS, 'race-');
      expect(pods).toHaveLength(200);
      const podIps = pods.map((p) => calicoIps(p)[0]!);
      expect(new Set(podIps).size).toBe(200);
      expect(podIps.sort()).toEqual([...ips].sort());
      expect((await listClaims(c, 'race')).map((x) => x.ip).sort()).toEqual([...ips].sort());
    } finally {
      await second.stop();
    }
  });

  it('keeps every allocation across a killed and restarted webhook, and hands none out twice', async () => {
    const held = new Set((await listClaims(c)).map((x) => x.ip));
    const port = netpin.port;
    const certDir = netpin.certDir;
    await netpin.kill();
    netpin = await startNetpin({ kubeconfig: cp.kubeconfigPath, port, certDir, claimGraceSeconds: GRACE_SECONDS });
    // Pods keep their claims: the restarted replica does not release or reuse them.
    const pod = await c.core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: 'after-restart', annotations: { 'netpin.io/pool': 'race' } },
        spec: podTemplate({}, 'x').spec,
      },
    });
    const ip = calicoIps(pod)[0]!;
    expect(held.has(ip)).toBe(false);
    const now = new Set((await listClaims(c)).map((x) => x.ip));
    for (const h of held) expect(now.has(h)).toBe(true);
  });

  it('releases a claim whose pod never came to exist, within 60 s', async () => {
    const answer = await postReview(netpin, '/mutate', {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: `ghost-${Date.now()}`,
        kind: { group: '', version: 'v1', kind: 'Pod' },
        namespace: NS,
        operation: 'CREATE',
        object: {
          metadata: { generateName: 'ghost-', namespace: NS, annotations: { 'netpin.io/pool': 'race' } },
          spec: podTemplate({}, 'x').spec,
        },
      },
    });
    const ip = decodePatch(answer.json.response).find((o) => o.path === '/metadata/annotations/netpin.io~1allocated')!
      .value as string;
    expect((await listClaims(c, 'race')).some((x) => x.ip === ip)).toBe(true);
    const started = Date.now();
    await waitFor(
      'the ghost claim to be released',
      async () => !(await listClaims(c, 'race')).some((x) => x.ip === ip),
      60_000,
      500,
    );
    expect(Date.now() - started).toBeLessThan(60_000);
    // The pods that do exist keep theirs.
    expect((await listClaims(c, 'race')).length).toBe(201);
  });
});
