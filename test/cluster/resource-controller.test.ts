import { describe, expect, it } from 'vitest';
import { ResourceController } from '../../src/cluster/resource-controller.js';
import { egressSet } from '../../src/cni/egress.js';
import { MemoryLedger } from '../../src/ipam/memory-ledger.js';
import { frozenApiServer } from '../../harness/frozen-api.js';

describe('the resource controller', () => {
  it('gives up a sync the API server never answers, so that the sweep that waits for it goes on', async () => {
    const api = await frozenApiServer();
    try {
      const controller = new ResourceController(api.kc, new MemoryLedger(), [egressSet('cilium', [])], undefined, 100);
      const started = performance.now();
      await expect(controller.sync()).rejects.toThrow('the API server did not answer within 0.1 s');
      expect(performance.now() - started).toBeLessThan(1_000);
      expect(api.seen.map((s) => s.url)).toEqual([
        '/apis/cilium.io/v2/ciliumegressgatewaypolicies?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dnetpin',
      ]);
    } finally {
      await api.close();
    }
  }, 5_000);
});
