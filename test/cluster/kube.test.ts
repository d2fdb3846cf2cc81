import { CustomObjectsApi } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { makeApiClientWith, withTimeout } from '../../src/cluster/kube.js';
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
