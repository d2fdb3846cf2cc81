// Smoke test of the test control plane: a real kube-apiserver + kube-controller-manager
// turn a Deployment into Pods (which stay Pending: there is no scheduler/kubelet).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as https from 'node:https';
import { binaries, startControlPlane, type ControlPlane } from './support/controlplane.js';

interface Client {
  server: URL;
  agent: https.Agent;
}

function kubeconfigField(text: string, field: string): string {
  const m = new RegExp(`^\\s*${field}:\\s*(\\S+)\\s*$`, 'm').exec(text);
  if (!m?.[1]) throw new Error(`kubeconfig has no ${field}`);
  return m[1];
}

function clientFromKubeconfig(kubeconfigPath: string): Client {
  const text = fs.readFileSync(kubeconfigPath, 'utf8');
  const b64 = (f: string): string => Buffer.from(kubeconfigField(text, f), 'base64').toString('utf8');
  return {
    server: new URL(kubeconfigField(text, 'server')),
    agent: new https.Agent({
      ca: b64('certificate-authority-data'),
      cert: b64('client-certificate-data'),
      key: b64('client-key-data'),
      keepAlive: true,
    }),
  };
}

async function kube(c: Client, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request(
      new URL(path, c.server),
      {
        method,
        agent: c.agent,
        headers: { accept: 'application/json', ...(payload ? { 'content-type': 'application/json' } : {}) },
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (data += chunk));
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, json: data ? JSON.parse(data) : undefined });
          } catch (err) {
            reject(new Error(`${method} ${path}: ${res.statusCode} non-JSON body: ${data.slice(0, 500)}`));
          }
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

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
    let pods: any[] = [];
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
