import { afterEach, describe, expect, it } from 'vitest';
import { clusterClients, readClaims, readPods, readPools } from '../../src/cli/cluster-read.js';
import { withTimeout } from '../../src/cluster/kube.js';
import { frozenApiServer, type FrozenApiServer } from '../../harness/frozen-api.js';

let api: FrozenApiServer | undefined;
afterEach(async () => {
  await api?.close();
  api = undefined;
});

describe("the operator commands' reads", () => {
  it('give up on an API server that never answers, also in the paged lists of claims and pods', async () => {
    api = await frozenApiServer();
    const c = clusterClients(api.kc, withTimeout(100));
    const started = performance.now();
    const failures = await Promise.all(
      [readPools(c.custom), readClaims(c.custom), readPods(c.core)].map((p) =>
        p.then(
          () => 'answered',
          (e: unknown) => (e as Error).message,
        ),
      ),
    );
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(failures).toEqual([
      'reading IPPools: the API server did not answer within 0.1 s',
      'reading IPClaims: the API server did not answer within 0.1 s',
      'reading pods: the API server did not answer within 0.1 s',
    ]);
    await expect.poll(() => api!.seen.every((s) => s.closed)).toBe(true);
  }, 5_000);
});
