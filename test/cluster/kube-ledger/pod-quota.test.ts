// The pods quota a namespace's StatefulSet reservations count against (KubeLedger.podQuota).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { KubeLedger } from '../../../src/cluster/kube-ledger.js';
import { kubeConfigAt } from '../../../harness/cluster.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

/** An API server on loopback answering each request with `answer`, recording the paths asked. */
async function apiServer(answer: (path: string) => { status: number; body?: unknown }) {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(req.url ?? '');
    const { status, body } = answer(req.url ?? '');
    res
      .writeHead(status, { 'content-type': 'application/json' })
      .end(JSON.stringify(body ?? { kind: 'Status', code: status }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => {
    server.closeAllConnections();
    return new Promise((r) => server.close(() => r()));
  });
  return { seen, kc: kubeConfigAt(`http://127.0.0.1:${(server.address() as AddressInfo).port}`) };
}

const quota = (name: string, hard: Record<string, string>, spec: Record<string, unknown> = {}) => ({
  metadata: { name },
  spec: { hard, ...spec },
});

describe("a namespace's pods quota", () => {
  it('is the lowest pods or count/pods hard limit of the quotas that apply to every pod', async () => {
    const api = await apiServer(() => ({
      status: 200,
      body: {
        kind: 'ResourceQuotaList',
        items: [
          quota('compute', { pods: '20', 'requests.cpu': '4' }),
          quota('objects', { 'count/pods': '1k' }),
          // Scoped: applies to some pods only, so it bounds nothing for a StatefulSet's.
          quota('best-effort', { pods: '2' }, { scopes: ['BestEffort'] }),
          quota('priority', { pods: '1' }, { scopeSelector: { matchExpressions: [] } }),
          quota('tight', { 'count/pods': '12' }),
          quota('memory', { 'limits.memory': '1Gi' }),
        ],
      },
    }));
    const ledger = new KubeLedger(api.kc);
    expect(await ledger.podQuota('shop')).toEqual({ pods: 12, quota: 'tight (count/pods: 12)' });
    expect(api.seen).toEqual(['/api/v1/namespaces/shop/resourcequotas']);
  });

  it('is none without a quota on pods, and none, with a warning, when the quotas cannot be read', async () => {
    const none = await apiServer(() => ({
      status: 200,
      body: { kind: 'ResourceQuotaList', items: [quota('m', { 'limits.memory': '1Gi' })] },
    }));
    expect(await new KubeLedger(none.kc).podQuota('shop')).toBeUndefined();
    const forbidden = await apiServer(() => ({ status: 403 }));
    const warned: unknown[] = [];
    const log = { warn: (...args: unknown[]) => warned.push(args) } as never;
    expect(await new KubeLedger(forbidden.kc, log).podQuota('shop')).toBeUndefined();
    expect(warned).toHaveLength(1);
  });
});
