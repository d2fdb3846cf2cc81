import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { kubeConfigAt } from '../../harness/cluster.js';
import { frozenApiServer } from '../../harness/frozen-api.js';
import { ResourceController } from '../../src/cluster/resource-controller.js';
import { ciliumPinnedPools, pinnedPool } from '../../src/cni/cilium-pools.js';
import { egressSet } from '../../src/cni/egress.js';
import { MemoryLedger } from '../../src/ipam/memory-ledger.js';
import { compilePool } from '../../src/ipam/pool.js';
import { v4 } from '../cni/fixtures.js';

const PINNED = compilePool({
  metadata: { name: 'pin' },
  spec: { cidr: '10.50.0.0/28', cni: { cilium: { pinned: true } } },
});
const NOW = Date.parse('2026-12-07T12:00:00Z');
const MANAGED = { 'app.kubernetes.io/managed-by': 'netpin' };

interface Seen {
  method: string;
  url: string;
  body: unknown;
}

/**
 * A stand-in for the API server's ciliumpodippools: answers lists with `stored`, records every call,
 * and answers writes with `writeStatus`. Only for deterministic tests of the controller's rules.
 */
async function standIn(stored: object[], writeStatus = 200) {
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    let text = '';
    req.on('data', (d: Buffer) => (text += d.toString()));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', body: text ? JSON.parse(text) : undefined });
      res.setHeader('content-type', 'application/json');
      if (req.method === 'GET' && !/ciliumpodippools\/[^?]/.test(req.url ?? '')) {
        res.end(JSON.stringify({ apiVersion: 'cilium.io/v2alpha1', kind: 'CiliumPodIPPoolList', items: stored }));
        return;
      }
      if (req.method === 'GET') {
        const name = decodeURIComponent((req.url ?? '').split('/').pop() ?? '');
        res.end(JSON.stringify(stored.find((o) => (o as { metadata: { name: string } }).metadata.name === name)));
        return;
      }
      res.statusCode = writeStatus;
      res.end(JSON.stringify(writeStatus < 300 ? { metadata: {} } : { kind: 'Status', code: writeStatus }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  closers.push(() => new Promise((r) => server.close(() => r())));
  return { kc: kubeConfigAt(`http://127.0.0.1:${port}`), seen };
}

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

function stored(name: string, cidr: string, createdAgoMs: number, labels: Record<string, string> = MANAGED) {
  return {
    apiVersion: 'cilium.io/v2alpha1',
    kind: 'CiliumPodIPPool',
    metadata: {
      name,
      uid: `uid-${name}`,
      resourceVersion: '7',
      labels,
      creationTimestamp: new Date(NOW - createdAgoMs).toISOString(),
    },
    spec: { ipv4: { cidrs: [cidr], maskSize: 32 }, allowFirstIP: false, allowLastIP: false },
  };
}

const writes = (seen: Seen[]) => seen.filter((s) => s.method !== 'GET');

describe('the resource controller', () => {
  it('gives up a sync the API server never answers, so that the sweep that waits for it goes on', async () => {
    const api = await frozenApiServer();
    try {
      const controller = new ResourceController(api.kc, new MemoryLedger(), [egressSet('cilium', [])], undefined, 500);
      const started = performance.now();
      // Long enough that the request reaches the frozen server before the client gives up on it.
      await expect(controller.sync()).rejects.toThrow('the API server did not answer within 0.5 s');
      expect(performance.now() - started).toBeLessThan(2_000);
      expect(api.seen.map((s) => s.url)).toEqual([
        '/apis/cilium.io/v2/ciliumegressgatewaypolicies?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dnetpin',
      ]);
    } finally {
      await api.close();
    }
  }, 5_000);

  describe("keeping Cilium's single-address pools", () => {
    it('creates the pool of each claimed address of a pinned IPPool, and leaves alone one stored as wanted', async () => {
      const ledger = new MemoryLedger([PINNED]);
      await ledger.claim(PINNED, v4('10.50.0.5'), { kind: 'StatefulSet', namespace: 'shop', name: 'db', ordinal: 0 });
      await ledger.claim(PINNED, v4('10.50.0.6'), { kind: 'Pod', namespace: 'shop', name: 'a' });
      const api = await standIn([stored('netpin-10.50.0.6', '10.50.0.6/32', 120_000)]);
      await new ResourceController(api.kc, ledger, [ciliumPinnedPools], undefined, 5_000, () => NOW).sync();
      expect(writes(api.seen)).toEqual([
        {
          method: 'POST',
          url: '/apis/cilium.io/v2alpha1/ciliumpodippools',
          body: {
            apiVersion: 'cilium.io/v2alpha1',
            kind: 'CiliumPodIPPool',
            metadata: { name: 'netpin-10.50.0.5', labels: MANAGED },
            spec: { ipv4: { cidrs: ['10.50.0.5/32'], maskSize: 32 }, allowFirstIP: false, allowLastIP: false },
          },
        },
      ]);
    });

    it('puts back a pool whose CIDR was edited by hand, on the resourceVersion it read', async () => {
      const ledger = new MemoryLedger([PINNED]);
      await ledger.claim(PINNED, v4('10.50.0.5'), { kind: 'Pod', namespace: 'shop', name: 'a' });
      const api = await standIn([stored('netpin-10.50.0.5', '10.50.0.9/32', 120_000)]);
      await new ResourceController(api.kc, ledger, [ciliumPinnedPools], undefined, 5_000, () => NOW).sync();
      const [put, ...more] = writes(api.seen);
      expect(more).toEqual([]);
      expect(put?.method).toBe('PUT');
      expect(put?.body).toMatchObject({
        metadata: { name: 'netpin-10.50.0.5', resourceVersion: '7' },
        spec: pinnedPool(v4('10.50.0.5')).spec,
      });
    });

    it('deletes a pool no claim needs only once it is older than a minute, and only the object it listed', async () => {
      const ledger = new MemoryLedger([PINNED]);
      // A pool another replica made at admission a moment ago, for a claim this replica has not seen yet.
      const young = stored('netpin-10.50.0.7', '10.50.0.7/32', 5_000);
      const old = stored('netpin-10.50.0.8', '10.50.0.8/32', 61_000);
      const api = await standIn([young, old]);
      await new ResourceController(api.kc, ledger, [ciliumPinnedPools], undefined, 5_000, () => NOW).sync();
      expect(writes(api.seen)).toEqual([
        {
          method: 'DELETE',
          url: '/apis/cilium.io/v2alpha1/ciliumpodippools/netpin-10.50.0.8',
          body: { preconditions: { uid: 'uid-netpin-10.50.0.8', resourceVersion: '7' } },
        },
      ]);
    });

    it('leaves a pool changed since its list (409 on the preconditions) to the next sync', async () => {
      const api = await standIn([stored('netpin-10.50.0.8', '10.50.0.8/32', 61_000)], 409);
      const controller = new ResourceController(
        api.kc,
        new MemoryLedger([PINNED]),
        [ciliumPinnedPools],
        undefined,
        5_000,
        () => NOW,
      );
      await expect(controller.sync()).resolves.toBeUndefined();
      expect(writes(api.seen).map((s) => s.method)).toEqual(['DELETE']);
    });

    it('at admission: creates the pool, and reports one of that name that is not netpin’s without touching it', async () => {
      const foreign = stored('netpin-10.50.0.5', '10.50.0.5/32', 1_000, { team: 'net' });
      const api = await standIn([foreign], 409);
      const controller = new ResourceController(api.kc, new MemoryLedger([PINNED]), [ciliumPinnedPools]);
      const blocked = await controller.ensure([pinnedPool(v4('10.50.0.5'))]);
      expect(blocked.map((r) => r.metadata.name)).toEqual(['netpin-10.50.0.5']);
      expect(api.seen.map((s) => s.method)).toEqual(['POST', 'GET']);
    });

    it('at admission: takes a pool of its own already stored as wanted', async () => {
      const api = await standIn([stored('netpin-10.50.0.5', '10.50.0.5/32', 1_000)], 409);
      const controller = new ResourceController(api.kc, new MemoryLedger([PINNED]), [ciliumPinnedPools]);
      expect(await controller.ensure([pinnedPool(v4('10.50.0.5'))])).toEqual([]);
      expect(api.seen.map((s) => s.method)).toEqual(['POST', 'GET']);
    });

    it('goes on with the other pools when the API server refuses one, and then says so', async () => {
      const ledger = new MemoryLedger([PINNED]);
      await ledger.claim(PINNED, v4('10.50.0.5'), { kind: 'Pod', namespace: 'shop', name: 'a' });
      await ledger.claim(PINNED, v4('10.50.0.6'), { kind: 'Pod', namespace: 'shop', name: 'b' });
      // Both missing; every write refused (422): each is still tried.
      const api = await standIn([stored('netpin-10.50.0.9', '10.50.0.9/32', 120_000)], 422);
      const controller = new ResourceController(api.kc, ledger, [ciliumPinnedPools], undefined, 5_000, () => NOW);
      await expect(controller.sync()).rejects.toThrow();
      expect(writes(api.seen).map((s) => `${s.method} ${s.url.split('/').pop()}`)).toEqual([
        'POST ciliumpodippools',
        'POST ciliumpodippools',
        'DELETE netpin-10.50.0.9',
      ]);
    });

    it('takes a kind whose CRD is not installed as holding nothing, until a claim needs one', async () => {
      // No pinned claims: a 404 on the list is no error.
      const seen404 = await standIn404();
      await new ResourceController(seen404.kc, new MemoryLedger([PINNED]), [ciliumPinnedPools]).sync();
      expect(seen404.seen.map((s) => s.method)).toEqual(['GET']);
      const ledger = new MemoryLedger([PINNED]);
      await ledger.claim(PINNED, v4('10.50.0.5'), { kind: 'Pod', namespace: 'shop', name: 'a' });
      await expect(new ResourceController(seen404.kc, ledger, [ciliumPinnedPools]).sync()).rejects.toThrow();
    });
  });
});

async function standIn404() {
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', body: undefined });
    res.statusCode = 404;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ kind: 'Status', code: 404 }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  closers.push(() => new Promise((r) => server.close(() => r())));
  return { kc: kubeConfigAt(`http://127.0.0.1:${port}`), seen };
}
