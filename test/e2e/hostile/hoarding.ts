// Attack 5 of issue 20: a tenant hoards a pool's addresses with no pods. A StatefulSet reserves an
// address for every ordinal at once, up to 10 000, before any pod exists, and kept them after scaling
// to 0. Now an IPPool may cap what each namespace holds of it (spec.namespaceLimit), a StatefulSet may
// not reserve more ordinals than its namespace's pods quota lets it run, and a StatefulSet scaled down
// gives back the reservations above its new size after netpin.io/scale-down-release (1h by default).
// The StatefulSet controller runs here, with no scheduler or kubelet: pods stay Pending.
import type { V1StatefulSet } from '@kubernetes/client-node';
import { beforeAll, expect, it } from 'vitest';
import { apiMessage, createPool, listClaims, waitFor, type ClaimView } from '../../../harness/cluster.js';
import type { HostileEnv } from './env.js';

const OPT_IN = { 'netpin.io/enabled': 'true' };

function statefulSet(
  name: string,
  replicas: number,
  pool: string,
  annotations: Record<string, string> = {},
): V1StatefulSet {
  return {
    metadata: { name, annotations },
    spec: {
      replicas,
      serviceName: name,
      podManagementPolicy: 'Parallel',
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name }, annotations: { 'netpin.io/pool': pool } },
        spec: {
          containers: [{ name: 'app', image: 'registry.example/app:1' }],
          terminationGracePeriodSeconds: 0,
        },
      },
    },
  };
}

/** What netpin (or the API server) answered: '' when the call went through. */
const refusal = (call: Promise<unknown>): Promise<string> =>
  call.then(
    () => '',
    (e: unknown) => apiMessage(e),
  );

const ordinalsOf = (claims: ClaimView[], namespace: string, name: string) =>
  claims
    .filter((c) => c.owner.kind === 'StatefulSet' && c.owner.namespace === namespace && c.owner.name === name)
    .map((c) => c.owner.ordinal!)
    .sort((a, b) => a - b);

export function hoarding(env: HostileEnv): void {
  const create = (namespace: string, body: V1StatefulSet) =>
    refusal(env.c.apps.createNamespacedStatefulSet({ namespace, body }));
  /** `kubectl scale`: the scale subresource, as the HorizontalPodAutoscaler uses it. */
  const scale = (namespace: string, name: string, replicas: number) =>
    refusal(
      env.c.apps.replaceNamespacedStatefulSetScale({
        namespace,
        name,
        body: { metadata: { name, namespace }, spec: { replicas } },
      }),
    );

  beforeAll(async () => {
    await env.use();
  });

  it('a StatefulSet of 10 000 replicas in a namespace the pool caps is refused, naming the cap, and reserves nothing beyond it', async () => {
    const NS = await env.namespace('hoard-cap', { ...OPT_IN, hoard: 'cap' });
    const OTHER = await env.namespace('hoard-cap-other', { ...OPT_IN, hoard: 'cap' });
    await createPool(env.c, 'hoard-capped', {
      ranges: ['10.225.0.1-10.225.0.200'],
      namespaceLimit: 5,
      namespaceSelector: { matchLabels: { hoard: 'cap' } },
    });
    const message = await create(NS, statefulSet('hoard', 10_000, 'hoard-capped'));
    expect(message).toContain(
      'IPPool hoard-capped lets each namespace hold 5 IPv4 addresses (spec.namespaceLimit), and namespace hoard-cap holds 0',
    );
    expect(message).toContain('Fix: lower replicas to 5');
    expect(ordinalsOf(await listClaims(env.c, 'hoard-capped'), NS, 'hoard')).toEqual([]);

    // Up to the cap it reserves; one more, through the scale subresource or from a pod, is refused.
    expect(await create(NS, statefulSet('db', 5, 'hoard-capped'))).toBe('');
    expect(ordinalsOf(await listClaims(env.c, 'hoard-capped'), NS, 'db')).toEqual([0, 1, 2, 3, 4]);
    expect(await scale(NS, 'db', 6)).toMatch(/holds 5 \(5 of them for this same owner\): no room for the 6/);
    const pod = await refusal(
      env.c.core.createNamespacedPod({
        namespace: NS,
        body: {
          metadata: { name: 'extra', annotations: { 'netpin.io/pool': 'hoard-capped' } },
          spec: { containers: [{ name: 'app', image: 'registry.example/app:1' }] },
        },
      }),
    );
    expect(pod).toContain('namespace hoard-cap holds 5: no room for 1 more');
    expect((await listClaims(env.c, 'hoard-capped')).filter((c) => c.owner.namespace === NS)).toHaveLength(5);
    // Another namespace has a cap of its own.
    expect(await create(OTHER, statefulSet('db', 5, 'hoard-capped'))).toBe('');
  }, 120_000);

  it("with no cap on the pool, a StatefulSet may not reserve more ordinals than its namespace's pods quota lets it run", async () => {
    const NS = await env.namespace('hoard-quota');
    await createPool(env.c, 'hoard-open', { ranges: ['10.225.1.1-10.225.1.250'] });
    await env.c.core.createNamespacedResourceQuota({
      namespace: NS,
      body: { metadata: { name: 'compute' }, spec: { hard: { pods: '10' } } },
    });
    const message = await create(NS, statefulSet('hoard', 10_000, 'hoard-open'));
    expect(message).toContain(
      'namespace hoard-quota may run 10 pods (ResourceQuota compute (pods: 10)), and its StatefulSets hold reservations for 0 other ordinals: StatefulSet hoard may reserve 10 more, not 10000',
    );
    expect(message).toContain('Fix: lower spec.replicas to 10');
    expect(ordinalsOf(await listClaims(env.c, 'hoard-open'), NS, 'hoard')).toEqual([]);
    // Within the quota it reserves; a second StatefulSet counts the first's reservations.
    expect(await create(NS, statefulSet('a', 6, 'hoard-open'))).toBe('');
    expect(await create(NS, statefulSet('b', 5, 'hoard-open'))).toContain('may reserve 4 more, not 5');
    expect(await scale(NS, 'a', 11)).toContain('may reserve 10 more, not 11');
    expect(ordinalsOf(await listClaims(env.c, 'hoard-open'), NS, 'a')).toEqual([0, 1, 2, 3, 4, 5]);
  }, 120_000);

  it('a StatefulSet scaled to 0 gives its reservations back after the period it asks for, and keeps them with "never"', async () => {
    const NS = await env.namespace('hoard-scale');
    await createPool(env.c, 'hoard-scale', { ranges: ['10.225.2.1-10.225.2.20'] });
    const brief = { 'netpin.io/scale-down-release': '5s' };
    expect(await create(NS, statefulSet('brief', 3, 'hoard-scale', brief))).toBe('');
    expect(await create(NS, statefulSet('kept', 3, 'hoard-scale', { 'netpin.io/scale-down-release': 'never' }))).toBe(
      '',
    );
    expect(
      await create(NS, statefulSet('bad', 1, 'hoard-scale', { 'netpin.io/scale-down-release': 'soon' })),
    ).toContain('netpin.io/scale-down-release (CNI Calico): must be a duration such as 30m, 1h or 90s, or "never"');
    const claims = () => listClaims(env.c, 'hoard-scale');
    expect(ordinalsOf(await claims(), NS, 'brief')).toEqual([0, 1, 2]);
    expect(ordinalsOf(await claims(), NS, 'kept')).toEqual([0, 1, 2]);

    expect(await scale(NS, 'brief', 0)).toBe('');
    expect(await scale(NS, 'kept', 0)).toBe('');
    const start = Date.now();
    await waitFor(
      'the scaled-down reservations of brief to be given back',
      async () => ordinalsOf(await claims(), NS, 'brief').length === 0,
      60_000,
      500,
    );
    // Not before the period it asked for.
    expect(Date.now() - start).toBeGreaterThanOrEqual(5_000);
    // Several reconciler rounds later, "never" still holds every ordinal.
    await new Promise((r) => setTimeout(r, 12_000));
    expect(ordinalsOf(await claims(), NS, 'kept')).toEqual([0, 1, 2]);
    // The addresses given back go to others; kept's scale back up finds its own.
    expect(await scale(NS, 'kept', 3)).toBe('');
    expect(ordinalsOf(await claims(), NS, 'kept')).toEqual([0, 1, 2]);
  }, 150_000);
}
