// What the API server counted: its writes by resource (apiserver_request_total), read off its /metrics
// with the control plane's admin certificate.
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import type * as cps from '../../harness/controlplane.js';

const READS = new Set(['GET', 'LIST', 'WATCH', 'WATCHLIST', 'CONNECT']);

function metricsText(cp: cps.ControlPlane): Promise<string> {
  const tls = {
    ca: cp.caPem,
    cert: readFileSync(join(cp.dir, 'admin.crt')),
    key: readFileSync(join(cp.dir, 'admin.key')),
  };
  return new Promise((resolve, reject) => {
    https
      .get(`${cp.url}/metrics`, { ...tls, timeout: 30_000 }, (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (data += c));
        res.on('end', () =>
          res.statusCode === 200 ? resolve(data) : reject(new Error(`apiserver /metrics: HTTP ${res.statusCode}`)),
        );
      })
      .on('error', reject);
  });
}

/** Writes so far by "resource[/subresource]", every client and outcome together. */
export async function apiserverWrites(cp: cps.ControlPlane): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await metricsText(cp)).split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const labels = Object.fromEntries(
      [...line.slice(line.indexOf('{') + 1, line.lastIndexOf('}')).matchAll(/(\w+)="([^"]*)"/g)].map((m) => [
        m[1],
        m[2],
      ]),
    );
    if (!labels.verb || READS.has(labels.verb)) continue;
    const key = labels.subresource ? `${labels.resource}/${labels.subresource}` : (labels.resource ?? '?');
    out.set(key, (out.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return out;
}

/** after − before, by resource, without the zeros. */
export function writesBetween(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, n] of after) {
    const d = n - (before.get(key) ?? 0);
    if (d > 0) out[key] = d;
  }
  return out;
}
