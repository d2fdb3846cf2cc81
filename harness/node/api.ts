// The node's own calls to the API server, with the control plane's admin client certificate:
// waiting for the Node to be ready and draining it before stop.
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { sleep, type ControlPlane } from '../controlplane.js';
import type { WireJson } from '../json.js';
import { links } from './host.js';
import { BRIDGE } from './network.js';

export interface Api {
  (method: string, urlPath: string, body?: unknown, contentType?: string): Promise<{ status: number; json: WireJson }>;
  destroy(): void;
}

export function adminApi(cp: ControlPlane): Api {
  const agent = new https.Agent({
    ca: cp.caPem,
    cert: fs.readFileSync(path.join(cp.dir, 'admin.crt')),
    key: fs.readFileSync(path.join(cp.dir, 'admin.key')),
    keepAlive: true,
  });
  const call = (method: string, urlPath: string, body?: unknown, contentType = 'application/json') =>
    new Promise<{ status: number; json: WireJson }>((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = https.request(
        new URL(urlPath, cp.url),
        {
          method,
          agent,
          timeout: 10_000,
          headers: {
            accept: 'application/json',
            // Explicit: Node sends a DELETE body without a length, which breaks the kept-alive connection.
            ...(payload ? { 'content-type': contentType, 'content-length': Buffer.byteLength(payload) } : {}),
          },
        },
        (res) => {
          let data = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (data += c));
          res.on('end', () => {
            let json: unknown;
            try {
              json = data ? JSON.parse(data) : undefined;
            } catch {
              json = data;
            }
            resolve({ status: res.statusCode ?? 0, json });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath}: timeout`)));
      req.on('error', reject);
      req.end(payload);
    });
  return Object.assign(call, { destroy: () => agent.destroy() });
}

/** Cordons the node and force-deletes its pods, then waits until kubelet has torn their networks down. */
export async function drain(api: Api, node: string, timeoutMs: number): Promise<void> {
  const cordon = await api(
    'PATCH',
    `/api/v1/nodes/${node}`,
    { spec: { unschedulable: true } },
    'application/strategic-merge-patch+json',
  );
  if (cordon.status !== 200) throw new Error(`cordoning: ${cordon.status} ${JSON.stringify(cordon.json)}`);
  const list = await api('GET', `/api/v1/pods?fieldSelector=spec.nodeName%3D${encodeURIComponent(node)}`);
  if (list.status !== 200) throw new Error(`listing pods: ${list.status} ${JSON.stringify(list.json)}`);
  for (const p of list.json.items ?? []) {
    const del = await api('DELETE', `/api/v1/namespaces/${p.metadata.namespace}/pods/${p.metadata.name}`, {
      gracePeriodSeconds: 0,
    });
    if (del.status !== 200 && del.status !== 404)
      throw new Error(`deleting pod ${p.metadata.name}: ${del.status} ${JSON.stringify(del.json)}`);
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const veths = (await links()).filter((l) => l.master === BRIDGE && l.linkinfo?.info_kind === 'veth');
    if (veths.length === 0) return;
    if (Date.now() > deadline)
      throw new Error(`pod veths still attached after ${timeoutMs} ms: ${veths.map((l) => l.ifname).join(' ')}`);
    await sleep(250);
  }
}
