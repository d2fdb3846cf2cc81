// Attack 2 of issue 20: memory and CPU through refusal messages. A tenant who may create pods reaches
// netpin's parser through `kubectl apply` (a mutating webhook sees the object before the API server
// checks annotation sizes), and anyone who reaches the webhook port with a direct POST. Refusals repeated
// the bad value, every refusal was kept in the replay cache, and unknown keys were each compared with
// every netpin key: 400 reviews with a 1 MiB netpin.io/ip took a replica past the chart's 512 Mi limit,
// 50 000 unknown keys made a 16.7 MiB message, and 200 000 overflowed the stack.
import { randomUUID } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';
import { expect, it } from 'vitest';
import { KNOWN_KEY_COUNT } from '../../../src/intent/keys.js';
import { apiMessage } from '../../../harness/cluster.js';
import { createMemoryCgroup, rss, type MemoryCgroup } from '../../../harness/memory.js';
import { postReview, startNetpin, type Netpin } from '../../../harness/netpin.js';
import type { HostileEnv } from './env.js';

const KiB = 1024;
const MiB = 1024 * KiB;
/** The chart's default `resources.limits.memory`. */
const CHART_MEMORY_LIMIT = 512 * MiB;
/**
 * What a replica may reach under the stream below: measured at 147 to 168 MiB of cgroup charge, from
 * 70 to 80 MiB idle (Node 24, on a loaded 2-core machine), and held to 256 MiB, half the chart's limit:
 * room for a slower collector, none for what the stream did before the fix (the V8 heap ran out after
 * about 200 of the 400 refusals, at a cgroup peak of 349 MiB, and the replica aborted).
 */
const PEAK_BOUND = 256 * MiB;

const spec = { containers: [{ name: 'app', image: 'registry.example/app:1.0' }] };

/** What `kubectl apply` of this pod answers: "admitted", or the API server's refusal as kubectl prints it. */
async function create(env: HostileEnv, namespace: string, name: string, annotations: Record<string, string>) {
  return env.c.core.createNamespacedPod({ namespace, body: { metadata: { name, annotations }, spec } as V1Pod }).then(
    () => 'admitted',
    (e: unknown) => apiMessage(e),
  );
}

function unknownKeys(n: number): Record<string, string> {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`netpin.io/unknown-${i}`, 'v']));
}

/** A pod CREATE review as the API server sends it; each with its own uid, so that each is decided and kept. */
function podReview(namespace: string, name: string, annotations: Record<string, string>) {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: randomUUID(),
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      operation: 'CREATE',
      namespace,
      name,
      object: { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace, annotations }, spec },
    },
  };
}

/** Runs `work` over 0..count-1, `width` at a time. */
async function inParallel(count: number, width: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

export function boundedWork(env: HostileEnv): void {
  it('refuses a pod with a 100 KiB netpin.io/ip through the API server in a message under 2 KiB', async () => {
    await env.use();
    const ns = await env.namespace('bounded-ip');
    const message = await create(env, ns, 'big-ip', { 'netpin.io/ip': '10.0.0.1'.padEnd(100 * KiB, '0') });
    expect(message).toContain('netpin.io/ip (CNI Calico): "10.0.0.1');
    expect(message).toContain(`(${100 * KiB} characters) is not an IP address`);
    expect(Buffer.byteLength(message)).toBeLessThan(2 * KiB);
  });

  it('refuses a pod with 20 000 unknown netpin.io/ keys through the API server, once, in a message under 2 KiB', async () => {
    await env.use();
    const ns = await env.namespace('bounded-keys');
    const message = await create(env, ns, 'many-keys', { ...unknownKeys(20_000), 'netpin.io/pool': 'web' });
    expect(message).toContain(
      `netpin.io/unknown-0 (CNI Calico): is one of 20001 netpin.io/ annotations, and netpin has only ${KNOWN_KEY_COUNT} keys`,
    );
    expect(message).not.toContain('netpin.io/unknown-1 ');
    expect(Buffer.byteLength(message)).toBeLessThan(2 * KiB);
  });

  it('refuses netpin.io/ip: "169082889", the one-number form of 10.20.0.9: IPv4 is dotted decimal only', async () => {
    await env.use();
    const ns = await env.namespace('bounded-aton');
    for (const [i, written] of ['169082889', '0xa140009', '10.20.9', '64:ff9b::010.20.0.9'].entries()) {
      const message = await create(env, ns, `aton-${i}`, { 'netpin.io/ip': written });
      expect(message).toContain(`netpin.io/ip (CNI Calico): "${written}" is not an IP address`);
    }
  });

  it(`keeps a replica under ${PEAK_BOUND / MiB} MiB in a ${CHART_MEMORY_LIMIT / MiB} MiB cgroup while hostile reviews stream in, and it answers after`, async () => {
    const made = createMemoryCgroup(CHART_MEMORY_LIMIT);
    // Without a cgroup v1 memory controller the replica runs unconfined, and its own peak RSS is held to the bound.
    const cgroup: MemoryCgroup | undefined = typeof made === 'string' ? undefined : made;
    if (!cgroup) console.warn(`bounded work: no memory cgroup (${made as string}); asserting peak RSS instead`);
    let netpin: Netpin | undefined;
    try {
      netpin = await startNetpin({ kubeconfig: env.cp.kubeconfigPath, launcher: cgroup?.launcher });
      const target = netpin;
      const ns = 'bounded-stream';
      const oneMiB = 'x'.repeat(MiB);
      const keys = unknownKeys(50_000);
      const refused = async (body: unknown) => {
        const { status, json } = await postReview(target, '/mutate', body);
        expect(status).toBe(200);
        const response = (json as { response: { allowed: boolean; status?: { code: number; message: string } } })
          .response;
        expect(response.status?.code).toBe(403);
        expect(response.status!.message.length).toBeLessThan(2 * KiB);
      };
      const started = performance.now();
      // 400 refusals that each repeated a megabyte, 4 at a time, as in issue 20.
      await inParallel(400, 4, (i) => refused(podReview(ns, `ip-${i}`, { 'netpin.io/ip': oneMiB })));
      // 1 MiB requests of 50 000 unknown keys, and of one key a megabyte long.
      await inParallel(40, 4, (i) => refused(podReview(ns, `keys-${i}`, keys)));
      await inParallel(40, 4, (i) => refused(podReview(ns, `key-${i}`, { [`netpin.io/${oneMiB}`]: 'v' })));
      const seconds = (performance.now() - started) / 1000;

      const peak = cgroup ? cgroup.peakBytes() : rss(target.child.pid)!.peak;
      console.log(
        `bounded work: 480 hostile reviews in ${seconds.toFixed(1)} s; ${cgroup ? 'cgroup' : 'RSS'} peak ${(peak / MiB).toFixed(0)} MiB, bound ${PEAK_BOUND / MiB} MiB`,
      );
      expect(peak).toBeLessThan(PEAK_BOUND);
      if (cgroup) {
        expect(cgroup.oomKills()).toBe(0);
        expect(cgroup.failcnt()).toBe(0);
      }
      // Still answering, and answering right.
      const { json } = await postReview(target, '/mutate', podReview(ns, 'normal', { 'netpin.io/egress-rate': '10M' }));
      expect(json).toMatchObject({ response: { allowed: true, patchType: 'JSONPatch' } });
      expect(target.child.exitCode).toBeNull();
    } finally {
      await netpin?.stop();
      await cgroup?.remove();
    }
  }, 600_000);
}
