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
} from '../../harness/reviews.js';

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

  it.each(['netpin.io/egress', 'netpin.io/pinned'])(
    'refuses %s in a pod template at apply, on both webhooks, since each of its pods would be refused',
    async (label) => {
      const h = await harness();
      for (const make of [deployment, statefulSet]) {
        const body = make('CREATE', { replicas: 2, annotations: { 'netpin.io/egress-pool': 'out' } });
        body.request!.object!.spec.template.metadata.labels[label] = '10.90.0.1';
        for (const endpoint of ['mutate', 'validate'] as const)
          expect(denial(await h[endpoint](body))).toContain(
            `${label} (CNI Calico): is netpin's label, set here by hand`,
          );
      }
      expect(h.held()).toEqual({});
    },
  );

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

const POOL = { 'netpin.io/pool': 'web' };
const FIXED = (ip: string) => ({ 'netpin.io/ip': ip });
const IPS = (list: string) => ({ 'netpin.io/ips': list });

describe('what a workload review is read as', () => {
  it('allows operations other than CREATE, UPDATE and DELETE without looking', async () => {
    const h = await harness();
    const body = deployment('CONNECT', { annotations: { 'netpin.io/pool': 'nope' } });
    expect((await h.mutate(body)).response).toEqual({ uid: body.request!.uid, allowed: true });
  });

  it("checks a template in the request's namespace when its object names none, and in default when neither does", async () => {
    const h = await harness();
    const body = deployment('CREATE', { replicas: 2, strategy: RECREATE, annotations: POOL });
    delete body.request!.object!.metadata!.namespace;
    expect((await h.validate(body)).response.allowed).toBe(true);
    delete body.request!.namespace;
    expect(denial(await h.validate(body))).toContain('IPPool web does not select namespace default');
  });

  it('names the workload from its object, or a Scale from its own, when the review carries no request.name', async () => {
    const h = await harness();
    const body = deployment('CREATE', { replicas: 3, strategy: RECREATE, annotations: TINY });
    delete body.request!.name;
    expect(denial(await h.mutate(body))).toContain('and Deployment web has 3 replicas');
    expect(
      (await h.mutate(deployment('CREATE', { strategy: RECREATE, annotations: FIXED('10.20.0.7') }))).response.allowed,
    ).toBe(true);
    const scaled = scaleUpdate('deployments', 'web', 2);
    delete scaled.request!.name;
    expect(denial(await h.mutate(scaled))).toContain(
      'netpin.io/ip (CNI Calico): one fixed address cannot serve 2 replicas',
    );
  });

  it('learns of a workload from real mutating reviews only: a dry run leaves nothing behind', async () => {
    const h = await harness();
    const fixed = { name: 'api', strategy: RECREATE, annotations: FIXED('10.20.0.7') };
    expect((await h.mutate(deployment('CREATE', { ...fixed, dryRun: true }))).response.allowed).toBe(true);
    // Unknown: scaling it is not netpin's to judge.
    expect((await h.mutate(scaleUpdate('deployments', 'api', 3))).response.allowed).toBe(true);
    expect((await h.mutate(deployment('CREATE', fixed))).response.allowed).toBe(true);
    expect(denial(await h.mutate(scaleUpdate('deployments', 'api', 3)))).toContain(
      'one fixed address cannot serve 3 replicas',
    );
  });

  it('follows `kubectl scale` in what it knows of a Deployment, for a Scale that comes without its stored copy', async () => {
    const h = await harness();
    /** A scale to `replicas` whose review has no oldObject: the replicas before are those netpin knows. */
    const bare = (replicas: number, dryRun = false) => {
      const body = scaleUpdate('deployments', 'web', replicas);
      delete body.request!.oldObject;
      body.request!.dryRun = dryRun;
      return body;
    };
    expect(
      (await h.mutate(deployment('CREATE', { replicas: 1, strategy: RECREATE, annotations: TINY }))).response.allowed,
    ).toBe(true);
    await deploymentPod(h, 'aaaaa', TINY);
    // Its one pod holds one of tiny's two addresses, and counts as its own.
    expect((await h.mutate(bare(2))).response.allowed).toBe(true);
    await deploymentPod(h, 'bbbbb', TINY);
    // Now at 2, with both addresses: the same scale again needs nothing more.
    expect((await h.mutate(bare(2))).response.allowed).toBe(true);
    // A dry run, and /validate, change nothing netpin knows.
    expect((await h.mutate(bare(1, true))).response.allowed).toBe(true);
    expect((await h.mutate(bare(2))).response.allowed).toBe(true);
  });

  it('works with a cluster view that keeps no workloads of its own, as the API server view does', async () => {
    const h = await harness();
    // It knows the StatefulSet from its own watch, not from the reviews.
    const watched = { replicas: 2, ordinalsStart: 0, templateAnnotations: POOL };
    Object.assign(h.cluster, { rememberWorkload: undefined, statefulSet: () => watched });
    const answer = await h.mutate(statefulSet('CREATE', { replicas: 2, annotations: POOL }));
    expect(answer.response.warnings).toEqual(['netpin: reserved web-0=10.20.0.2 web-1=10.20.0.3']);
    expect((await h.mutate(scaleUpdate('statefulsets', 'web', 3))).response.warnings).toEqual([
      'netpin: reserved web-0=10.20.0.2 web-1=10.20.0.3 web-2=10.20.0.4',
    ]);
    expect((await h.mutate(statefulSet('DELETE'))).response.allowed).toBe(true);
    expect(h.held()).toEqual({});
  });

  it("gives the CNI a Deployment's shape: Antrea pins a Deployment's fixed addresses, never a StatefulSet's", async () => {
    const h = await harness({ cni: 'antrea' });
    const ips = IPS('10.20.0.7;10.20.0.8');
    expect(
      (await h.mutate(deployment('CREATE', { replicas: 2, strategy: RECREATE, annotations: ips }))).response.allowed,
    ).toBe(true);
    expect(denial(await h.mutate(statefulSet('CREATE', { replicas: 2, annotations: ips })))).toContain(
      'netpin.io/ips (CNI Antrea): ',
    );
  });

  it('leaves the room of a pool to the CNI where netpin pins nothing', async () => {
    const h = await harness({ cni: 'cilium' });
    const body = deployment('CREATE', { replicas: 1000, strategy: RECREATE, annotations: POOL });
    for (const answer of await both(h, body)) expect(answer.response.allowed).toBe(true);
    // And it reserves nothing, however many ordinals.
    const big = statefulSet('CREATE', { replicas: 20_000, annotations: POOL });
    for (const answer of await both(h, big)) expect(answer.response.allowed).toBe(true);
    expect((await h.mutate(statefulSet('CREATE', { name: 'plain', replicas: 20_000 }))).response.allowed).toBe(true);
    expect(h.held()).toEqual({});
  });

  it('reserves for up to 10 000 ordinals', async () => {
    const h = await harness({
      pools: `${POOLS}---
apiVersion: netpin.io/v1alpha1
kind: IPPool
metadata: { name: vast }
spec: { cidr: "fd00:99::/48" }
`,
    });
    const vast = { 'netpin.io/pool': 'vast' };
    expect((await h.validate(statefulSet('CREATE', { replicas: 10_000, annotations: vast }))).response.allowed).toBe(
      true,
    );
    expect(denial(await h.validate(statefulSet('CREATE', { replicas: 10_001, annotations: vast })))).toContain(
      'StatefulSet web has 10001 replicas, and netpin reserves an address for 10000 ordinals at most',
    );
  });
});

describe('fixed addresses of a template, against the replicas and the ledger', () => {
  it('counts a percentage surge of the replicas, rounded up', async () => {
    const h = await harness();
    const half = { type: 'RollingUpdate', rollingUpdate: { maxSurge: '50%' } };
    const five = IPS('10.20.0.7;10.20.0.8;10.20.0.9;10.20.0.10;10.20.0.11');
    expect(denial(await h.validate(deployment('CREATE', { replicas: 4, strategy: half, annotations: five })))).toBe(
      'netpin.io/ips (CNI Calico): has 5 entries for 4 replicas, and a rolling update (maxSurge 50%) adds 2 more pods while the old ones hold their addresses, so the rollout would never finish. ' +
        'Fix: set spec.strategy.type: Recreate, or spec.strategy.rollingUpdate.maxSurge: 0 with maxUnavailable: 1, or list 6 entries',
    );
    const six = IPS('10.20.0.7;10.20.0.8;10.20.0.9;10.20.0.10;10.20.0.11;10.20.0.12');
    expect(
      (await h.validate(deployment('CREATE', { replicas: 4, strategy: half, annotations: six }))).response.allowed,
    ).toBe(true);
  });

  it('refuses an UPDATE that moves netpin.io/ip to an address another owner holds', async () => {
    const h = await harness();
    await h.mutate(podCreate({ name: 'cart', annotations: FIXED('10.20.0.8') }));
    const from = { replicas: 1, strategy: RECREATE, annotations: FIXED('10.20.0.7') };
    expect((await h.validate(update('Deployment', from, from))).response.allowed).toBe(true);
    expect(denial(await h.validate(update('Deployment', from, { ...from, annotations: FIXED('10.20.0.8') })))).toBe(
      'netpin.io/ip (CNI Calico): 10.20.0.8 is held by pod shop/cart (IPPool web). Fix: choose a free address such as 10.20.0.2, or let netpin choose with netpin.io/pool: web',
    );
  });

  it('counts an entry as free only when every family of it is', async () => {
    const h = await harness();
    await h.mutate(podCreate({ name: 'cart', annotations: FIXED('fd00:20::8') }));
    const ips = IPS('10.20.0.7,fd00:20::7;10.20.0.8,fd00:20::8;10.20.0.9,fd00:20::9');
    expect(denial(await h.validate(deployment('CREATE', { replicas: 3, strategy: RECREATE, annotations: ips })))).toBe(
      'netpin.io/ips (CNI Calico): 2 of its 3 entries are free, and Deployment web has 3 replicas; fd00:20::8 is held by pod shop/cart (IPPool web-v6). Fix: list 1 more free entries, or lower replicas to 2',
    );
  });

  it("counts the address of the replaced object's netpin.io/ip as its own pod's when the UPDATE lists entries", async () => {
    const h = await harness();
    const from = { replicas: 1, strategy: RECREATE, annotations: FIXED('10.20.0.7') };
    expect((await h.mutate(deployment('CREATE', from))).response.allowed).toBe(true);
    await deploymentPod(h, 'aaaaa', FIXED('10.20.0.7'));
    const to = { replicas: 2, strategy: RECREATE, annotations: IPS('10.20.0.7;10.20.0.8') };
    for (const answer of await both(h, update('Deployment', from, to))) expect(answer.response.allowed).toBe(true);
  });

  it('never takes an entry to be its own when another owner holds one of its families', async () => {
    const h = await harness();
    const from = { replicas: 1, strategy: RECREATE, annotations: IPS('10.20.0.7') };
    await deploymentPod(h, 'aaaaa', IPS('10.20.0.7'));
    await h.mutate(podCreate({ name: 'cart', annotations: FIXED('fd00:20::7') }));
    // Its own pod holds 10.20.0.7, but a new pod could never get fd00:20::7.
    const dual = update('Deployment', from, { ...from, annotations: IPS('10.20.0.7,fd00:20::7') });
    expect(denial(await h.validate(dual))).toMatch(/^netpin\.io\/ips \(CNI Calico\): .* is held by pod shop\//);
  });

  it('takes no more entries to be its own than the replaced object had replicas', async () => {
    const h = await harness();
    const ips = IPS('10.20.0.7;10.20.0.8');
    // Two pods hold both entries, one of them left over from when it ran two (it is still terminating).
    for (const suffix of ['aaaaa', 'bbbbb']) await deploymentPod(h, suffix, ips);
    const from = { replicas: 1, strategy: RECREATE, annotations: ips };
    expect(denial(await h.validate(update('Deployment', from, { ...from, replicas: 2 })))).toBe(
      'netpin.io/ips (CNI Calico): 0 of its 2 entries are free and 1 are taken to be held by its own pods, and Deployment web has 2 replicas; 10.20.0.7 is held by pod shop/web-6d8f9-aaaaa (IPPool web). Fix: list 1 more free entries, or lower replicas to 1',
    );
  });

  it('says when the surge is what the free entries lack', async () => {
    const h = await harness();
    await h.mutate(podCreate({ name: 'cart', annotations: FIXED('10.20.0.9') }));
    const ips = IPS('10.20.0.7;10.20.0.8;10.20.0.9');
    expect(denial(await h.validate(deployment('CREATE', { replicas: 2, annotations: ips })))).toBe(
      'netpin.io/ips (CNI Calico): 2 of its 3 entries are free, and Deployment web needs 3: 2 replicas and 1 more pods a rolling update adds (maxSurge 25%); 10.20.0.9 is held by pod shop/cart (IPPool web). ' +
        'Fix: set spec.strategy.type: Recreate, or spec.strategy.rollingUpdate.maxSurge: 0 with maxUnavailable: 1, or list 1 more free entries, or lower replicas to 1',
    );
  });
});

describe("a StatefulSet's ordinals against the ledger", () => {
  it('refuses an entry another StatefulSet holds, and counts the other held ones', async () => {
    const h = await harness();
    expect(
      (await h.mutate(statefulSet('CREATE', { name: 'db', annotations: FIXED('10.20.0.7') }))).response.allowed,
    ).toBe(true);
    await h.mutate(podCreate({ name: 'cart', annotations: FIXED('10.20.0.9') }));
    const ips = IPS('10.20.0.7;10.20.0.8;10.20.0.9');
    for (const answer of await both(h, statefulSet('CREATE', { replicas: 3, annotations: ips }))) {
      expect(denial(answer)).toMatch(
        /^netpin\.io\/ips \(CNI Calico\): web-0: 10\.20\.0\.7 is held by StatefulSet shop\/db \(ordinal 0\) \(IPPool web\)/,
      );
    }
    expect(denial(await h.validate(statefulSet('CREATE', { replicas: 3, annotations: ips })))).toBe(
      'netpin.io/ips (CNI Calico): web-0: 10.20.0.7 is held by StatefulSet shop/db (ordinal 0) (IPPool web), and 1 more of its addresses are held by other owners. ' +
        'Fix: choose a free address such as 10.20.0.2, or let netpin choose with netpin.io/pool: web',
    );
    expect(Object.keys(h.held())).toEqual(['10.20.0.7', '10.20.0.9']);
  });

  it('refuses an entry a StatefulSet of the same name holds in another namespace', async () => {
    const h = await harness();
    const there = statefulSet('CREATE', { namespace: 'payments', annotations: FIXED('10.40.0.1') });
    expect((await h.mutate(there)).response.allowed).toBe(true);
    expect(denial(await h.validate(statefulSet('CREATE', { annotations: FIXED('10.40.0.1') })))).toContain(
      'web-0: 10.40.0.1 is held by StatefulSet payments/web (ordinal 0)',
    );
  });

  it('refuses an entry its own ordinal outside the new range holds: a scaled-down ordinal keeps its address', async () => {
    const h = await harness();
    const three = { replicas: 3, annotations: IPS('10.20.0.7;10.20.0.8;10.20.0.9') };
    expect((await h.mutate(statefulSet('CREATE', three))).response.allowed).toBe(true);
    const down = update('StatefulSet', three, { replicas: 2, annotations: IPS('10.20.0.7;10.20.0.9') });
    expect(denial(await h.validate(down))).toContain(
      'netpin.io/ips (CNI Calico): web-1: 10.20.0.9 is held by StatefulSet shop/web (ordinal 2)',
    );
    // Below spec.ordinals.start, too.
    const shifted = update('StatefulSet', three, {
      replicas: 2,
      ordinalsStart: 1,
      annotations: IPS('10.20.0.8;10.20.0.7'),
    });
    expect(denial(await h.validate(shifted))).toContain('web-2: 10.20.0.7 is held by StatefulSet shop/web (ordinal 0)');
    expect(h.held()).toEqual({
      '10.20.0.7': 'StatefulSet/shop/web/0',
      '10.20.0.8': 'StatefulSet/shop/web/1',
      '10.20.0.9': 'StatefulSet/shop/web/2',
    });
  });

  it('counts as its own only the ordinals it runs, not one past them that still holds an address', async () => {
    // The ledger of a cluster: a StatefulSet DELETE leaves the release to the reconciler.
    const h = await harness({ releaseOnDelete: false });
    const before = { replicas: 1, ordinalsStart: 1, annotations: TINY };
    expect((await h.mutate(statefulSet('CREATE', before))).response.allowed).toBe(true);
    await h.mutate(podCreate({ name: 'other', annotations: TINY }));
    await h.mutate(statefulSet('DELETE', before));
    // Created again from ordinal 0 before ordinal 1's address was released: web-0 has no room.
    for (const answer of await both(h, statefulSet('CREATE', { replicas: 1, annotations: TINY }))) {
      expect(denial(answer)).toContain('IPPool tiny has');
    }
    expect(h.held()).toEqual({ '10.40.0.1': 'StatefulSet/shop/web/1', '10.40.0.2': 'Pod/shop/other' });
  });

  it('counts as its own only what it holds in the pool it moves to', async () => {
    const h = await harness();
    expect((await h.mutate(statefulSet('CREATE', { replicas: 2, annotations: POOL }))).response.allowed).toBe(true);
    await h.mutate(podCreate({ name: 'other', annotations: TINY }));
    const moved = update('StatefulSet', { replicas: 2, annotations: POOL }, { replicas: 2, annotations: TINY });
    expect(denial(await h.validate(moved))).toBe(
      `netpin.io/pool (CNI Calico): IPPool tiny has 1 free IPv4 addresses (1 of 2 held), and StatefulSet web has 2 replicas. Fix: lower replicas to 1, or ${TINY_FIX}`,
    );
  });
});

describe('the room of a pool', () => {
  it('says how many pods a rolling Deployment needs when not even its replicas fit', async () => {
    const h = await harness();
    expect(denial(await h.validate(deployment('CREATE', { replicas: 3, annotations: TINY })))).toBe(
      `netpin.io/pool (CNI Calico): IPPool tiny has 2 free IPv4 addresses (0 of 2 held), and Deployment web needs 4: 3 replicas and 1 more pods a rolling update adds (maxSurge 25%). Fix: lower replicas to 1, or ${TINY_FIX}`,
    );
  });

  it('counts an IPv6 pool in IPv6 addresses', async () => {
    const h = await harness({
      pools: `${POOLS}---
apiVersion: netpin.io/v1alpha1
kind: IPPool
metadata: { name: tiny6 }
spec: { ranges: ["fd00:40::1-fd00:40::3"] }
`,
    });
    expect(
      denial(
        await h.validate(
          deployment('CREATE', { replicas: 4, strategy: RECREATE, annotations: { 'netpin.io/pool': 'tiny6' } }),
        ),
      ),
    ).toBe(
      'netpin.io/pool (CNI Calico): IPPool tiny6 has 3 free IPv6 addresses (0 of 3 held), and Deployment web has 4 replicas. ' +
        'Fix: lower replicas to 3, or add addresses to IPPool tiny6 (spec.cidr or spec.ranges), delete workloads that hold them, or name another pool: web-v6',
    );
  });
});

describe('counts the API server will refuse', () => {
  // Found by the property suite at full size (npm run chaos): replicas 5e-324 made a BigInt of a
  // fraction, and the review got HTTP 500 instead of an answer.
  const pool = { 'netpin.io/pool': 'web' };
  const surge = (maxSurge: number | string) => ({
    replicas: 2,
    strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge } },
    annotations: pool,
  });
  it.each([
    ['a Deployment of 5e-324 replicas', deployment('CREATE', { replicas: 5e-324, annotations: pool })],
    ['a StatefulSet of 5e-324 replicas', statefulSet('CREATE', { replicas: 5e-324, annotations: pool })],
    ['a StatefulSet of -1 replicas', statefulSet('CREATE', { replicas: -1, annotations: pool })],
    ['a Deployment with maxSurge 0.5', deployment('CREATE', surge(0.5))],
    ['a Deployment with maxSurge "0.5"', deployment('CREATE', surge('0.5'))],
  ])('are left to it: %s is allowed in band, claiming nothing', async (_, review) => {
    const h = await harness();
    for (const endpoint of ['mutate', 'validate'] as const)
      expect((await h[endpoint](review)).response.allowed).toBe(true);
    expect(h.held()).toEqual({});
  });
});

describe('more counts the API server will refuse, left to it', () => {
  it('reserves nothing for a StatefulSet whose spec.ordinals.start is negative', async () => {
    const h = await harness();
    const body = statefulSet('CREATE', { ordinalsStart: -1, annotations: POOL });
    for (const answer of await both(h, body)) expect(answer.response).toMatchObject({ allowed: true });
    expect((await h.mutate(body)).response.warnings).toBeUndefined();
    expect(h.held()).toEqual({});
  });

  it.each(['x25%', '25%x'])('does not judge a Deployment by a maxSurge of %s', async (maxSurge) => {
    const h = await harness();
    const strategy = { type: 'RollingUpdate', rollingUpdate: { maxSurge } };
    const body = deployment('CREATE', { replicas: 2, strategy, annotations: FIXED('10.20.0.7') });
    for (const answer of await both(h, body)) expect(answer.response.allowed).toBe(true);
  });
});

describe('a dual-stack pool', () => {
  it("counts a StatefulSet's own addresses in it, family by family", async () => {
    const h = await harness({
      pools: `${POOLS}---
apiVersion: netpin.io/v1alpha1
kind: IPPool
metadata: { name: dual }
spec: { ranges: ["10.60.0.1-10.60.0.3", "fd00:60::1-fd00:60::9"] }
`,
    });
    const dual = { 'netpin.io/pool': 'dual' };
    expect((await h.mutate(statefulSet('CREATE', { replicas: 2, annotations: dual }))).response.warnings).toEqual([
      'netpin: reserved web-0=10.60.0.1,fd00:60::1 web-1=10.60.0.2,fd00:60::2',
    ]);
    expect(denial(await h.validate(scale('statefulsets', 2, 4)))).toBe(
      'netpin.io/pool (CNI Calico): IPPool dual has 1 free IPv4 addresses (2 of 3 held) and 2 that StatefulSet web holds, and StatefulSet web has 4 replicas. ' +
        'Fix: lower replicas to 3, or add addresses to IPPool dual (spec.cidr or spec.ranges), delete workloads that hold them, or name another pool: web, tiny',
    );
    expect((await h.validate(scale('statefulsets', 2, 3))).response.allowed).toBe(true);
  });
});
