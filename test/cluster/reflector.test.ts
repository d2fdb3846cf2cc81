// The Reflector's life when the API server cannot be reached: it keeps trying, and stopping it ends
// the wait of whoever waits for its first list. (Its lists and watches against a real API server are
// in test/e2e/reflector.test.ts.)
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
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
});
