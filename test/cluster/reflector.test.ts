// The Reflector's life when the API server cannot be reached: it keeps trying, and stopping it ends
// the wait of whoever waits for its first list. (Its lists and watches against a real API server are
// in test/e2e/reflector.test.ts.)
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { Reflector } from '../../src/cluster/reflector.js';
import { kubeConfigAt } from '../support/cluster.js';

/** A kubeconfig for a port nothing listens on: every call is refused. */
async function unreachable(): Promise<KubeConfig> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return kubeConfigAt(`https://127.0.0.1:${port}`);
}

describe('Reflector', () => {
  it('keeps listing while the API server is unreachable, and its start() resolves once stopped', async () => {
    const kc = await unreachable();
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
});
