// A raw REST client for the smoke tests, which check the components themselves rather than through
// client-node: it speaks to the API server as the admin kubeconfig says.
import * as fs from 'node:fs';
import * as https from 'node:https';
import type { WireJson } from './json.js';

export interface Client {
  server: URL;
  agent: https.Agent;
}

function kubeconfigField(text: string, field: string): string {
  const m = new RegExp(`^\\s*${field}:\\s*(\\S+)\\s*$`, 'm').exec(text);
  if (!m?.[1]) throw new Error(`kubeconfig has no ${field}`);
  return m[1];
}

export function clientFromKubeconfig(kubeconfigPath: string): Client {
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

export async function kube(
  c: Client,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: WireJson }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request(
      new URL(path, c.server),
      {
        method,
        agent: c.agent,
        timeout: 10_000,
        headers: {
          accept: 'application/json',
          ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
        },
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (data += chunk));
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, json: data ? JSON.parse(data) : undefined });
          } catch (err) {
            reject(
              new Error(`${method} ${path}: ${res.statusCode} non-JSON body: ${data.slice(0, 500)}`, { cause: err }),
            );
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timeout`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** GET of a plain-text subresource (pods/log). */
export async function kubeText(c: Client, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(new URL(path, c.server), { method: 'GET', agent: c.agent, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timeout`)));
    req.on('error', reject);
    req.end();
  });
}
