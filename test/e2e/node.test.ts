// netpin on a real node: its own image, installed by helm, its webhooks reached in-cluster, and
// pods that kubelet really starts, probes, rolls and terminates. The node's CNI is the reference
// bridge plugin with host-local IPAM, so pod IPs come from the bridge range, not from netpin:
// what is proven here is everything up to a CNI reading netpin's address annotations (which
// netpin writes in the Calico dialect, checked through the annotations).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CoreV1Event, V1Pod, V1PodSpec } from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from './support/controlplane.js';
import { apiMessage, calicoIps, clients, createNamespace, createPool, listClaims, podsWithPrefix, waitFor, type Clients } from './support/cluster.js';
import { installNetpin, type Installed } from './support/install.js';
import { APP_IMAGE, APP_PORT, nodeControlPlaneOptions, startNode, type Node } from './support/node.js';

const NS = 'shop';
const PLAIN = 'plain';
const GRACE_SECONDS = 5;

let cp: ControlPlane;
let node: Node;
let c: Clients;
let netpin: Installed;

/** The app, probed for real, ending $termDelay after SIGTERM. */
function appSpec(termDelay = '0s', grace = 30): V1PodSpec {
  return {
    terminationGracePeriodSeconds: grace,
    containers: [{
      name: 'app',
      image: APP_IMAGE,
      imagePullPolicy: 'Never',
      env: [{ name: 'TERM_DELAY', value: termDelay }],
      ports: [{ containerPort: APP_PORT }],
      readinessProbe: { httpGet: { path: '/healthz', port: APP_PORT }, periodSeconds: 1 },
    }],
  };
}

const isReady = (p: V1Pod) => p.status?.phase === 'Running' && (p.status.conditions ?? []).some((x) => x.type === 'Ready' && x.status === 'True');

async function readyPod(name: string, namespace = NS): Promise<V1Pod> {
  return waitFor(`pod ${name} Ready`, async () => {
    const p = await c.core.readNamespacedPod({ name, namespace });
    return isReady(p) ? p : undefined;
  }, 90_000, 250);
}

async function sandboxFailures(namespace: string): Promise<CoreV1Event[]> {
  return (await c.core.listNamespacedEvent({ namespace })).items.filter((e) => e.reason === 'FailedCreatePodSandBox');
}

beforeAll(async () => {
  cp = await startControlPlane(nodeControlPlaneOptions());
  node = await startNode(cp);
  c = clients(cp.kubeconfigPath);
  const started = Date.now();
  netpin = await installNetpin(cp, node, { cni: 'calico', claimGraceSeconds: GRACE_SECONDS });
  process.stderr.write(`node: netpin installed and Ready in ${Date.now() - started} ms\n`);
  await createNamespace(c, NS, { 'netpin.io/enabled': 'true' });
  await createNamespace(c, PLAIN);
  await createPool(c, 'web', { cidr: '10.60.0.0/24' });
});

afterAll(async () => {
  try {
    await netpin?.uninstall();
    await node?.stop();
  } finally {
    await cp?.stop();
  }
});

describe('netpin installed by helm on the node', () => {
  it('runs two Ready replicas from its own image, as the non-root user, on a read-only root', async () => {
    const pods = (await c.core.listNamespacedPod({ namespace: netpin.namespace })).items;
    expect(pods).toHaveLength(2);
    for (const p of pods) {
      expect(isReady(p)).toBe(true);
      expect(p.spec?.containers[0]?.image).toBe('netpin.test/netpin:e2e');
      expect(p.spec?.containers[0]?.securityContext).toMatchObject({ readOnlyRootFilesystem: true, runAsNonRoot: true });
    }
  });
});

describe('rates', () => {
  it('become the qdiscs of a running pod: 10 Mbit/s out, 20 Mbit/s in', async () => {
    await c.core.createNamespacedPod({
      namespace: NS,
      body: { metadata: { name: 'limited', annotations: { 'netpin.io/egress-rate': '10M', 'netpin.io/ingress-rate': '20M' } }, spec: appSpec() },
    });
    const pod = await readyPod('limited');
    expect(pod.metadata?.annotations).toMatchObject({ 'kubernetes.io/egress-bandwidth': '10M', 'kubernetes.io/ingress-bandwidth': '20M' });
    expect(await node.podShaping(pod.metadata!.uid!)).toMatchObject({ egress: '10Mbit', ingress: '20Mbit' });
  });

  it('are needed: a hand-written 10Mbps fails the sandbox where netpin does not look, and is refused where it does', async () => {
    await c.core.createNamespacedPod({ namespace: PLAIN, body: { metadata: { name: 'bad-rate', annotations: { 'kubernetes.io/egress-bandwidth': '10Mbps' } }, spec: appSpec() } });
    const failure = await waitFor('FailedCreatePodSandBox for bad-rate', async () => (await sandboxFailures(PLAIN)).find((e) => e.involvedObject.name === 'bad-rate'), 60_000, 500);
    process.stderr.write(`node: containerd on a 10Mbps egress-bandwidth: ${failure.message}\n`);
    expect(failure.message).toContain('reading pod bandwidth annotations');
    const err = await c.core.createNamespacedPod({ namespace: NS, body: { metadata: { name: 'bad-rate', annotations: { 'kubernetes.io/egress-bandwidth': '10Mbps' } }, spec: appSpec() } }).then(() => undefined, (e: unknown) => e);
    expect(apiMessage(err)).toContain('kubernetes.io/egress-bandwidth (CNI Calico): "10Mbps" is not a Kubernetes quantity, so containerd would refuse the pod sandbox');
  });
});
