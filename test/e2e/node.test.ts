// netpin on a real node: its own image, installed by helm, its webhooks reached in-cluster, and
// pods that kubelet really starts, probes, rolls and terminates. The node's CNI is the reference
// bridge plugin with netpin-ipam as its IPAM (host-local behind it for pods netpin gives no address),
// installed by the chart's DaemonSet: every pod netpin addresses must run with exactly that address
// (status.podIP), and be reached on it.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CoreV1Event, V1Pod, V1PodSpec } from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.js';
import {
  apiMessage,
  clients,
  createNamespace,
  createPool,
  listClaims,
  podsWithPrefix,
  waitFor,
  type Clients,
} from '../../harness/cluster.js';
import { installNetpin, removeNetpinImage, type Installed } from '../../harness/install.js';
import {
  APP_IMAGE,
  APP_PORT,
  nodeControlPlaneOptions,
  POOL_SUBNETS,
  startNode,
  type Node,
} from '../../harness/node.js';

const NS = 'shop';
const PLAIN = 'plain';
const GRACE_SECONDS = 5;
/** netpin's own replicas, not the pods of its ipam-plugin DaemonSet beside them. */
const REPLICAS = 'app.kubernetes.io/name=netpin';

let cp: ControlPlane;
let node: Node;
let c: Clients;
let netpin: Installed;

/** The app, probed for real, ending $termDelay after SIGTERM. */
function appSpec(termDelay = '0s', grace = 30): V1PodSpec {
  return {
    terminationGracePeriodSeconds: grace,
    containers: [
      {
        name: 'app',
        image: APP_IMAGE,
        imagePullPolicy: 'Never',
        env: [{ name: 'TERM_DELAY', value: termDelay }],
        ports: [{ containerPort: APP_PORT }],
        readinessProbe: { httpGet: { path: '/healthz', port: APP_PORT }, periodSeconds: 1 },
      },
    ],
  };
}

const isReady = (p: V1Pod) =>
  p.status?.phase === 'Running' && (p.status.conditions ?? []).some((x) => x.type === 'Ready' && x.status === 'True');

async function readyPod(name: string, namespace = NS): Promise<V1Pod> {
  return waitFor(
    `pod ${name} Ready`,
    async () => {
      const p = await c.core.readNamespacedPod({ name, namespace });
      return isReady(p) ? p : undefined;
    },
    90_000,
    250,
  );
}

/** netpin.io/allocated, for pods that may not run yet or any more. */
const allocatedIps = (pod: V1Pod): string[] =>
  (pod.metadata?.annotations?.['netpin.io/allocated'] ?? '').split(',').filter(Boolean);

/**
 * The address netpin gave a running pod, once the node agrees: status.podIPs (what the CNI really
 * configured, as kubelet reports it) must be netpin.io/allocated, address for address.
 */
function netpinIps(pod: V1Pod): string[] {
  const allocated = allocatedIps(pod);
  const running = (pod.status?.podIPs ?? []).map((x) => x.ip);
  expect(running, `pod ${pod.metadata?.name}: status.podIPs against netpin.io/allocated`).toEqual(allocated);
  expect(pod.status?.podIP).toBe(allocated[0]);
  return allocated;
}

/** A netpin IPPool on this node: in the bridge's subnet, which gives its addresses their prefix and gateway. */
const nodePool = (name: string, spec: Record<string, unknown>) =>
  createPool(c, name, { ...spec, subnets: POOL_SUBNETS });

async function sandboxFailures(namespace: string): Promise<CoreV1Event[]> {
  return (await c.core.listNamespacedEvent({ namespace })).items.filter((e) => e.reason === 'FailedCreatePodSandBox');
}

beforeAll(async () => {
  cp = await startControlPlane(nodeControlPlaneOptions());
  node = await startNode(cp);
  c = clients(cp.kubeconfigPath);
  const started = Date.now();
  netpin = await installNetpin(cp, node, { cni: 'netpin-ipam', claimGraceSeconds: GRACE_SECONDS });
  process.stderr.write(`node: netpin installed and Ready in ${Date.now() - started} ms\n`);
  await createNamespace(c, NS, { 'netpin.io/enabled': 'true' });
  await createNamespace(c, PLAIN);
  await nodePool('web', { cidr: '10.244.60.0/24' });
});

afterAll(async () => {
  try {
    await netpin?.uninstall();
    await node?.stop();
  } finally {
    await cp?.stop();
    await removeNetpinImage();
  }
});

describe('netpin installed by helm on the node', () => {
  it('runs two Ready replicas from its own image, as the non-root user, on a read-only root', async () => {
    const pods = (await c.core.listNamespacedPod({ namespace: netpin.namespace, labelSelector: REPLICAS })).items;
    expect(pods).toHaveLength(2);
    for (const p of pods) {
      expect(isReady(p)).toBe(true);
      expect(p.spec?.containers[0]?.image).toBe('netpin.test/netpin:e2e');
      expect(p.spec?.containers[0]?.securityContext).toMatchObject({
        readOnlyRootFilesystem: true,
        runAsNonRoot: true,
      });
    }
  });
});

describe('addresses on the node', () => {
  /** GET from the test process, which reaches pods through the bridge's address in their subnet. */
  const get = async (url: string) => {
    const r = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    return { status: r.status, body: await r.text() };
  };

  it("installs netpin-ipam with the chart's DaemonSet, where containerd looks first", async () => {
    const sets = (await c.apps.listNamespacedDaemonSet({ namespace: netpin.namespace })).items;
    expect(sets.map((d) => [d.status?.desiredNumberScheduled, d.status?.numberReady])).toEqual([[1, 1]]);
    const installed = await fsp.stat(path.join(node.cniDir, 'netpin-ipam'));
    expect(installed.isFile() && (installed.mode & 0o111) !== 0).toBe(true);
  });

  it('runs a pool pod and a fixed-address pod with exactly the addresses netpin gave, and one reaches the other on it', async () => {
    for (const [name, annotations] of [
      ['pooled', { 'netpin.io/pool': 'web' }],
      ['fixed', { 'netpin.io/ip': '10.244.60.77' }],
    ] as const) {
      await c.core.createNamespacedPod({ namespace: NS, body: { metadata: { name, annotations }, spec: appSpec() } });
    }
    const pooled = netpinIps(await readyPod('pooled'));
    const fixed = netpinIps(await readyPod('fixed'));
    expect(fixed).toEqual(['10.244.60.77']);
    expect(pooled[0]).toMatch(/^10\.244\.60\./);
    // From pooled's own network namespace to fixed's pinned address: the app there answers with its hostname.
    const via = await get(
      `http://${pooled[0]}:${APP_PORT}/fetch?url=${encodeURIComponent(`http://${fixed[0]}:${APP_PORT}/hello`)}`,
    );
    expect(via).toEqual({ status: 200, body: 'fixed /hello\n' });
  });

  it("gives a pod outside opted-in namespaces host-local's address, and runs it", async () => {
    await c.core.createNamespacedPod({ namespace: PLAIN, body: { metadata: { name: 'local' }, spec: appSpec() } });
    const pod = await readyPod('local', PLAIN);
    expect(pod.metadata?.annotations?.['netpin.io/allocated']).toBeUndefined();
    const last = Number(pod.status?.podIP?.split('.')[3]);
    expect(pod.status?.podIP).toMatch(/^10\.244\.0\.\d+$/);
    expect(last >= 2 && last <= 254).toBe(true);
  });

  it('gives a dual-stack pod both of its addresses, and it is reached on its IPv6 one', async () => {
    const disabled = await fsp.readFile('/proc/sys/net/ipv6/conf/default/disable_ipv6', 'utf8').catch(() => '1');
    expect(disabled.trim(), 'this test needs IPv6 in the kernel (net.ipv6.conf.default.disable_ipv6 = 0)').toBe('0');
    await nodePool('dual', { ranges: ['10.244.63.0/24', 'fd00:244::63:0/112'] });
    await c.core.createNamespacedPod({
      namespace: NS,
      body: { metadata: { name: 'dual', annotations: { 'netpin.io/pool': 'dual' } }, spec: appSpec() },
    });
    const ips = netpinIps(await readyPod('dual'));
    expect(ips).toHaveLength(2);
    expect(ips[1]).toMatch(/^fd00:244::63:/);
    expect(await get(`http://[${ips[1]}]:${APP_PORT}/healthz`)).toEqual({ status: 200, body: 'ok\n' });
  });
});

describe('rates', () => {
  it('become the qdiscs of a running pod: 10 Mbit/s out, 20 Mbit/s in', async () => {
    await c.core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: 'limited', annotations: { 'netpin.io/egress-rate': '10M', 'netpin.io/ingress-rate': '20M' } },
        spec: appSpec(),
      },
    });
    const pod = await readyPod('limited');
    expect(pod.metadata?.annotations).toMatchObject({
      'kubernetes.io/egress-bandwidth': '10M',
      'kubernetes.io/ingress-bandwidth': '20M',
    });
    expect(await node.podShaping(pod.metadata!.uid!)).toMatchObject({ egress: '10Mbit', ingress: '20Mbit' });
  });

  it('are needed: a hand-written 10Mbps fails the sandbox where netpin does not look, and is refused where it does', async () => {
    await c.core.createNamespacedPod({
      namespace: PLAIN,
      body: {
        metadata: { name: 'bad-rate', annotations: { 'kubernetes.io/egress-bandwidth': '10Mbps' } },
        spec: appSpec(),
      },
    });
    const failure = await waitFor(
      'FailedCreatePodSandBox for bad-rate',
      async () => (await sandboxFailures(PLAIN)).find((e) => e.involvedObject.name === 'bad-rate'),
      60_000,
      500,
    );
    process.stderr.write(`node: containerd on a 10Mbps egress-bandwidth: ${failure.message}\n`);
    expect(failure.message).toContain('reading pod bandwidth annotations');
    const err = await c.core
      .createNamespacedPod({
        namespace: NS,
        body: {
          metadata: { name: 'bad-rate', annotations: { 'kubernetes.io/egress-bandwidth': '10Mbps' } },
          spec: appSpec(),
        },
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(apiMessage(err)).toContain(
      'kubernetes.io/egress-bandwidth (CNI netpin-ipam): "10Mbps" is not a Kubernetes quantity, so containerd would refuse the pod sandbox',
    );
  });
});

describe('a StatefulSet of 3, OrderedReady, with a readiness probe', () => {
  const ips = () =>
    podsWithPrefix(c, NS, 'db-').then((pods) =>
      pods.sort((a, b) => ordinal(a) - ordinal(b)).map((p) => netpinIps(p)[0]),
    );
  const ordinal = (p: V1Pod) => Number(p.metadata!.name!.split('-').pop());
  const allReady = (n: number, revision?: string) =>
    waitFor(
      `${n} db pods Ready${revision ? ` at ${revision}` : ''}`,
      async () => {
        const pods = await podsWithPrefix(c, NS, 'db-');
        const ok =
          pods.length === n &&
          pods.every(isReady) &&
          (!revision || pods.every((p) => p.metadata?.labels?.['controller-revision-hash'] === revision));
        return ok ? pods : undefined;
      },
      180_000,
      500,
    );

  it("keeps each ordinal's address through deletion, a rolling update and scaling 3 → 1 → 3", async () => {
    await nodePool('db', { cidr: '10.244.61.0/24' });
    await c.apps.createNamespacedStatefulSet({
      namespace: NS,
      body: {
        metadata: { name: 'db' },
        spec: {
          replicas: 3,
          serviceName: 'db',
          selector: { matchLabels: { app: 'db' } },
          template: {
            metadata: { labels: { app: 'db' }, annotations: { 'netpin.io/pool': 'db' } },
            spec: appSpec('0s', 5),
          },
        },
      },
    });
    await allReady(3);
    const first = await ips();
    expect(first).toEqual(['10.244.61.1', '10.244.61.2', '10.244.61.3']);

    const old = await c.core.readNamespacedPod({ name: 'db-1', namespace: NS });
    await c.core.deleteNamespacedPod({ name: 'db-1', namespace: NS });
    const again = await waitFor(
      'db-1 back and Ready',
      async () => {
        const p = await c.core.readNamespacedPod({ name: 'db-1', namespace: NS }).catch(() => undefined);
        return p && p.metadata?.uid !== old.metadata?.uid && isReady(p) ? p : undefined;
      },
      120_000,
      250,
    );
    expect(netpinIps(again)).toEqual(['10.244.61.2']);

    await c.apps.patchNamespacedStatefulSet({
      name: 'db',
      namespace: NS,
      body: [{ op: 'add', path: '/spec/template/metadata/labels/rev', value: '2' }],
    });
    const revision = await waitFor('the new revision', async () => {
      const sts = await c.apps.readNamespacedStatefulSet({ name: 'db', namespace: NS });
      return sts.status?.updateRevision !== sts.status?.currentRevision ||
        sts.metadata?.generation === sts.status?.observedGeneration
        ? sts.status?.updateRevision
        : undefined;
    });
    await allReady(3, revision);
    expect(await ips()).toEqual(first);

    const scale = (replicas: number) =>
      c.apps.replaceNamespacedStatefulSetScale({
        name: 'db',
        namespace: NS,
        body: { metadata: { name: 'db', namespace: NS }, spec: { replicas } },
      });
    await scale(1);
    await allReady(1);
    await scale(3);
    await allReady(3);
    expect(await ips()).toEqual(first);
  });

  it('refuses at apply an address an ordinal holds, naming it', async () => {
    const err = await c.core
      .createNamespacedPod({
        namespace: NS,
        body: { metadata: { name: 'thief', annotations: { 'netpin.io/ip': '10.244.61.2' } }, spec: appSpec() },
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(apiMessage(err)).toContain('10.244.61.2 is held by StatefulSet shop/db (ordinal 1)');
  });
});

describe('a Deployment of 5 rolled out with RollingUpdate', () => {
  it('never hands an address to a new pod while the pod that held it terminates, and frees every old one', async () => {
    await nodePool('roll', { cidr: '10.244.62.0/24' });
    const pods = () => podsWithPrefix(c, NS, 'roll-', true);
    // Each pod takes 6 s to stop after SIGTERM: the rollout overlaps terminating and new pods.
    await c.apps.createNamespacedDeployment({
      namespace: NS,
      body: {
        metadata: { name: 'roll' },
        spec: {
          replicas: 5,
          selector: { matchLabels: { app: 'roll' } },
          template: {
            metadata: { labels: { app: 'roll' }, annotations: { 'netpin.io/pool': 'roll' } },
            spec: appSpec('6s', 30),
          },
        },
      },
    });
    const before = await waitFor(
      '5 roll pods Ready',
      async () => {
        const p = await pods();
        return p.length === 5 && p.every(isReady) ? p : undefined;
      },
      120_000,
      500,
    );
    const oldIps = new Set(before.map((p) => netpinIps(p)[0]!));

    await c.apps.patchNamespacedDeployment({
      name: 'roll',
      namespace: NS,
      body: [{ op: 'add', path: '/spec/template/metadata/labels/rev', value: '2' }],
    });
    const overlaps: string[] = [];
    let sawTerminating = false;
    await waitFor(
      'the rollout to finish',
      async () => {
        const now = await pods();
        const terminating = now.filter((p) => p.metadata?.deletionTimestamp);
        sawTerminating ||= terminating.length > 0;
        const held = new Map(terminating.map((p) => [allocatedIps(p)[0], p.metadata!.name!]));
        for (const p of now.filter((x) => !x.metadata?.deletionTimestamp)) {
          const other = held.get(allocatedIps(p)[0]);
          if (other) overlaps.push(`${p.metadata!.name} got ${allocatedIps(p)[0]} while ${other} was terminating`);
        }
        const fresh = now.filter((p) => p.metadata?.labels?.rev === '2');
        return now.length === 5 && fresh.length === 5 && fresh.every(isReady) ? true : undefined;
      },
      240_000,
      200,
    );
    expect(sawTerminating).toBe(true);
    expect(overlaps).toEqual([]);
    for (const p of (await pods()).filter(isReady)) netpinIps(p);

    const live = new Set((await pods()).map((p) => allocatedIps(p)[0]!));
    expect([...live].filter((ip) => oldIps.has(ip))).toEqual([]);
    // Once the old pods are gone, their addresses are released: the claims are the live pods'.
    await waitFor(
      'the old addresses released',
      async () => {
        const claimed = (await listClaims(c, 'roll')).map((x) => x.ip).sort();
        return JSON.stringify(claimed) === JSON.stringify([...live].sort()) ? true : undefined;
      },
      60_000,
      500,
    );
  });
});

describe('a one-replica Recreate Deployment with netpin.io/ip', () => {
  it('rolls out with the same address, passed from the old pod to the new', async () => {
    await c.apps.createNamespacedDeployment({
      namespace: NS,
      body: {
        metadata: { name: 'solo' },
        spec: {
          replicas: 1,
          strategy: { type: 'Recreate' },
          selector: { matchLabels: { app: 'solo' } },
          template: {
            metadata: { labels: { app: 'solo' }, annotations: { 'netpin.io/ip': '10.244.62.200' } },
            spec: appSpec('2s', 30),
          },
        },
      },
    });
    const first = await waitFor(
      'solo Ready',
      async () => (await podsWithPrefix(c, NS, 'solo-')).find(isReady),
      120_000,
      250,
    );
    const started = Date.now();
    await c.apps.patchNamespacedDeployment({
      name: 'solo',
      namespace: NS,
      body: [{ op: 'add', path: '/spec/template/metadata/labels/rev', value: '2' }],
    });
    const next = await waitFor(
      'the new solo pod Ready',
      async () => {
        const p = (await podsWithPrefix(c, NS, 'solo-', true)).filter((x) => x.metadata?.uid !== first.metadata?.uid);
        return p.length === 1 && isReady(p[0]!) ? p[0] : undefined;
      },
      180_000,
      250,
    );
    expect(netpinIps(next)).toEqual(['10.244.62.200']);
    process.stderr.write(
      `node: 10.244.62.200 passed from the old pod to the new, Ready, in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
    );
  });
});

describe('a DaemonSet with netpin.io/pool', () => {
  it("brings its node's pod back on the node's address after the pod is deleted", async () => {
    await c.apps.createNamespacedDaemonSet({
      namespace: NS,
      body: {
        metadata: { name: 'agent' },
        spec: {
          selector: { matchLabels: { app: 'agent' } },
          template: {
            metadata: { labels: { app: 'agent' }, annotations: { 'netpin.io/pool': 'web' } },
            spec: appSpec('0s', 5),
          },
        },
      },
    });
    const ready = (not?: string) =>
      waitFor(
        'the agent pod Ready',
        async () => (await podsWithPrefix(c, NS, 'agent-')).find((p) => isReady(p) && p.metadata?.uid !== not),
        120_000,
        250,
      );
    const first = await ready();
    const [ip] = netpinIps(first);
    await c.core.deleteNamespacedPod({ name: first.metadata!.name!, namespace: NS });
    const next = await ready(first.metadata!.uid);
    expect(netpinIps(next)).toEqual([ip]);
    expect((await listClaims(c, 'web')).filter((x) => x.ip === ip)).toHaveLength(1);
    // Gone before the node stops: a live DaemonSet would make its pod again while the node drains.
    await c.apps.deleteNamespacedDaemonSet({ name: 'agent', namespace: NS, propagationPolicy: 'Foreground' });
    await waitFor(
      'the agent pods gone',
      async () => ((await podsWithPrefix(c, NS, 'agent-', true)).length === 0 ? true : undefined),
      120_000,
      500,
    );
  });
});

describe('while netpin loses a replica', () => {
  it('admits every pod of a burst', async () => {
    const replicas = (await c.core.listNamespacedPod({ namespace: netpin.namespace, labelSelector: REPLICAS })).items;
    const creations = Array.from({ length: 20 }, (_, i) =>
      c.core.createNamespacedPod({
        namespace: NS,
        body: { metadata: { name: `burst-${i}`, annotations: { 'netpin.io/pool': 'web' } }, spec: appSpec() },
      }),
    );
    await new Promise((r) => setTimeout(r, 100));
    await c.core.deleteNamespacedPod({ name: replicas[0]!.metadata!.name!, namespace: netpin.namespace });
    const results = await Promise.allSettled(creations);
    expect(
      results.filter((r) => r.status === 'rejected').map((r) => apiMessage((r as PromiseRejectedResult).reason)),
    ).toEqual([]);
    // And once more, after the Deployment replaced it.
    await waitFor(
      'two netpin replicas Ready again',
      async () => {
        const p = (
          await c.core.listNamespacedPod({ namespace: netpin.namespace, labelSelector: REPLICAS })
        ).items.filter((x) => !x.metadata?.deletionTimestamp);
        return p.length === 2 && p.every(isReady) ? true : undefined;
      },
      120_000,
      500,
    );
    const ips = (await podsWithPrefix(c, NS, 'burst-')).map((p) => allocatedIps(p)[0]);
    expect(new Set(ips).size).toBe(20);
  });
});

describe('the whole run', () => {
  it('left no pod of an opted-in namespace failing its sandbox', async () => {
    expect((await sandboxFailures(NS)).map((e) => `${e.involvedObject.name}: ${e.message}`)).toEqual([]);
  });
});
