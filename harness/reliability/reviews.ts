// Reviews posted straight to one replica, as the API server would post them.
import type { WireJson } from '../json.js';
import { decodePatch, type Netpin } from '../netpin.js';
import { spec, WEBHOOK_TIMEOUT_MS } from './env.js';

export function podReview(namespace: string, pool: string, name: string | undefined, uid: string) {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace,
      ...(name ? { name } : {}),
      operation: 'CREATE',
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          ...(name ? { name } : { generateName: 'ghost-' }),
          namespace,
          annotations: { 'netpin.io/pool': pool },
        },
        spec,
      },
    },
  };
}

/** The address a mutate answer gives, or why there is none. */
function allocatedBy(answer: { status: number; json: WireJson }): { ip?: string; error?: string } {
  if (answer.status !== 200) return { error: `HTTP ${answer.status}` };
  const r = answer.json?.response;
  if (!r?.allowed) return { error: r?.status?.message ?? 'denied' };
  const op = decodePatch(r).find((o) => o.path === '/metadata/annotations/netpin.io~1allocated');
  return op ? { ip: String(op.value) } : { error: 'no netpin.io/allocated in the patch' };
}

const agents = new Map<string, import('node:https').Agent>();

/**
 * One review, answered or failed within the webhook timeout (a review is never waited for longer
 * than the API server would). `fresh`: on a new TLS connection, else on a kept-alive one.
 */
async function review(
  port: number,
  ca: string,
  body: unknown,
  fresh = false,
): Promise<{ status: number; json: WireJson }> {
  const https = await import('node:https');
  let agent: import('node:https').Agent | false = false;
  if (!fresh) {
    agent = agents.get(ca) ?? new https.Agent({ keepAlive: true, maxSockets: 16, ca });
    agents.set(ca, agent);
  }
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: '/mutate',
        method: 'POST',
        ca,
        agent,
        timeout: WEBHOOK_TIMEOUT_MS,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
          ...(fresh ? { connection: 'close' } : {}),
        },
      },
      (res) => {
        let data = '';
        res
          .setEncoding('utf8')
          .on('data', (d: string) => (data += d))
          .on('end', () => {
            try {
              resolve({ status: res.statusCode ?? 0, json: JSON.parse(data) });
            } catch {
              resolve({
                status: res.statusCode ?? 0,
                json: { response: { status: { message: `not JSON: ${data.slice(0, 200)}` } } },
              });
            }
          });
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within the webhook timeout')));
    req.on('error', reject);
    req.end(payload);
  });
}

/** The address a replica's answer to a pod review gives, or why there is none; never throws. */
export async function allocate(
  n: Pick<Netpin, 'port' | 'caPem'>,
  body: unknown,
  fresh = false,
): Promise<{ ip?: string; error?: string }> {
  return review(n.port, n.caPem, body, fresh).then(allocatedBy, (e: unknown) => ({
    error: e instanceof Error ? e.message : String(e),
  }));
}
