// Attack 3 of issue 20: a tenant of a namespace that did not opt in annotates pods with addresses of
// netpin's pools, so that netpin refuses the pools' real users. netpin holds an address for a pod
// outside opted-in namespaces only on evidence a tenant cannot forge: status.podIPs, which the
// kubelet writes, and one address per family of the CNI's annotation of a pod a node runs; never
// netpin.io/allocated (src/cluster/pod-tracker.ts). There is no scheduler or kubelet here: a pod is
// scheduled when it is created with spec.nodeName, and the test writes status.podIPs as a kubelet would.
import type { V1Pod } from '@kubernetes/client-node';
import { beforeAll, expect, it } from 'vitest';
import { apiMessage, calicoIps, createPool, listClaims, waitFor } from '../../../harness/cluster.js';
import type { HostileEnv } from './env.js';

/** Opted in: the pools' real users. */
const TENANT = 'sq-tenant';
/** Never opted in: the squatter's, and the pods from before netpin. */
const OUTSIDE = 'sq-outside';
const CALICO = 'cni.projectcalico.org/ipAddrs';
const NODE = 'node-sq';
const SPEC = { containers: [{ name: 'app', image: 'registry.example/app:1' }], terminationGracePeriodSeconds: 0 };

function addresses(prefix: string, from: number, to: number): string[] {
  return Array.from({ length: to - from + 1 }, (_, i) => `${prefix}${from + i}`);
}

export function squatting(env: HostileEnv): void {
  const pod = (namespace: string, name: string, annotations: Record<string, string>, nodeName?: string) =>
    env.c.core.createNamespacedPod({
      namespace,
      body: { metadata: { name, annotations }, spec: { ...SPEC, ...(nodeName ? { nodeName } : {}) } },
    });

  /** Why netpin refuses a pod of the tenant's that asks for this address; '' when it would admit it (a dry run claims nothing). */
  const refusal = (ip: string): Promise<string> =>
    env.c.core
      .createNamespacedPod({
        namespace: TENANT,
        dryRun: 'All',
        body: { metadata: { generateName: 'probe-', annotations: { 'netpin.io/ip': ip } }, spec: SPEC },
      })
      .then(
        () => '',
        (e: unknown) => apiMessage(e),
      );

  /** Until netpin refuses `ip` as held by this pod: its watch has brought the pod, and every pod created before. */
  const seen = (ip: string, holder: string) =>
    waitFor(
      `netpin to see ${holder} holding ${ip}`,
      async () => (await refusal(ip)).includes(`${ip} is held by pod ${holder}`),
      30_000,
      300,
    );

  /** `n` pods of the tenant asking for `pool`: the addresses they got, in order. */
  const fill = async (prefix: string, pool: string, n: number): Promise<string[]> => {
    const got: string[] = [];
    for (let i = 0; i < n; i++) {
      const p: V1Pod = await pod(TENANT, `${prefix}-${i}`, { 'netpin.io/pool': pool });
      got.push(...calicoIps(p));
    }
    return got;
  };

  beforeAll(async () => {
    await env.namespace(TENANT);
    await env.namespace(OUTSIDE, {});
    await env.use();
  });

  it('a Pending pod outside opted-in namespaces, annotated with every address of a pool, holds none of them', async () => {
    await createPool(env.c, 'sq-pool', { ranges: ['10.203.0.1-10.203.0.6'] });
    await createPool(env.c, 'sq-marker', { ranges: ['10.203.1.1-10.203.1.2'] });
    const every = addresses('10.203.0.', 1, 6);
    await pod(OUTSIDE, 'squatter', { [CALICO]: JSON.stringify(every), 'netpin.io/allocated': every.join(',') });
    // Created after the squatter, on the same watch: once netpin sees it, it has seen the squatter.
    await pod(OUTSIDE, 'marker', { [CALICO]: '["10.203.1.1"]' }, NODE);
    await seen('10.203.1.1', `${OUTSIDE}/marker`);

    for (const ip of every) expect(await refusal(ip)).toBe('');
    // The pool's real users get every address the squatter named.
    expect(await fill('real', 'sq-pool', 6)).toEqual(every);
  });

  it('a scheduled pod outside opted-in namespaces keeps the one address per family its CNI annotation names, and a running one its status.podIPs', async () => {
    await createPool(env.c, 'sq-kept', { ranges: ['10.203.2.1-10.203.2.4'] });
    // Two IPv4 addresses: Calico would refuse the pod; netpin keeps the first, as the CNI may be using it.
    await pod(OUTSIDE, 'legacy-web', { [CALICO]: '["10.203.2.2","10.203.2.3"]' }, NODE);
    const db = await pod(OUTSIDE, 'legacy-db', {}, NODE);
    db.status = { phase: 'Running', podIP: '10.203.2.4', podIPs: [{ ip: '10.203.2.4' }] };
    await env.c.core.replaceNamespacedPodStatus({ name: 'legacy-db', namespace: OUTSIDE, body: db });
    await seen('10.203.2.4', `${OUTSIDE}/legacy-db`);

    expect(await refusal('10.203.2.2')).toContain(`10.203.2.2 is held by pod ${OUTSIDE}/legacy-web`);
    expect(await refusal('10.203.2.3')).toBe('');
    expect(await fill('kept', 'sq-kept', 2)).toEqual(['10.203.2.1', '10.203.2.3']);
    const full = await pod(TENANT, 'kept-2', { 'netpin.io/pool': 'sq-kept' }).then(
      () => '',
      (e: unknown) => apiMessage(e),
    );
    expect(full).toContain('sq-kept');
  });

  it('a namespace that opts in or out has its pods judged again', async () => {
    const LATE = await env.namespace('sq-late', {});
    await createPool(env.c, 'sq-late', { ranges: ['10.203.3.1-10.203.3.4'] });
    await pod(LATE, 'early', { 'netpin.io/allocated': '10.203.3.1', [CALICO]: '["10.203.3.1"]' });
    await pod(LATE, 'marker', { [CALICO]: '["10.203.3.4"]' }, NODE);
    await seen('10.203.3.4', `${LATE}/marker`);
    expect(await refusal('10.203.3.1')).toBe('');

    const label = async (labels: Record<string, string>) => {
      const ns = await env.c.core.readNamespace({ name: LATE });
      ns.metadata!.labels = { 'kubernetes.io/metadata.name': LATE, ...labels };
      await env.c.core.replaceNamespace({ name: LATE, body: ns });
    };
    // Opted in, its pods' records count: netpin's webhooks guard them from now on.
    await label({ 'netpin.io/enabled': 'true' });
    await seen('10.203.3.1', `${LATE}/early`);
    await label({});
    await waitFor(
      'netpin to stop counting sq-late/early',
      async () => (await refusal('10.203.3.1')) === '',
      30_000,
      300,
    );
  });

  it('a namespace that opts out while its Pending pod holds a claim keeps the address held', async () => {
    const LEAVING = await env.namespace('sq-leaving');
    await createPool(env.c, 'sq-leave', { ranges: ['10.203.4.1-10.203.4.2'] });
    const p = await env.c.core.createNamespacedPod({
      namespace: LEAVING,
      body: { metadata: { generateName: 'api-', annotations: { 'netpin.io/pool': 'sq-leave' } }, spec: SPEC },
    });
    expect(calicoIps(p)).toEqual(['10.203.4.1']);
    const ns = await env.c.core.readNamespace({ name: LEAVING });
    ns.metadata!.labels = { 'kubernetes.io/metadata.name': LEAVING };
    await env.c.core.replaceNamespace({ name: LEAVING, body: ns });
    // Past the claim grace period (30 s) and a few reconciler rounds: the claim stays, and the address with it.
    await new Promise((r) => setTimeout(r, 40_000));
    expect((await listClaims(env.c, 'sq-leave')).map((x) => x.ip)).toEqual(['10.203.4.1']);
    expect(await refusal('10.203.4.1')).toContain(`10.203.4.1 is held by pod ${LEAVING}/${p.metadata!.name}`);
  }, 120_000);
}
