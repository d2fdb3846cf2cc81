// Smoke test of the test node: a real kubelet + containerd + runc + CNI bridge/bandwidth
// run a locally built image next to the test control plane, containerd turns the
// bandwidth annotations into tc qdiscs (and refuses a malformed one), and stop()
// leaves the host as it found it.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { binaries, startControlPlane, type ControlPlane } from '../../harness/controlplane.js';
import { clientFromKubeconfig, kube, kubeText, type Client } from '../../harness/rest.js';
import {
  APP_IMAGE,
  APP_PORT,
  BRIDGE,
  nodeBinaries,
  nodeControlPlaneOptions,
  startNode,
  type Node,
} from '../../harness/node.js';
import type { WireJson } from '../../harness/json.js';

const execFileP = promisify(execFile);

async function until<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function sh(cmd: string, args: string[]): Promise<string> {
  return (await execFileP(cmd, args, { timeout: 10_000 })).stdout;
}

function httpGet(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 5_000, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: timeout`)));
    req.on('error', reject);
  });
}

function appPod(name: string, annotations: Record<string, string>): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, annotations },
    spec: {
      terminationGracePeriodSeconds: 5,
      containers: [
        {
          name: 'app',
          image: APP_IMAGE,
          imagePullPolicy: 'Never', // the image exists only in the node's containerd
          ports: [{ containerPort: APP_PORT }],
          readinessProbe: { httpGet: { path: '/healthz', port: APP_PORT }, periodSeconds: 1 },
        },
      ],
    },
  };
}

describe('test node', () => {
  const ns = 'node-smoke';
  const t0 = Date.now();
  let cp: ControlPlane | undefined;
  let node: Node | undefined;
  let client: Client;

  beforeAll(async () => {
    // First run builds from source: may take a long time.
    await Promise.all([binaries(), nodeBinaries()]);
    cp = await startControlPlane(nodeControlPlaneOptions());
    client = clientFromKubeconfig(cp.kubeconfigPath);
    node = await startNode(cp);
    process.stderr.write(`node: timings since startNode (ms) ${JSON.stringify(node.timings)}\n`);
    const created = await kube(client, 'POST', '/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: ns },
    });
    expect(created.status, JSON.stringify(created.json)).toBe(201);
  }, 45 * 60_000);

  afterAll(async () => {
    client?.agent.destroy();
    try {
      await node?.stop();
    } finally {
      await cp?.stop();
      process.stderr.write(`node: smoke wall time ${Date.now() - t0} ms\n`);
    }
  }, 120_000);

  it('registers a Ready node at the control plane version, reachable on loopback', async () => {
    const r = await kube(client, 'GET', `/api/v1/nodes/${node!.name}`);
    expect(r.status).toBe(200);
    expect(r.json.status.nodeInfo.kubeletVersion).toBe('v1.36.3');
    expect(r.json.status.nodeInfo.containerRuntimeVersion).toBe('containerd://2.4.2');
    // The apiserver dials the loopback-only kubelet by this address (node.ts NODE_NAME).
    expect(r.json.status.addresses).toContainEqual({ type: 'Hostname', address: 'localhost' });
    expect(r.json.spec.taints ?? []).toEqual([]);
  });

  it('runs a pod whose bandwidth annotations become tbf qdiscs on its veth and ifb', async () => {
    const created = await kube(
      client,
      'POST',
      `/api/v1/namespaces/${ns}/pods`,
      appPod('bw', {
        'kubernetes.io/egress-bandwidth': '10M',
        'kubernetes.io/ingress-bandwidth': '20M',
      }),
    );
    expect(created.status, JSON.stringify(created.json)).toBe(201);
    const createdAt = Date.now();
    const pod = await until('pod bw Running and Ready', 90_000, async () => {
      const r = await kube(client, 'GET', `/api/v1/namespaces/${ns}/pods/bw`);
      const ready = (r.json.status?.conditions ?? []).some((c: WireJson) => c.type === 'Ready' && c.status === 'True');
      return r.json.status?.phase === 'Running' && ready ? r.json : undefined;
    });
    process.stderr.write(`node: pod bw Running and Ready after ${Date.now() - createdAt} ms\n`);
    expect(pod.spec.nodeName).toBe(node!.name);
    expect(pod.status.podIP).toMatch(/^10\.244\.0\.\d+$/);
    // The host routes to the bridge network directly (isGateway), as kube-apiserver will.
    expect(await httpGet(`http://${pod.status.podIP}:${APP_PORT}/healthz`)).toBe(200);

    // kube-apiserver -> kubelet (logs) works: the apiserver-to-kubelet client cert, on loopback.
    const logs = await kubeText(client, `/api/v1/namespaces/${ns}/pods/bw/log?container=app`);
    expect(logs.status, logs.body).toBe(200);
    expect(logs.body).toContain(`app: listening on :${APP_PORT}`);

    const veth = await node!.podHostVeth(pod.metadata.uid);
    const link = JSON.parse(await sh('ip', ['-j', 'link', 'show', 'dev', veth]))[0];
    expect(link.master).toBe(BRIDGE);

    // 20Mbit on the veth for ingress, 10Mbit on the ifb for egress (node.ts podShaping).
    const shaping = await node!.podShaping(pod.metadata.uid);
    expect(shaping.ifb, `no mirred redirect on ${veth}`).toMatch(/^bwp/);
    expect(shaping).toMatchObject({ ingress: '20Mbit', egress: '10Mbit' });
  });

  it('fails the sandbox of a pod with a malformed bandwidth value', async () => {
    const created = await kube(
      client,
      'POST',
      `/api/v1/namespaces/${ns}/pods`,
      appPod('bad', {
        'kubernetes.io/egress-bandwidth': '10Mbps',
      }),
    );
    expect(created.status, JSON.stringify(created.json)).toBe(201);
    const event = await until('FailedCreatePodSandBox for pod bad', 60_000, async () => {
      const r = await kube(client, 'GET', `/api/v1/namespaces/${ns}/events?fieldSelector=involvedObject.name%3Dbad`);
      return (r.json.items ?? []).find((e: WireJson) => e.reason === 'FailedCreatePodSandBox');
    });
    // containerd checks the value before any CNI call (cni-contract.md §0).
    expect(event.message).toContain('reading pod bandwidth annotations');
    expect(event.message).toContain(
      "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
    );
    const pod = await kube(client, 'GET', `/api/v1/namespaces/${ns}/pods/bad`);
    expect(pod.json.status.phase).toBe('Pending');
  });

  it('stops and leaves the host as it found it', async () => {
    const n = node!;
    await n.stop();
    expect(await n.leftovers()).toEqual([]);

    // The same facts, checked without the harness's own bookkeeping.
    await expect(sh('ip', ['link', 'show', 'dev', BRIDGE])).rejects.toThrow();
    const linksNow: WireJson[] = JSON.parse(await sh('ip', ['-j', '-d', 'link', 'show']));
    const newLinks = linksNow.map((l) => l.ifname as string).filter((name) => !n.before.links.includes(name));
    expect(newLinks).toEqual([]);
    for (const root of fs.readdirSync('/sys/fs/cgroup')) {
      const dir = path.join('/sys/fs/cgroup', root);
      if (!fs.statSync(dir).isDirectory()) continue;
      expect(
        fs.readdirSync(dir).filter((e) => e.startsWith('kubepods')),
        dir,
      ).toEqual([]);
    }
    for (const [key, value] of Object.entries(n.before.sysctls)) {
      expect(fs.readFileSync(path.join('/proc/sys', ...key.split('.')), 'utf8').trim(), key).toBe(value);
    }
    expect(fs.existsSync(n.dir)).toBe(process.env.NETPIN_NODE_KEEP ? true : false);
    const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    expect(mounts).not.toContain(n.dir);
  });
});
