import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CustomObjectsApi, HttpMethod, KubeConfig, RequestContext } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadKubeConfig, makeApiClientWith, withTimeout } from '../../src/cluster/kube.js';
import { frozenApiServer, type FrozenApiServer } from '../../harness/frozen-api.js';

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

/** The dispatcher client-node gives one API call made through `kc`. */
async function dispatcherOf(kc: KubeConfig): Promise<unknown> {
  const context = new RequestContext('https://127.0.0.1:6443/api', HttpMethod.GET);
  await kc.applySecurityAuthentication(context);
  return context.getDispatcher();
}

// client-node builds a new undici Agent for every API call (kubernetes-client/javascript#2893; its fix,
// #2904, caches only the https.Agent of watches and websockets). loadKubeConfig's KeepAliveKubeConfig
// overrides client-node's private createDispatcher to keep one.
describe('the kubeconfig of netpin, around kubernetes-client/javascript#2893', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'netpin-kubeconfig-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** A kubeconfig file whose client certificate is read from `client.crt`, as a rotated Secret's is. */
  function kubeconfigFile(): string {
    writeFileSync(join(dir, 'client.crt'), 'first certificate');
    const path = join(dir, 'kubeconfig');
    writeFileSync(
      path,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{ name: c, cluster: { server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true } }]',
        `users: [{ name: u, user: { client-certificate: "${join(dir, 'client.crt')}", token: t } }]`,
        'contexts: [{ name: x, context: { cluster: c, user: u } }]',
        'current-context: x',
      ].join('\n'),
    );
    return path;
  }

  // Fails once client-node keeps its dispatcher: KeepAliveKubeConfig can go then.
  it('is still needed: client-node itself gives every call a new dispatcher', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfigFile());
    const first = await dispatcherOf(kc);
    expect(first).toBeDefined();
    expect(await dispatcherOf(kc)).not.toBe(first);
  });

  // Fails when client-node stops making its dispatchers through createDispatcher.
  it('gives every call the same dispatcher while the TLS material stays, and a new one once it rotates', async () => {
    const kc = loadKubeConfig(kubeconfigFile());
    const first = await dispatcherOf(kc);
    expect(first).toBeDefined();
    expect(await dispatcherOf(kc)).toBe(first);
    writeFileSync(join(dir, 'client.crt'), 'rotated certificate');
    const rotated = await dispatcherOf(kc);
    expect(rotated).not.toBe(first);
    expect(await dispatcherOf(kc)).toBe(rotated);
  });
});
