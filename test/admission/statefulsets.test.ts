import { describe, expect, it } from 'vitest';
import type { CniName } from '../../src/cni/dialect.js';
import {
  admittedAnnotations,
  denial,
  deployment,
  harness,
  patched,
  podCreate,
  podDelete,
  POOLS,
  review,
  statefulSet,
  workloadReview,
  type Harness,
} from '../../harness/reviews.js';

const OWNER = { kind: 'StatefulSet', name: 'web' };
const POOL = { 'netpin.io/pool': 'web' };

/** Creates pod web-k of StatefulSet web and returns its netpin.io/allocated. */
async function createPod(h: Harness, k: number, annotations: Record<string, string> = POOL) {
  const body = podCreate({ name: `web-${k}`, owner: OWNER, annotations });
  const after = admittedAnnotations(body, await h.mutate(body));
  return after['netpin.io/allocated'];
}

async function deletePod(h: Harness, k: number, annotations: Record<string, string> = POOL) {
  const body = podCreate({ name: `web-${k}`, owner: OWNER, annotations });
  const stored = patched(body, (await h.mutate(body)).response);
  expect((await h.mutate(podDelete(stored))).response.allowed).toBe(true);
}

const ordinals = (h: Harness) =>
  Object.fromEntries(
    Object.entries(h.held())
      .filter(([, owner]) => owner.startsWith('StatefulSet/shop/web/'))
      .map(([ip, owner]) => [owner.slice('StatefulSet/shop/web/'.length), ip]),
  );

describe('StatefulSet ordinals', () => {
  it('reserves, on CREATE, the k-th free address for ordinal k, and pods web-k get them in order', async () => {
    const h = await harness();
    // 10.20.0.3 and 10.20.0.5 are taken already, so "k-th free" is not "k-th of the pool".
    await h.mutate(podCreate({ name: 'x', annotations: { 'netpin.io/ip': '10.20.0.3' } }));
    await h.mutate(podCreate({ name: 'y', annotations: { 'netpin.io/ip': '10.20.0.5' } }));

    const answer = await h.mutate(statefulSet('CREATE', { replicas: 5, annotations: POOL }));
    expect(answer.response.allowed).toBe(true);
    expect(answer.response.warnings).toEqual([
      'netpin: reserved web-0=10.20.0.2 web-1=10.20.0.4 web-2=10.20.0.6 web-3=10.20.0.7 web-4=10.20.0.8',
    ]);
    expect(ordinals(h)).toEqual({ 0: '10.20.0.2', 1: '10.20.0.4', 2: '10.20.0.6', 3: '10.20.0.7', 4: '10.20.0.8' });

    // Pods come in any order; each gets its ordinal's address.
    const got: Record<number, string | undefined> = {};
    for (const k of [3, 0, 4, 1, 2]) got[k] = await createPod(h, k);
    expect(got).toEqual({ 0: '10.20.0.2', 1: '10.20.0.4', 2: '10.20.0.6', 3: '10.20.0.7', 4: '10.20.0.8' });
    expect(Object.keys(h.held())).toHaveLength(7);
  });

  it('re-reserves every ordinal in order when the pool changes, also while scaling up', async () => {
    // Ordinals 0 and 1 give back their web addresses first; 2 and 3 have none: they must not get ahead.
    const h = await harness({
      pools: `${POOLS}---
apiVersion: netpin.io/v1alpha1
kind: IPPool
metadata: { name: web2 }
spec:
  cidr: 10.21.0.0/24
  exclude: ["10.21.0.1"]
  namespaceSelector: { matchLabels: { team: web } }
  cni: { calico: { pool: web2-pool } }
`,
    });
    expect((await h.mutate(statefulSet('CREATE', { replicas: 2, annotations: POOL }))).response.allowed).toBe(true);
    expect(ordinals(h)).toEqual({ 0: '10.20.0.2', 1: '10.20.0.3' });
    const answer = await h.mutate(statefulSet('UPDATE', { replicas: 4, annotations: { 'netpin.io/pool': 'web2' } }));
    expect(answer.response.allowed).toBe(true);
    expect(ordinals(h)).toEqual({ 0: '10.21.0.2', 1: '10.21.0.3', 2: '10.21.0.4', 3: '10.21.0.5' });
  });

  it('honours spec.ordinals.start', async () => {
    const h = await harness({ cni: 'kube-ovn' });
    const answer = await h.mutate(statefulSet('CREATE', { replicas: 3, ordinalsStart: 5, annotations: POOL }));
    expect(answer.response.warnings).toEqual(['netpin: reserved web-5=10.20.0.2 web-6=10.20.0.3 web-7=10.20.0.4']);
    expect([await createPod(h, 7), await createPod(h, 5), await createPod(h, 6)]).toEqual([
      '10.20.0.4',
      '10.20.0.2',
      '10.20.0.3',
    ]);
  });

  it('gives pods of two-digit ordinals their reservation too', async () => {
    const h = await harness();
    const answer = await h.mutate(statefulSet('CREATE', { replicas: 2, ordinalsStart: 10, annotations: POOL }));
    expect(answer.response.warnings).toEqual(['netpin: reserved web-10=10.20.0.2 web-11=10.20.0.3']);
    expect([await createPod(h, 11), await createPod(h, 10)]).toEqual(['10.20.0.3', '10.20.0.2']);
    expect(Object.keys(h.held())).toHaveLength(2);
  });

  it('gives ordinal k entry k of netpin.io/ips, from spec.ordinals.start', async () => {
    const h = await harness();
    const ips = { 'netpin.io/ips': '10.20.0.30;10.20.0.20;10.20.0.10' };
    expect(
      (await h.mutate(statefulSet('CREATE', { replicas: 3, ordinalsStart: 1, annotations: ips }))).response.allowed,
    ).toBe(true);
    expect(ordinals(h)).toEqual({ 1: '10.20.0.30', 2: '10.20.0.20', 3: '10.20.0.10' });
    expect([await createPod(h, 3, ips), await createPod(h, 1, ips), await createPod(h, 2, ips)]).toEqual([
      '10.20.0.10',
      '10.20.0.30',
      '10.20.0.20',
    ]);
  });

  it('gives pods their entry of netpin.io/ips even when the StatefulSet was never reviewed', async () => {
    const h = await harness();
    const ips = { 'netpin.io/ips': '10.20.0.30,10.20.0.20,10.20.0.10' };
    expect(await createPod(h, 2, ips)).toBe('10.20.0.10');
    expect(await createPod(h, 0, ips)).toBe('10.20.0.30');
  });

  it("keeps a pod's address when it is deleted and created again", async () => {
    const h = await harness();
    await h.mutate(statefulSet('CREATE', { replicas: 3, annotations: POOL }));
    expect(await createPod(h, 2)).toBe('10.20.0.4');
    await deletePod(h, 2);
    // Another pod in between must not get web-2's address.
    const other = podCreate({ name: 'other', annotations: POOL });
    expect(admittedAnnotations(other, await h.mutate(other))['netpin.io/allocated']).toBe('10.20.0.5');
    expect(await createPod(h, 2)).toBe('10.20.0.4');
  });

  it("keeps each ordinal's address when scaled 5 -> 2 -> 5", async () => {
    const h = await harness();
    await h.mutate(statefulSet('CREATE', { replicas: 5, annotations: POOL }));
    const first: Record<number, string | undefined> = {};
    for (let k = 0; k < 5; k++) first[k] = await createPod(h, k);

    expect((await h.mutate(statefulSet('UPDATE', { replicas: 2, annotations: POOL }))).response.allowed).toBe(true);
    for (const k of [4, 3, 2]) await deletePod(h, k);
    // While scaled down, others draw from the pool around the kept addresses.
    const other = podCreate({ name: 'other', annotations: POOL });
    expect(admittedAnnotations(other, await h.mutate(other))['netpin.io/allocated']).toBe('10.20.0.7');

    const up = await h.mutate(statefulSet('UPDATE', { replicas: 5, annotations: POOL }));
    expect(up.response.allowed).toBe(true);
    // Nothing new to reserve: the ordinals held on.
    expect(up.response.warnings).toBeUndefined();
    const again: Record<number, string | undefined> = {};
    for (let k = 0; k < 5; k++) again[k] = await createPod(h, k);
    expect(again).toEqual(first);
    expect(first).toEqual({ 0: '10.20.0.2', 1: '10.20.0.3', 2: '10.20.0.4', 3: '10.20.0.5', 4: '10.20.0.6' });
  });

  it('reserves new ordinals on a scale-up UPDATE', async () => {
    const h = await harness();
    await h.mutate(statefulSet('CREATE', { replicas: 2, annotations: POOL }));
    await h.mutate(podCreate({ name: 'other', annotations: POOL }));
    const up = await h.mutate(statefulSet('UPDATE', { replicas: 3, annotations: POOL }));
    expect(up.response.warnings).toEqual(['netpin: reserved web-0=10.20.0.2 web-1=10.20.0.3 web-2=10.20.0.5']);
  });

  it('reserves new ordinals in order on the scale subresource, which carries no template', async () => {
    const h = await harness();
    await h.mutate(statefulSet('CREATE', { replicas: 2, annotations: POOL }));
    await h.mutate(podCreate({ name: 'other', annotations: POOL }));
    const scale = (replicas: number) =>
      review({
        kind: { group: 'autoscaling', version: 'v1', kind: 'Scale' },
        resource: { group: 'apps', version: 'v1', resource: 'statefulsets' },
        subResource: 'scale',
        namespace: 'shop',
        name: 'web',
        operation: 'UPDATE',
        object: {
          apiVersion: 'autoscaling/v1',
          kind: 'Scale',
          metadata: { name: 'web', namespace: 'shop' },
          spec: { replicas },
        },
      });
    const up = await h.mutate(scale(4));
    expect(up.response.warnings).toEqual([
      'netpin: reserved web-0=10.20.0.2 web-1=10.20.0.3 web-2=10.20.0.5 web-3=10.20.0.6',
    ]);
    expect(ordinals(h)).toEqual({ 0: '10.20.0.2', 1: '10.20.0.3', 2: '10.20.0.5', 3: '10.20.0.6' });
    // Down keeps every reservation; the validating endpoint reserves nothing.
    expect((await h.mutate(scale(1))).response.allowed).toBe(true);
    expect((await h.validate(scale(6))).response.allowed).toBe(true);
    expect(Object.keys(ordinals(h))).toEqual(['0', '1', '2', '3']);
  });

  it('releases every ordinal on a StatefulSet DELETE with the memory ledger', async () => {
    const h = await harness();
    await h.mutate(podCreate({ name: 'other', annotations: POOL }));
    await h.mutate(statefulSet('CREATE', { replicas: 3, annotations: POOL }));
    // A StatefulSet whose name starts the same is another owner.
    await h.mutate(statefulSet('CREATE', { name: 'web-2', replicas: 1, annotations: POOL }));
    expect(Object.keys(h.held())).toHaveLength(5);
    expect((await h.mutate(statefulSet('DELETE', { replicas: 3 }))).response.allowed).toBe(true);
    expect(h.held()).toEqual({ '10.20.0.2': 'Pod/shop/other', '10.20.0.6': 'StatefulSet/shop/web-2/0' });
    // A new StatefulSet web starts over from the lowest free address.
    const again = await h.mutate(statefulSet('CREATE', { replicas: 1, annotations: POOL }));
    expect(again.response.warnings).toEqual(['netpin: reserved web-0=10.20.0.3']);
  });

  it('releases nothing on DELETE when the ledger releases on its own, or in a dry run', async () => {
    for (const [releaseOnDelete, dryRun] of [
      [false, false],
      [true, true],
    ] as const) {
      const h = await harness({ releaseOnDelete });
      await h.mutate(statefulSet('CREATE', { replicas: 2, annotations: POOL }));
      await h.mutate(statefulSet('DELETE', { dryRun }));
      expect(Object.keys(ordinals(h))).toEqual(['0', '1']);
    }
  });

  it('refuses a StatefulSet its pool cannot hold, giving back the ordinals it reserved', async () => {
    const h = await harness();
    const message = denial(
      await h.mutate(statefulSet('CREATE', { replicas: 3, annotations: { 'netpin.io/pool': 'tiny' } })),
    );
    expect(message).toContain('netpin.io/pool (CNI Calico): web-2: IPPool tiny has no free IPv4 address (2 of 2 held)');
    expect(message).toContain('Fix: ');
    expect(h.held()).toEqual({});
  });

  // Found by test/property: replicas 2^31 - 1 started an allocation per ordinal and ran out of heap.
  it('refuses more ordinals than netpin reserves for one StatefulSet, before reserving any', async () => {
    const h = await harness();
    for (const answer of [
      await h.mutate(statefulSet('CREATE', { replicas: 2 ** 31 - 1, annotations: POOL })),
      await h.validate(statefulSet('CREATE', { replicas: 2 ** 31 - 1, annotations: POOL })),
    ]) {
      expect(denial(answer)).toBe(
        'netpin.io/pool (CNI Calico): StatefulSet web has 2147483647 replicas, and netpin reserves an address for 10000 ordinals at most. Fix: lower spec.replicas to 10000 or fewer, or split the StatefulSet',
      );
    }
    expect(h.held()).toEqual({});
  });

  it('reserves nothing from /validate', async () => {
    const h = await harness();
    expect((await h.validate(statefulSet('CREATE', { replicas: 3, annotations: POOL }))).response).toMatchObject({
      allowed: true,
    });
    expect(h.held()).toEqual({});
  });

  it.each<[CniName, number]>([
    ['calico', 2],
    ['kube-ovn', 2],
    ['antrea', 0],
    ['cilium', 0],
  ])('on %s, reserves %i ordinals (Antrea and Cilium pick StatefulSet IPs themselves)', async (cni, reserved) => {
    const h = await harness({ cni });
    expect((await h.mutate(statefulSet('CREATE', { replicas: 2, annotations: POOL }))).response.allowed).toBe(true);
    expect(Object.keys(h.held())).toHaveLength(reserved);
  });

  it('has Antrea, not netpin, pin a StatefulSet pod from the pool', async () => {
    const h = await harness({ cni: 'antrea' });
    const body = podCreate({ name: 'web-0', owner: OWNER, annotations: POOL });
    const answer = await h.mutate(body);
    expect(admittedAnnotations(body, answer)).toEqual({ ...POOL, 'ipam.antrea.io/ippools': 'web-pool' });
    expect(answer.response.warnings?.some((w) => w.includes('Antrea, not netpin, pins'))).toBe(true);
    expect(h.held()).toEqual({});
  });

  it('shows at most six reservations in its warning: the first three and the last two', async () => {
    const h = await harness();
    expect(
      (await h.mutate(statefulSet('CREATE', { name: 'db', replicas: 6, annotations: POOL }))).response.warnings,
    ).toEqual([
      'netpin: reserved db-0=10.20.0.2 db-1=10.20.0.3 db-2=10.20.0.4 db-3=10.20.0.5 db-4=10.20.0.6 db-5=10.20.0.7',
    ]);
    expect((await h.mutate(statefulSet('CREATE', { replicas: 7, annotations: POOL }))).response.warnings).toEqual([
      'netpin: reserved web-0=10.20.0.8 web-1=10.20.0.9 web-2=10.20.0.10 … web-5=10.20.0.13 web-6=10.20.0.14',
    ]);
    expect(Object.keys(ordinals(h))).toHaveLength(7);
  });

  it('gives back what a reservation claimed when the ledger fails for one ordinal, and answers with the error', async () => {
    const h = await harness();
    const allocator = h.deps.allocator;
    const allocate = allocator.allocate.bind(allocator);
    let calls = 0;
    allocator.allocate = (r) => (++calls === 2 ? Promise.reject(new Error('the API server failed')) : allocate(r));
    const answer = await h.mutate(statefulSet('CREATE', { replicas: 3, annotations: POOL }));
    expect(answer.status).toBe(200);
    expect(answer.response).toMatchObject({
      allowed: false,
      status: { code: 500, message: 'netpin could not decide: the API server failed' },
    });
    expect(h.held()).toEqual({});
  });

  it('releases on DELETE only the ordinals of that StatefulSet, whatever its name', async () => {
    const h = await harness();
    // A name that starts with a digit, and a Deployment of the same name.
    await h.mutate(statefulSet('CREATE', { name: '0db', replicas: 2, annotations: POOL }));
    await h.mutate(statefulSet('CREATE', { replicas: 1, annotations: POOL }));
    expect((await h.mutate(deployment('DELETE', { name: 'web' }))).response.allowed).toBe(true);
    expect(Object.keys(h.held())).toHaveLength(3);
    const del = statefulSet('DELETE', { name: '0db' });
    // The API server names the object; a review that does not is read from the object as stored.
    delete del.request!.name;
    expect((await h.mutate(del)).response.allowed).toBe(true);
    expect(h.held()).toEqual({ '10.20.0.4': 'StatefulSet/shop/web/0' });
  });
});

describe('a refused StatefulSet UPDATE', () => {
  // Found by mutation testing: the reservation gave back what the new intent no longer allowed before
  // claiming, and a refusal left those addresses free under the ordinals that still run.
  it('keeps the reservations of the ordinals that still run', async () => {
    const h = await harness();
    const three = { replicas: 3, annotations: { 'netpin.io/ips': '10.20.0.7;10.20.0.8;10.20.0.9' } };
    await h.mutate(statefulSet('CREATE', three));
    const before = h.held();
    const body = workloadReview('StatefulSet', 'UPDATE', {
      replicas: 2,
      annotations: { 'netpin.io/ips': '10.20.0.7;10.20.0.9' },
    });
    body.request!.oldObject = workloadReview('StatefulSet', 'CREATE', three).request!.object;
    denial(await h.mutate(body));
    expect(h.held()).toEqual(before);
    denial(await h.mutate(podCreate({ name: 'intruder', annotations: { 'netpin.io/ip': '10.20.0.8' } })));
  });
});
