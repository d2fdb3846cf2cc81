// The Reflector's life when the API server cannot be reached: it keeps trying, and stopping it ends
// the wait of whoever waits for its first list. (Its lists and watches against a real API server are
// in test/e2e/reflector.test.ts.)
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CoreV1Api, Watch, type KubeConfig, type V1Namespace, type V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { KubeLedger, type ClaimsApi } from '../../src/cluster/kube-ledger.js';
import { Reflector } from '../../src/cluster/reflector.js';
import { kubeConfigAt } from '../../harness/cluster.js';
import { freePort } from '../../harness/controlplane.js';

describe('Reflector', () => {
  it('keeps listing while the API server is unreachable, and its start() resolves once stopped', async () => {
    // A port nothing listens on: every call is refused.
    const kc = kubeConfigAt(`https://127.0.0.1:${await freePort()}`);
    const core = kc.makeApiClient(CoreV1Api);
    let lists = 0;
    const reflector = new Reflector<V1Pod>(
      kc,
      {
        what: 'pods',
        path: '/api/v1/pods',
        list: async (next) => {
          lists++;
          const page = await core.listPodForAllNamespaces({ _continue: next });
          return { items: page.items, continue: page.metadata?._continue };
        },
        key: (pod) => pod.metadata?.name ?? '',
        seen: () => undefined,
        deleted: () => undefined,
        listed: () => undefined,
      },
      undefined,
      20,
    );
    let started = false;
    const start = reflector.start().then(() => (started = true));
    await new Promise((r) => setTimeout(r, 300));
    expect(lists).toBeGreaterThan(1);
    expect(started).toBe(false);
    await reflector.stop();
    await start;
    expect(started).toBe(true);
  });

  // Found by mutation testing: stop() aborted only a watch whose request had been answered, so a
  // watch still waiting for its answer ran on, and stop() waited for client-node's 30 s of silence.
  it('stops within a second even while a watch is still waiting for its answer', async () => {
    const held: ServerResponse[] = [];
    let watches = 0;
    const server = createServer((_, res) => {
      watches++;
      held.push(res);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const kc = kubeConfigAt(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
      const api = { listClusterCustomObject: async () => ({ items: [], metadata: { resourceVersion: '1' } }) };
      const ledger = new KubeLedger(kc, undefined, undefined, api as unknown as ClaimsApi);
      await ledger.start();
      await expect.poll(() => watches).toBe(2);
      const started = performance.now();
      const stopping = ledger.stop();
      // The API server answers the watches now, and then says nothing.
      for (const res of held) res.writeHead(200, { 'content-type': 'application/json' }).flushHeaders();
      await stopping;
      expect(performance.now() - started).toBeLessThan(1_000);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  }, 60_000);
});

/** A server that answers every watch with 200 and then writes what the test sends. */
async function watchServer(): Promise<{
  kc: KubeConfig;
  /** How many watches have been opened so far. */
  opened(): number;
  send(line: unknown): void;
  close(): Promise<void>;
}> {
  const open: ServerResponse[] = [];
  const server = createServer((_, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).flushHeaders();
    open.push(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    kc: kubeConfigAt(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
    opened: () => open.length,
    send: (line) => open.at(-1)?.write(`${JSON.stringify(line)}\n`),
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

// What the Reflector works around in client-node's Watch. Each test fails when client-node changes
// the behaviour, and the Reflector's handling of it must be looked at again.
describe("client-node's Watch, as the Reflector expects it", () => {
  // Since kubernetes-client/javascript#2367 (issue #2127) a watch silent for requestTimeoutMs ends
  // with a TimeoutError; the Reflector then watches again from the same resourceVersion (isSilence).
  it('ends a watch silent for 30 s with a TimeoutError', async () => {
    const api = await watchServer();
    try {
      const watch = new Watch(api.kc);
      // Private in client-node: lowered here so that the test does not wait 30 s.
      const timeout = watch as unknown as { requestTimeoutMs: number };
      expect(timeout.requestTimeoutMs).toBe(30_000);
      timeout.requestTimeoutMs = 100;
      const ended = new Promise<unknown>((resolve) => void watch.watch('/api/v1/pods', {}, () => undefined, resolve));
      expect((await ended) as Error).toMatchObject({ name: 'TimeoutError' });
    } finally {
      await api.close();
    }
  });

  // kubernetes-client/javascript#856: what the callback throws is dropped with the event, so the
  // Reflector catches it itself, and lists again.
  it('drops what its callback throws, and goes on with the next event', async () => {
    const api = await watchServer();
    try {
      const seen: string[] = [];
      let ended: unknown = 'not ended';
      const controller = await new Watch(api.kc).watch(
        '/api/v1/pods',
        {},
        (type: string, obj: { metadata: { name: string } }) => {
          seen.push(`${type} ${obj.metadata.name}`);
          if (seen.length === 1) throw new Error('the owner failed');
        },
        (err: unknown) => (ended = err),
      );
      api.send({ type: 'ADDED', object: { metadata: { name: 'a' } } });
      api.send({ type: 'ADDED', object: { metadata: { name: 'b' } } });
      await expect.poll(() => seen).toEqual(['ADDED a', 'ADDED b']);
      expect(ended).toBe('not ended');
      controller.abort();
    } finally {
      await api.close();
    }
  });
});

describe('a Reflector with a store', () => {
  it('keeps each object as transformed, tells only new states, and after a list tells what it no longer holds', async () => {
    const api = await watchServer();
    const ns = (name: string, version: string, label: string): V1Namespace => ({
      metadata: { name, resourceVersion: version, labels: { team: label }, managedFields: [{ manager: 'x' }] },
    });
    let listed = [ns('a', '1', 'web'), ns('b', '1', 'db')];
    const told: string[] = [];
    const reflector = new Reflector<V1Namespace, { name: string; team: string }>(
      api.kc,
      {
        what: 'namespaces',
        path: '/api/v1/namespaces',
        list: async () => ({ items: listed, resourceVersion: '1' }),
        store: true,
        transform: (n) => ({ name: n.metadata!.name!, team: n.metadata!.labels!.team! }),
        seen: (n, how, before) => told.push(`${how} ${n.name} ${n.team}${before ? ` (was ${before.team})` : ''}`),
        deleted: (n) => told.push(`deleted ${n.name}`),
      },
      undefined,
      20,
    );
    try {
      await reflector.start();
      expect(reflector.get('a')).toEqual({ name: 'a', team: 'web' });
      await expect.poll(() => api.opened()).toBe(1);
      api.send({ type: 'MODIFIED', object: ns('a', '2', 'shop') });
      await expect.poll(() => reflector.get('a')?.team).toBe('shop');
      // The watch breaks; the list after it holds a as the watch told it, and no b.
      listed = [ns('a', '2', 'shop')];
      api.send({ type: 'ERROR', object: { kind: 'Status', code: 410 } });
      await expect.poll(() => [...reflector.values()]).toEqual([{ name: 'a', team: 'shop' }]);
      expect(told).toEqual(['LISTED a web', 'LISTED b db', 'MODIFIED a shop (was web)', 'deleted b']);
    } finally {
      await reflector.stop();
      await api.close();
    }
  });
});
