// Smoke test of the test control plane: a real kube-apiserver + kube-controller-manager
// turn a Deployment into Pods (which stay Pending: there is no scheduler/kubelet).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { binaries, startControlPlane, type ControlPlane } from '../../harness/controlplane.js';
import { clientFromKubeconfig, kube, type Client } from '../../harness/rest.js';
import type { WireJson } from '../../harness/json.js';

describe('test control plane', () => {
  let cp: ControlPlane | undefined;
  let client: Client;

  beforeAll(async () => {
    await binaries(); // first run builds from source: may take a long time
    cp = await startControlPlane();
    client = clientFromKubeconfig(cp.kubeconfigPath);
  }, 45 * 60_000);

  afterAll(async () => {
    client?.agent.destroy();
    await cp?.stop();
  }, 60_000);

  it('runs a Deployment through the real controller manager', async () => {
    const ns = 'smoke';
    const version = await kube(client, 'GET', '/version');
    expect(version.status).toBe(200);
    expect(version.json.gitVersion).toBe('v1.36.3');

    const created = await kube(client, 'POST', '/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: ns },
    });
    expect(created.status, JSON.stringify(created.json)).toBe(201);

    const deploy = await kube(client, 'POST', `/apis/apps/v1/namespaces/${ns}/deployments`, {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web' },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: { containers: [{ name: 'web', image: 'registry.k8s.io/pause:3.10' }] },
        },
      },
    });
    expect(deploy.status, JSON.stringify(deploy.json)).toBe(201);

    const deadline = Date.now() + 90_000;
    let pods: WireJson[] = [];
    while (Date.now() < deadline) {
      const list = await kube(client, 'GET', `/api/v1/namespaces/${ns}/pods?labelSelector=app%3Dweb`);
      expect(list.status).toBe(200);
      pods = list.json.items;
      if (pods.length >= 2) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(pods).toHaveLength(2);
    for (const pod of pods) {
      expect(pod.status.phase).toBe('Pending'); // no scheduler, no kubelet
      expect(pod.metadata.ownerReferences?.[0]?.kind).toBe('ReplicaSet');
    }
  });
});
