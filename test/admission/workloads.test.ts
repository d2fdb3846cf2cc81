import { describe, expect, it } from 'vitest';
import type { AdmissionReview } from '../../src/admission/review.js';
import {
  denial,
  deployment,
  harness,
  podCreate,
  POOLS,
  scaleUpdate,
  statefulSet,
  workloadReview,
  type Harness,
  type WorkloadFields,
} from '../support/reviews.js';

const RECREATE = { type: 'Recreate' };

describe('Deployment and StatefulSet admission', () => {
  it('allows a Deployment with a pool, claiming nothing: its pods claim when they come', async () => {
    const h = await harness();
    for (const endpoint of ['mutate', 'validate'] as const) {
      const answer = await h[endpoint](deployment('CREATE', { replicas: 5, annotations: { 'netpin.io/pool': 'web' } }));
      expect(answer.response).toMatchObject({ allowed: true });
      expect(answer.response.patch).toBeUndefined();
    }
    expect(h.held()).toEqual({});
  });

  it('allows netpin.io/ip on a single replica that cannot surge', async () => {
    const h = await harness();
    expect(
      (
        await h.mutate(
          deployment('CREATE', { replicas: 1, strategy: RECREATE, annotations: { 'netpin.io/ip': '10.20.0.7' } }),
        )
      ).response.allowed,
    ).toBe(true);
    const noSurge = { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } };
    expect(
      (
        await h.mutate(
          deployment('CREATE', { replicas: 1, strategy: noSurge, annotations: { 'netpin.io/ip': '10.20.0.7' } }),
        )
      ).response.allowed,
    ).toBe(true);
    expect(
      (await h.mutate(statefulSet('CREATE', { replicas: 1, annotations: { 'netpin.io/ip': '10.20.0.7' } }))).response
        .allowed,
    ).toBe(true);
  });

  it('counts a missing spec.replicas as 1, as the API server defaults it', async () => {
    const h = await harness();
    const body = deployment('CREATE', { strategy: RECREATE, annotations: { 'netpin.io/ip': '10.20.0.7' } });
    delete body.request!.object!.spec.replicas;
    expect((await h.mutate(body)).response.allowed).toBe(true);
  });

  it('counts the pods a rolling update adds: netpin.io/ips needs replicas + maxSurge entries', async () => {
    const h = await harness();
    const ips = { 'netpin.io/ips': '10.20.0.7,10.20.0.8,10.20.0.9' };
    // 25% of 2 rounds up to 1: 3 entries serve 2 replicas and the surge pod.
    expect((await h.mutate(deployment('UPDATE', { replicas: 2, annotations: ips }))).response).toEqual(
      expect.objectContaining({ allowed: true }),
    );
    const surge2 = { type: 'RollingUpdate', rollingUpdate: { maxSurge: 2 } };
    expect(denial(await h.mutate(deployment('UPDATE', { replicas: 2, strategy: surge2, annotations: ips })))).toContain(
      'adds 2 more pods',
    );
    expect(
      (await h.mutate(deployment('UPDATE', { replicas: 3, strategy: RECREATE, annotations: ips }))).response.allowed,
    ).toBe(true);
  });

  it("warns that netpin annotations on the workload's own metadata are ignored", async () => {
    const h = await harness();
    const answer = await h.mutate(deployment('CREATE', { ownAnnotations: { 'netpin.io/pool': 'web' } }));
    expect(answer.response).toMatchObject({
      allowed: true,
      warnings: [
        "netpin: the netpin.io/ annotations on the Deployment's own metadata are ignored; put them under spec.template.metadata.annotations",
      ],
    });
    // The warning stays with a denial of the template.
    const both = await h.mutate(
      deployment('CREATE', { ownAnnotations: { 'netpin.io/pool': 'web' }, annotations: { 'netpin.io/pool': 'nope' } }),
    );
    expect(denial(both)).toContain('IPPool nope does not exist');
    expect(both.response.warnings).toHaveLength(1);
  });

  it("checks the template against the CNI with the workload's replicas", async () => {
    const h = await harness({ cni: 'kube-ovn' });
    const eip = { 'netpin.io/egress-ip': '203.0.113.10', 'netpin.io/egress-mode': 'eip' };
    expect(denial(await h.mutate(deployment('CREATE', { replicas: 3, annotations: eip })))).toContain(
      "netpin.io/egress-mode (CNI Kube-OVN): Kube-OVN's ovn.kubernetes.io/eip is a 1:1 NAT for one pod, and this Deployment has 3 replicas",
    );
    expect((await h.mutate(deployment('CREATE', { replicas: 1, annotations: eip }))).response.allowed).toBe(true);
  });

  it('reports the workload checks and the intent checks together', async () => {
    const h = await harness();
    const message = denial(
      await h.mutate(statefulSet('CREATE', { replicas: 3, annotations: { 'netpin.io/ips': '10.20.0.7,10.99.0.1' } })),
    );
    expect(message).toContain('netpin.io/ips (CNI Calico): 10.99.0.1 lies outside every IPPool');
    expect(message).toContain('netpin.io/ips (CNI Calico): has 2 entries, but ordinals 0..2 need 3');
  });

  it('allows workload UPDATEs without netpin annotations and DELETEs of Deployments', async () => {
    const h = await harness();
    expect((await h.mutate(deployment('UPDATE', { replicas: 4 }))).response).toMatchObject({ allowed: true });
    expect((await h.mutate(deployment('DELETE'))).response).toMatchObject({ allowed: true });
    expect((await h.validate(statefulSet('DELETE'))).response).toMatchObject({ allowed: true });
  });
});

const TINY = { 'netpin.io/pool': 'tiny' };
const TINY_FIX =
  'add addresses to IPPool tiny (spec.cidr or spec.ranges), delete workloads that hold them, or name another pool: web';

/** An UPDATE from `before` to `after`, as the API server sends it: oldObject is the object as stored. */
function update(kind: 'Deployment' | 'StatefulSet', before: WorkloadFields, after: WorkloadFields): AdmissionReview {
  const body = workloadReview(kind, 'UPDATE', after);
  body.request!.oldObject = workloadReview(kind, 'CREATE', before).request!.object;
  return body;
}

/** A scale from `from` to `to` replicas: oldObject is the Scale as stored. */
function scale(resource: 'deployments' | 'statefulsets', from: number, to: number): AdmissionReview {
  const body = scaleUpdate(resource, 'web', to);
  body.request!.oldObject = { ...body.request!.object, spec: { replicas: from } };
  return body;
}

/** A pod of Deployment web, admitted: it claims an address as every pod does, in its own name. */
async function deploymentPod(h: Harness, suffix: string, annotations: Record<string, string>) {
  const body = podCreate({
    name: `web-6d8f9-${suffix}`,
    owner: { kind: 'ReplicaSet', name: 'web-6d8f9' },
    annotations,
  });
  expect((await h.mutate(body)).response.allowed).toBe(true);
}

async function both(h: Harness, body: AdmissionReview) {
  return [await h.mutate(body), await h.validate(body)];
}

describe('Deployment and StatefulSet templates against the ledger', () => {
  it('refuses a fixed address another owner holds, naming the holder, and claims nothing', async () => {
    const h = await harness();
    await h.mutate(podCreate({ name: 'cart', annotations: { 'netpin.io/ip': '10.20.0.7' } }));
    const body = deployment('CREATE', { strategy: RECREATE, annotations: { 'netpin.io/ip': '10.20.0.7' } });
    for (const answer of await both(h, body)) {
      expect(denial(answer)).toBe(
        'netpin.io/ip (CNI Calico): 10.20.0.7 is held by pod shop/cart (IPPool web). Fix: choose a free address such as 10.20.0.2, or let netpin choose with netpin.io/pool: web',
      );
    }
    expect(h.held()).toEqual({ '10.20.0.7': 'Pod/shop/cart' });
  });

  it('refuses netpin.io/ips with fewer free entries than pods, and allows as many as there are', async () => {
    const h = await harness();
    await h.mutate(podCreate({ name: 'cart', annotations: { 'netpin.io/ip': '10.20.0.7' } }));
    const ips = { 'netpin.io/ips': '10.20.0.7;10.20.0.8;10.20.0.9' };
    expect(
      (await h.mutate(deployment('CREATE', { replicas: 2, strategy: RECREATE, annotations: ips }))).response.allowed,
    ).toBe(true);
    expect(denial(await h.validate(deployment('CREATE', { replicas: 3, strategy: RECREATE, annotations: ips })))).toBe(
      'netpin.io/ips (CNI Calico): 2 of its 3 entries are free, and Deployment web has 3 replicas; 10.20.0.7 is held by pod shop/cart (IPPool web). Fix: list 1 more free entries, or lower replicas to 2',
    );
  });

  it("counts the entries an UPDATE's old object listed as held by its own pods, and names another holder", async () => {
    const h = await harness();
    const ips = { 'netpin.io/ips': '10.20.0.7;10.20.0.8;10.20.0.9;10.20.0.10' };
    for (const suffix of ['aaaaa', 'bbbbb']) await deploymentPod(h, suffix, ips);
    const from = { replicas: 2, strategy: RECREATE, annotations: ips };
    expect((await h.validate(update('Deployment', from, { ...from, replicas: 4 }))).response.allowed).toBe(true);
    // A new entry another pod holds: named, although the entries of its own pods are held too.
    await h.mutate(podCreate({ name: 'cart', annotations: { 'netpin.io/ip': '10.20.0.11' } }));
    const more = { 'netpin.io/ips': '10.20.0.7;10.20.0.8;10.20.0.9;10.20.0.11' };
    expect(denial(await h.validate(update('Deployment', from, { ...from, replicas: 4, annotations: more })))).toBe(
      'netpin.io/ips (CNI Calico): 1 of its 4 entries are free and 2 are taken to be held by its own pods, and Deployment web has 4 replicas; 10.20.0.11 is held by pod shop/cart (IPPool web). Fix: list 1 more free entries, or lower replicas to 3',
    );
  });

  it("refuses a StatefulSet whose ordinal's entry another owner holds; its own ordinals' are its own", async () => {
    const h = await harness();
    const ips = { 'netpin.io/ips': '10.20.0.7;10.20.0.8;10.20.0.9' };
    // Reserved by the mutating webhook, then checked by the validating one: the ordinals hold them.
    for (const answer of await both(h, statefulSet('CREATE', { replicas: 2, annotations: ips })))
      expect(answer.response.allowed).toBe(true);
    await h.mutate(podCreate({ name: 'cart', annotations: { 'netpin.io/ip': '10.20.0.9' } }));
    const scaled = update('StatefulSet', { replicas: 2, annotations: ips }, { replicas: 3, annotations: ips });
    expect(denial(await h.validate(scaled))).toBe(
      'netpin.io/ips (CNI Calico): web-2: 10.20.0.9 is held by pod shop/cart (IPPool web). Fix: choose a free address such as 10.20.0.2, or let netpin choose with netpin.io/pool: web',
    );
  });

  it('refuses replicas a pool has no room for, and says how many fit', async () => {
    const h = await harness();
    for (const answer of await both(h, deployment('CREATE', { replicas: 3, strategy: RECREATE, annotations: TINY }))) {
      expect(denial(answer)).toBe(
        `netpin.io/pool (CNI Calico): IPPool tiny has 2 free IPv4 addresses (0 of 2 held), and Deployment web has 3 replicas. Fix: lower replicas to 2, or ${TINY_FIX}`,
      );
    }
    // With a percentage surge the fit is found without counting up to the replicas.
    expect(denial(await h.mutate(deployment('CREATE', { replicas: 2 ** 31 - 1, annotations: TINY })))).toContain(
      'Fix: lower replicas to 1, or',
    );
    expect(
      (await h.mutate(deployment('CREATE', { replicas: 2, strategy: RECREATE, annotations: TINY }))).response.allowed,
    ).toBe(true);
    expect(h.held()).toEqual({});
  });

  it("says when a rolling update's surge is what the pool has no room for", async () => {
    const h = await harness();
    expect(denial(await h.mutate(deployment('CREATE', { replicas: 2, annotations: TINY })))).toBe(
      `netpin.io/pool (CNI Calico): IPPool tiny has 2 free IPv4 addresses (0 of 2 held): room for the 2 replicas of Deployment web, but not for the 1 more pods a rolling update adds (maxSurge 25%) while the old ones hold their addresses, so the rollout would never finish. Fix: set spec.strategy.type: Recreate, or spec.strategy.rollingUpdate.maxSurge: 0 with maxUnavailable: 1, or ${TINY_FIX}`,
    );
  });

  it('counts the free addresses of a vast IPv6 pool without walking it', async () => {
    const h = await harness({
      pools: `${POOLS}---
apiVersion: netpin.io/v1alpha1
kind: IPPool
metadata: { name: vast }
spec: { cidr: "fd00:99::/48" }
`,
    });
    const started = performance.now();
    const body = deployment('CREATE', { replicas: 2 ** 31 - 1, annotations: { 'netpin.io/pool': 'vast' } });
    expect((await h.validate(body)).response.allowed).toBe(true);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('refuses a dry run of a StatefulSet its pool cannot hold, reserving nothing', async () => {
    const h = await harness();
    expect(denial(await h.mutate(statefulSet('CREATE', { replicas: 3, annotations: TINY, dryRun: true })))).toBe(
      `netpin.io/pool (CNI Calico): IPPool tiny has 2 free IPv4 addresses (0 of 2 held), and StatefulSet web has 3 replicas. Fix: lower replicas to 2, or ${TINY_FIX}`,
    );
    expect(h.held()).toEqual({});
  });

  it("counts a StatefulSet's reserved ordinals as its own, and only those below replicas", async () => {
    const h = await harness();
    expect((await h.mutate(statefulSet('CREATE', { replicas: 2, annotations: TINY }))).response.allowed).toBe(true);
    expect((await h.validate(statefulSet('CREATE', { replicas: 2, annotations: TINY }))).response.allowed).toBe(true);
    expect((await h.validate(scale('statefulsets', 2, 1))).response.allowed).toBe(true);
    expect(denial(await h.validate(scale('statefulsets', 1, 3)))).toBe(
      `netpin.io/pool (CNI Calico): IPPool tiny has 0 free IPv4 addresses (2 of 2 held) and 2 that StatefulSet web holds, and StatefulSet web has 3 replicas. Fix: lower replicas to 2, or ${TINY_FIX}`,
    );
  });

  it('refuses `kubectl scale` past the room of the pool, counting the replicas it had as held', async () => {
    const h = await harness();
    const one = { replicas: 1, strategy: RECREATE, annotations: TINY };
    expect((await h.mutate(deployment('CREATE', one))).response.allowed).toBe(true);
    await deploymentPod(h, 'aaaaa', TINY);
    for (const answer of await both(h, scale('deployments', 1, 3))) {
      expect(denial(answer)).toBe(
        `netpin.io/pool (CNI Calico): IPPool tiny has 1 free IPv4 addresses (1 of 2 held) and 1 that Deployment web holds, and Deployment web has 3 replicas. Fix: lower replicas to 2, or ${TINY_FIX}`,
      );
    }
    for (const answer of await both(h, scale('deployments', 1, 2))) expect(answer.response.allowed).toBe(true);
  });

  it('never refuses an UPDATE that needs no more than the object it replaces, though the spare was taken', async () => {
    const h = await harness();
    // One replica and its surge pod: the whole of tiny.
    expect((await h.mutate(deployment('CREATE', { replicas: 1, annotations: TINY }))).response.allowed).toBe(true);
    await deploymentPod(h, 'aaaaa', TINY);
    await h.mutate(podCreate({ name: 'other', annotations: TINY }));
    const labelled = update('Deployment', { annotations: TINY }, { annotations: TINY });
    labelled.request!.object!.metadata!.labels = { team: 'shop' };
    for (const answer of await both(h, labelled)) expect(answer.response.allowed).toBe(true);
    // Another pool is another need: its room is counted in full.
    const moved = update(
      'Deployment',
      { replicas: 1, strategy: RECREATE, annotations: { 'netpin.io/pool': 'web' } },
      { replicas: 1, strategy: RECREATE, annotations: TINY },
    );
    expect(denial(await h.validate(moved))).toContain(
      'IPPool tiny has 0 free IPv4 addresses (2 of 2 held), and Deployment web has 1 replicas',
    );
  });
});
