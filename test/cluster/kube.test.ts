import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  CoreV1Api,
  CustomObjectsApi,
  ListWatch,
  Watch,
  type KubernetesObject,
  type V1Namespace,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { guarded, keepWatching, makeApiClientWith, withTimeout } from '../../src/cluster/kube.js';
import { kubeConfigAt } from '../support/cluster.js';
import { frozenApiServer, type FrozenApiServer } from '../support/frozen-api.js';

let api: FrozenApiServer | undefined;
afterEach(async () => {
  await api?.close();
  api = undefined;
});

describe('withTimeout', () => {
  it('aborts a call the API server never answers, and closes its connection', async () => {
    api = await frozenApiServer();
    const custom = api.kc.makeApiClient(CustomObjectsApi);
    const started = performance.now();
    await expect(
      custom.listClusterCustomObject({ group: 'netpin.io', version: 'v1alpha1', plural: 'ippools' }, withTimeout(100)),
    ).rejects.toThrow('the API server did not answer within 0.1 s');
    expect(performance.now() - started).toBeLessThan(1_000);
    await expect.poll(() => api!.seen.map((s) => s.closed)).toEqual([true]);
  });

  it("aborts a call at the earlier of its client's deadline and its own", async () => {
    api = await frozenApiServer();
    const pools = { group: 'netpin.io', version: 'v1alpha1', plural: 'ippools' };
    const clientFirst = makeApiClientWith(api.kc, CustomObjectsApi, withTimeout(100));
    const callFirst = makeApiClientWith(api.kc, CustomObjectsApi, withTimeout(10_000));
    const started = performance.now();
    await Promise.all([
      expect(clientFirst.listClusterCustomObject(pools, withTimeout(10_000))).rejects.toThrow('within 0.1 s'),
      expect(callFirst.listClusterCustomObject(pools, withTimeout(100))).rejects.toThrow('within 0.1 s'),
    ]);
    expect(performance.now() - started).toBeLessThan(1_000);
  }, 5_000);
});

/** A ListWatch as keepWatching uses it, whose start() does what `starts` says, one entry a call. */
function scriptedListWatch(starts: Array<'list fails' | 'auth throws' | 'lists'>) {
  const onError: Array<(err: unknown) => void> = [];
  let version = '';
  const lw = {
    calls: 0,
    on(verb: string, cb: (err: unknown) => void) {
      if (verb === 'error') onError.push(cb);
    },
    async start() {
      const step = starts[lw.calls++] ?? 'lists';
      // As client-node does: a failed list goes to the error callbacks and start() resolves.
      if (step === 'list fails') for (const cb of onError) cb(new Error('connect ECONNREFUSED'));
      else if (step === 'auth throws') throw new Error('exec plugin: command not found');
      else version = '7';
    },
    latestResourceVersion: () => version,
    async stop() {},
  };
  return lw;
}

function fakeLog() {
  const log = { warn: vi.fn(), error: vi.fn() };
  return { log, logger: log as unknown as Logger };
}

describe('keepWatching', () => {
  it('restarts a watch whose start() rejects, as when the credentials for it cannot be had', async () => {
    const lw = scriptedListWatch(['list fails', 'auth throws', 'auth throws', 'lists']);
    const { log, logger } = fakeLog();
    const watched = keepWatching(lw as unknown as ListWatch<KubernetesObject>, 'namespaces', logger, 10);
    await watched.synced;
    expect(lw.calls).toBe(4);
    expect(log.warn.mock.calls).toEqual([
      [{ watch: 'namespaces', err: 'connect ECONNREFUSED' }, 'watch failed; restarting'],
      [{ watch: 'namespaces', err: 'exec plugin: command not found' }, 'watch failed; restarting'],
      [{ watch: 'namespaces', err: 'exec plugin: command not found' }, 'watch failed; restarting'],
    ]);
    await watched.stop();
  }, 5_000);
});

/** Namespaces for a ListWatch: the list has `a`, and the watch then adds `b` and stays open. */
async function namespaceServer() {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    const ns = (name: string, resourceVersion: string) => ({ metadata: { name, resourceVersion } });
    if (req.url?.includes('watch=true')) res.write(`${JSON.stringify({ type: 'ADDED', object: ns('b', '2') })}\n`);
    else res.end(JSON.stringify({ items: [ns('a', '1')], metadata: { resourceVersion: '1' } }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const kc = kubeConfigAt(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  const core = kc.makeApiClient(CoreV1Api);
  return {
    listWatch: () => new ListWatch<V1Namespace>('/api/v1/namespaces', new Watch(kc), () => core.listNamespace(), false),
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

describe('a ListWatch handler that throws', () => {
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await close?.();
    close = undefined;
  });

  it("rejects client-node's start() when it throws during the list", async () => {
    const api = await namespaceServer();
    close = api.close;
    const lw = api.listWatch();
    lw.on('add', () => {
      throw new Error('handler failed');
    });
    await expect(lw.start()).rejects.toThrow('handler failed');
    await lw.stop();
  });

  it('is logged when guarded, during the list and the watch alike, and the other handlers still run', async () => {
    const api = await namespaceServer();
    close = api.close;
    const { log, logger } = fakeLog();
    const lw = api.listWatch();
    const added: string[] = [];
    lw.on(
      'add',
      guarded(
        (ns) => {
          throw new Error(`cannot take ${ns.metadata?.name}`);
        },
        'namespaces',
        logger,
      ),
    );
    lw.on('add', (ns) => added.push(ns.metadata!.name!));
    await lw.start();
    // Unguarded, the watch's throw is an unhandled rejection, which fails this run.
    await expect.poll(() => added).toEqual(['a', 'b']);
    expect(log.error.mock.calls).toEqual(
      ['a', 'b'].map((name) => [
        { watch: 'namespaces', object: name, err: `cannot take ${name}` },
        'watch event not applied: its handler failed',
      ]),
    );
    await lw.stop();
  });
});
