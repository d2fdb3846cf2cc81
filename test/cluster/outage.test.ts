// An API server that takes connections and never answers, as a frozen kube-apiserver does, on loopback:
// what the admission path and readiness make of it, in this process.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { KubeConfig } from '@kubernetes/client-node';
import { ApiServerProbe } from '../../src/cluster/api-probe.js';
import { withDeadline } from '../../src/cluster/deadline.js';
import { StaticClusterView } from '../../src/cluster/view.js';
import { dialectFor } from '../../src/cni/index.js';
import { Allocator } from '../../src/ipam/allocator.js';
import { KubeLedger } from '../../src/cluster/kube-ledger.js';
import type { Owner } from '../../src/ipam/claim.js';
import { compilePool } from '../../src/ipam/pool.js';
import { buildApp } from '../../src/transport/app.js';
import { v4 } from '../cni/fixtures.js';
import { kubeConfigAt } from '../../harness/cluster.js';
import { podCreate, post } from '../../harness/reviews.js';

const small = compilePool({ metadata: { name: 'small' }, spec: { ranges: ['10.0.0.1-10.0.0.3'] } });
const owner: Owner = { kind: 'Pod', namespace: 'shop', name: 'a' };

interface FakeApiServer {
  kc: KubeConfig;
  /** Requests received so far, and whether the client has closed each. */
  seen: Array<{ method: string; url: string; closed: boolean }>;
  /** How the server treats what comes next: hang (never answer) or answer with this status. */
  mode: 'hang' | number;
  onRequest?: (req: IncomingMessage) => void;
}

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r) ?? r(undefined));
  server = undefined;
});

async function apiServer(): Promise<FakeApiServer> {
  const fake: FakeApiServer = { kc: new KubeConfig(), seen: [], mode: 'hang' };
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const entry = { method: req.method ?? '', url: req.url ?? '', closed: false };
    fake.seen.push(entry);
    res.on('close', () => (entry.closed = true));
    fake.onRequest?.(req);
    if (fake.mode !== 'hang') res.writeHead(fake.mode, { 'content-type': 'text/plain' }).end('ok');
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  fake.kc = kubeConfigAt(`http://127.0.0.1:${port}`);
  return fake;
}

describe('a claim write the API server does not answer', () => {
  it('is aborted at the deadline, and leaves the address free here', async () => {
    const api = await apiServer();
    const ledger = new KubeLedger(api.kc);
    ledger.index.setPool(small);
    const started = performance.now();
    const err = await withDeadline(200, () => ledger.claim(small, v4('10.0.0.1'), owner)).catch((e: unknown) => e);
    expect(performance.now() - started).toBeLessThan(1_000);
    expect((err as Error).message).toBe(
      'claiming 10.0.0.1 in IPPool small: the API server did not answer within 0.2 s',
    );
    // Aborted for real: the connection is gone, not left waiting behind a promise that lost a race.
    await expect
      .poll(() => api.seen.map((s) => [s.method, s.url, s.closed]))
      .toEqual([['POST', '/apis/netpin.io/v1alpha1/ipclaims', true]]);
    expect(ledger.index.holderOf(v4('10.0.0.1'))).toBeUndefined();
    expect(ledger.index.firstFree('small', 'ipv4')?.toString()).toBe('10.0.0.1');
  });

  it('keeps the address held when the watch has shown the claim stored before the deadline', async () => {
    const api = await apiServer();
    const ledger = new KubeLedger(api.kc);
    ledger.index.setPool(small);
    // What the IPClaim watch does with the stored object: the address is held already, by this claim.
    api.onRequest = () => {
      const stored = { pool: 'small', ip: v4('10.0.0.1'), owner, createdAt: Date.now(), ref: 'uid-1' };
      if (!ledger.index.add(stored)) ledger.index.confirm(stored);
    };
    await expect(withDeadline(200, () => ledger.claim(small, v4('10.0.0.1'), owner))).rejects.toThrow(
      /did not answer within 0.2 s/,
    );
    expect(ledger.index.holderOf(v4('10.0.0.1'))).toMatchObject({ owner, ref: 'uid-1' });
    expect(ledger.index.firstFree('small', 'ipv4')?.toString()).toBe('10.0.0.2');
  });

  it('gives an allocating admission an in-band error within 2 s that says what netpin was doing', async () => {
    const api = await apiServer();
    const ledger = new KubeLedger(api.kc);
    ledger.index.setPool(small);
    const cluster = new StaticClusterView();
    const app = await buildApp({
      deps: { dialect: dialectFor('calico'), allocator: new Allocator(ledger), cluster, releaseOnDelete: false },
    });
    const started = performance.now();
    const answer = await post(app, 'mutate', podCreate({ name: 'a', annotations: { 'netpin.io/pool': 'small' } }));
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(answer.status).toBe(200);
    expect(answer.response.allowed).toBe(false);
    expect(answer.response.status).toEqual({
      code: 500,
      reason: 'InternalError',
      message: 'netpin could not decide: claiming 10.0.0.1 in IPPool small: the API server did not answer within 1.5 s',
    });
    expect(ledger.index.holderOf(v4('10.0.0.1'))).toBeUndefined();
  });
});

describe('a slow API server, which answers its probe', () => {
  it('is waited for past the deadline, up to the hard deadline', async () => {
    const api = await apiServer();
    const ledger = new KubeLedger(api.kc);
    ledger.index.setPool(small);
    const probe = {
      get lastAnsweredAt() {
        return performance.now();
      },
    };
    const started = performance.now();
    const err = await withDeadline(100, () => ledger.claim(small, v4('10.0.0.1'), owner), 600, probe).catch(
      (e: unknown) => e,
    );
    const took = performance.now() - started;
    expect(String(err)).toMatch(/did not answer within 0\.6 s/);
    expect(took).toBeGreaterThanOrEqual(550);
    expect(took).toBeLessThan(1_500);
  });

  it('is not, once its probe stopped answering before the admission began', async () => {
    const api = await apiServer();
    const ledger = new KubeLedger(api.kc);
    ledger.index.setPool(small);
    const probe = { lastAnsweredAt: performance.now() };
    const started = performance.now();
    await expect(withDeadline(100, () => ledger.claim(small, v4('10.0.0.1'), owner), 600, probe)).rejects.toThrow(
      /within 0\.1 s/,
    );
    expect(performance.now() - started).toBeLessThan(450);
  });
});

describe('readiness', () => {
  it('is lost while the API server does not answer, and back once it does', async () => {
    const api = await apiServer();
    const probe = new ApiServerProbe(api.kc, undefined, 50, 100);
    probe.start();
    try {
      await expect
        .poll(() => probe.problems, { timeout: 2_000 })
        .toEqual(['API server: no answer to /readyz within 0.1 s']);
      api.mode = 200;
      await expect.poll(() => probe.problems, { timeout: 2_000 }).toEqual([]);
      api.mode = 500;
      await expect.poll(() => probe.problems, { timeout: 2_000 }).toEqual(['API server: /readyz answers not ready']);
      expect(api.seen.every((s) => s.url === '/readyz')).toBe(true);
    } finally {
      await probe.stop();
    }
  });

  it('names a refused connection', async () => {
    const api = await apiServer();
    server!.close();
    server = undefined;
    const probe = new ApiServerProbe(api.kc, undefined, 50, 100);
    probe.start();
    try {
      await expect
        .poll(() => probe.problems.join(), { timeout: 2_000 })
        .toMatch(/^API server: unreachable \(.*ECONNREFUSED/);
    } finally {
      await probe.stop();
    }
  });
});
