// The Reflector's life when the API server cannot be reached: it keeps trying, and stopping it ends
// the wait of whoever waits for its first list. (Its lists and watches against a real API server are
// in test/e2e/reflector.test.ts.)
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { KubeLedger, type ClaimsApi } from '../../src/cluster/kube-ledger.js';
import { Reflector } from '../../src/cluster/reflector.js';
import { kubeConfigAt } from '../support/cluster.js';
import { freePort } from '../support/controlplane.js';

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
