// What one namespace may hold: a pool's spec.namespaceLimit on every path that claims or reserves, a
// StatefulSet's reservations against the namespace's pods quota, and netpin.io/scale-down-release.
import { describe, expect, it } from 'vitest';
import {
  admittedAnnotations,
  denial,
  deployment,
  harness,
  podCreate,
  review,
  statefulSet,
  type Harness,
  type WorkloadFields,
} from '../../harness/reviews.js';

const POOLS = `
apiVersion: netpin.io/v1alpha1
kind: IPPool
metadata: { name: capped }
spec:
  cidr: 10.20.0.0/24
  namespaceLimit: 5
  cni: { calico: { pool: capped-pool } }
---
apiVersion: netpin.io/v1alpha1
kind: IPPool
metadata: { name: open }
spec:
  cidr: 10.30.0.0/24
  cni: { calico: { pool: open-pool } }
---
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { team: web } }
---
apiVersion: v1
kind: Namespace
metadata: { name: other, labels: { team: db } }
`;

const CAPPED = { 'netpin.io/pool': 'capped' };
const OPEN = { 'netpin.io/pool': 'open' };

const reserved = (h: Harness, namespace = 'shop') =>
  Object.values(h.held()).filter((o) => o.startsWith(`StatefulSet/${namespace}/`)).length;

/** A StatefulSet UPDATE from `was` to `now`, as the API server sends it. */
function update(was: WorkloadFields, now: WorkloadFields) {
  const body = statefulSet('UPDATE', now);
  body.request!.oldObject = statefulSet('CREATE', was).request!.object;
  return body;
}

/** The scale subresource from `was` replicas to `now`. */
function scale(name: string, was: number, now: number, namespace = 'shop') {
  const of = (replicas: number) => ({
    apiVersion: 'autoscaling/v1',
    kind: 'Scale',
    metadata: { name, namespace },
    spec: { replicas },
  });
  return review({
    kind: { group: 'autoscaling', version: 'v1', kind: 'Scale' },
    resource: { group: 'apps', version: 'v1', resource: 'statefulsets' },
    subResource: 'scale',
    operation: 'UPDATE',
    namespace,
    name,
    object: of(now),
    oldObject: of(was),
  });
}

describe('spec.namespaceLimit at admission', () => {
  it('refuses a StatefulSet of 10 000 replicas past the cap, reserving nothing, and says how many fit', async () => {
    const h = await harness({ pools: POOLS });
    const message = denial(
      await h.mutate(statefulSet('CREATE', { name: 'hoard', replicas: 10_000, annotations: CAPPED })),
    );
    expect(message).toBe(
      'netpin.io/pool (CNI Calico): IPPool capped lets each namespace hold 5 IPv4 addresses (spec.namespaceLimit), and namespace shop holds 0: ' +
        'no room for the 10000 that StatefulSet hoard has 10000 replicas. Fix: lower replicas to 5, or give back addresses namespace shop holds ' +
        '(delete pods or StatefulSets it no longer needs, or scale them down; a StatefulSet scaled down gives its reservations back after netpin.io/scale-down-release), ' +
        "or ask the cluster's operator to raise spec.namespaceLimit of IPPool capped, or name another pool: open",
    );
    expect(h.held()).toEqual({});
    // The validating webhook, and a dry run, say the same.
    expect(
      denial(await h.validate(statefulSet('CREATE', { name: 'hoard', replicas: 10_000, annotations: CAPPED }))),
    ).toBe(message);
    expect(
      denial(await h.mutate(statefulSet('CREATE', { name: 'hoard', replicas: 6, annotations: CAPPED, dryRun: true }))),
    ).toMatch(/holds 0: no room for the 6 that .* lower replicas to 5/);
  });

  it('counts what the namespace holds already, pods and reservations together, and each namespace apart', async () => {
    const h = await harness({ pools: POOLS });
    for (const name of ['a', 'b']) {
      const body = podCreate({ name, annotations: CAPPED });
      admittedAnnotations(body, await h.mutate(body));
    }
    expect(
      (await h.mutate(statefulSet('CREATE', { name: 'db', replicas: 3, annotations: CAPPED }))).response.allowed,
    ).toBe(true);
    expect(reserved(h)).toBe(3);
    // A pod, a Deployment, a StatefulSet: all past the cap now.
    expect(denial(await h.mutate(podCreate({ name: 'c', annotations: CAPPED })))).toMatch(
      /namespace shop holds 5: no room for 1 more/,
    );
    expect(denial(await h.mutate(deployment('CREATE', { name: 'api', replicas: 1, annotations: CAPPED })))).toMatch(
      /holds 5: no room for the 2 that Deployment api needs 2: 1 replicas and 1 more pods a rolling update adds .* lower replicas to 0/,
    );
    expect(denial(await h.mutate(statefulSet('CREATE', { name: 'db2', replicas: 1, annotations: CAPPED })))).toMatch(
      /holds 5: no room for the 1 that StatefulSet db2 has 1 replicas/,
    );
    // Another namespace, and another pool, are not this cap's.
    expect((await h.mutate(podCreate({ name: 'c', namespace: 'other', annotations: CAPPED }))).response.allowed).toBe(
      true,
    );
    expect((await h.mutate(podCreate({ name: 'c', annotations: OPEN }))).response.allowed).toBe(true);
  });

  it("counts a StatefulSet's own reservations once: an UPDATE within the cap passes, a scale past it is refused", async () => {
    const h = await harness({ pools: POOLS });
    expect(
      (await h.mutate(statefulSet('CREATE', { name: 'web', replicas: 4, annotations: CAPPED }))).response.allowed,
    ).toBe(true);
    expect(
      (await h.mutate(update({ replicas: 4, annotations: CAPPED }, { replicas: 5, annotations: CAPPED }))).response
        .allowed,
    ).toBe(true);
    expect(reserved(h)).toBe(5);
    expect(denial(await h.mutate(scale('web', 5, 6)))).toMatch(
      /IPPool capped lets each namespace hold 5 IPv4 addresses \(spec\.namespaceLimit\), and namespace shop holds 5 \(5 of them for this same owner\): no room for the 6 that StatefulSet web has 6 replicas\. Fix: lower replicas to 5/,
    );
    expect(reserved(h)).toBe(5);
    // Scaling down is never refused.
    expect((await h.mutate(scale('web', 5, 2))).response.allowed).toBe(true);
  });

  it('never refuses an UPDATE that needs no more than before, even over a cap lowered since', async () => {
    const h = await harness({ pools: POOLS });
    expect(
      (await h.mutate(statefulSet('CREATE', { name: 'web', replicas: 5, annotations: CAPPED }))).response.allowed,
    ).toBe(true);
    const pool = h.ledger.index.pool('capped')!;
    h.ledger.index.setPool({ ...pool, namespaceLimit: 2 });
    const same = { replicas: 5, annotations: CAPPED, ownAnnotations: { team: 'x' } };
    expect((await h.mutate(update({ replicas: 5, annotations: CAPPED }, same))).response.allowed).toBe(true);
    expect((await h.mutate(scale('web', 5, 3))).response.allowed).toBe(true);
  });
});

describe("a StatefulSet's reservations against the namespace's pods quota", () => {
  const quota = (h: Harness, pods: number) => {
    const reads: string[] = [];
    h.ledger.podQuota = async (namespace) => {
      reads.push(namespace);
      return { pods, quota: `compute (pods: ${pods})` };
    };
    return reads;
  };

  it('refuses a StatefulSet that would reserve more ordinals than the namespace may run pods, reserving nothing', async () => {
    const h = await harness({ pools: POOLS });
    const reads = quota(h, 10);
    const message = denial(
      await h.mutate(statefulSet('CREATE', { name: 'hoard', replicas: 10_000, annotations: OPEN })),
    );
    expect(message).toBe(
      'netpin.io/pool (CNI Calico): namespace shop may run 10 pods (ResourceQuota compute (pods: 10)), and its StatefulSets hold reservations for 0 other ordinals: ' +
        'StatefulSet hoard may reserve 10 more, not 10000. Fix: lower spec.replicas to 10, give back reservations (delete StatefulSets, or scale them down: ' +
        'the ordinals above the new size are given back after netpin.io/scale-down-release, 1h by default), or ask for a larger pods quota',
    );
    expect(h.held()).toEqual({});
    expect(reads).toEqual(['shop']);
  });

  it('counts the reservations of every StatefulSet of the namespace, scaled-down ordinals still held included', async () => {
    const h = await harness({ pools: POOLS });
    quota(h, 10);
    expect(
      (await h.mutate(statefulSet('CREATE', { name: 'a', replicas: 6, annotations: OPEN }))).response.allowed,
    ).toBe(true);
    expect(denial(await h.mutate(statefulSet('CREATE', { name: 'b', replicas: 5, annotations: OPEN })))).toMatch(
      /reservations for 6 other ordinals: StatefulSet b may reserve 4 more, not 5/,
    );
    // a scaled down to 2 still holds ordinals 2..5 until they are given back.
    expect((await h.mutate(scale('a', 6, 2))).response.allowed).toBe(true);
    expect(denial(await h.mutate(statefulSet('CREATE', { name: 'b', replicas: 5, annotations: OPEN })))).toMatch(
      /for 6 other ordinals/,
    );
    expect(
      (await h.mutate(statefulSet('CREATE', { name: 'b', replicas: 4, annotations: OPEN }))).response.allowed,
    ).toBe(true);
    // Back up to 6: its own ordinals are its own.
    expect((await h.mutate(scale('a', 2, 6))).response.allowed).toBe(true);
    expect(reserved(h)).toBe(10);
  });

  it('lets no two reservations of one process both pass on one read of the quota', async () => {
    const h = await harness({ pools: POOLS });
    // Both reads answer together, so that each request judges the quota before the other claims.
    let open!: () => void;
    const answered = new Promise<void>((r) => (open = r));
    let reads = 0;
    h.ledger.podQuota = async () => {
      if (++reads === 2) open();
      await answered;
      return { pods: 10, quota: 'compute (pods: 10)' };
    };
    const answers = await Promise.all(
      ['a', 'b'].map((name) => h.mutate(statefulSet('CREATE', { name, replicas: 6, annotations: OPEN }))),
    );
    expect(reads).toBe(2);
    expect(answers.map((a) => a.response.allowed).sort()).toEqual([false, true]);
    expect(reserved(h)).toBe(6);
  });

  it('refuses a dry run past the quota too, reserving nothing', async () => {
    const h = await harness({ pools: POOLS });
    quota(h, 10);
    expect(
      denial(await h.mutate(statefulSet('CREATE', { name: 'a', replicas: 11, annotations: OPEN, dryRun: true }))),
    ).toMatch(/may reserve 10 more, not 11/);
    expect(h.held()).toEqual({});
  });

  it('reads no quota for a StatefulSet that needs no more, nor one that pins nothing, and none without a quota', async () => {
    const h = await harness({ pools: POOLS });
    const reads = quota(h, 3);
    expect(
      (await h.mutate(statefulSet('CREATE', { name: 'a', replicas: 3, annotations: OPEN }))).response.allowed,
    ).toBe(true);
    expect((await h.mutate(scale('a', 3, 1))).response.allowed).toBe(true);
    expect((await h.mutate(statefulSet('CREATE', { name: 'plain', replicas: 50 }))).response.allowed).toBe(true);
    expect(reads).toEqual(['shop']);
    h.ledger.podQuota = async () => undefined;
    expect(
      (await h.mutate(statefulSet('CREATE', { name: 'big', replicas: 50, annotations: OPEN }))).response.allowed,
    ).toBe(true);
  });
});

describe('netpin.io/scale-down-release on a StatefulSet', () => {
  it('is a duration or "never"; anything else is refused with the fix', async () => {
    const h = await harness({ pools: POOLS });
    for (const value of ['5s', '30m', '1h30m', '0s', 'never', '8784h'])
      expect(
        (
          await h.mutate(
            statefulSet('CREATE', {
              name: `s${value}`,
              replicas: 1,
              annotations: OPEN,
              ownAnnotations: { 'netpin.io/scale-down-release': value },
            }),
          )
        ).response,
        value,
      ).toMatchObject({ allowed: true, warnings: [expect.stringMatching(/^netpin: reserved/)] });
    for (const value of ['1d', '-1s', '1.5h', 'soon', '', '8785h'])
      expect(
        denial(
          await h.mutate(
            statefulSet('CREATE', {
              replicas: 1,
              annotations: OPEN,
              ownAnnotations: { 'netpin.io/scale-down-release': value },
            }),
          ),
        ),
        value,
      ).toMatch(
        /^netpin.io\/scale-down-release \(CNI Calico\): (must be a duration such as 30m, 1h or 90s, or "never"|may be at most 8784h .*)\. Fix: write how long/,
      );
    // Other netpin.io/ keys on the StatefulSet's own metadata still get the warning.
    const warned = await h.mutate(
      statefulSet('CREATE', {
        replicas: 1,
        ownAnnotations: { 'netpin.io/scale-down-release': 'never', 'netpin.io/pool': 'open' },
      }),
    );
    expect(warned.response.warnings).toEqual([expect.stringMatching(/on the StatefulSet's own metadata are ignored/)]);
  });

  it('renews the reservations of ordinals scaled back up, so that a release decided while they were outside fails', async () => {
    const h = await harness({ pools: POOLS });
    expect(
      (await h.mutate(statefulSet('CREATE', { name: 'web', replicas: 3, annotations: OPEN }))).response.allowed,
    ).toBe(true);
    expect((await h.mutate(scale('web', 3, 1))).response.allowed).toBe(true);
    const before = [...h.ledger.index.allClaims()].filter((c) => c.owner.kind === 'StatefulSet');
    expect((await h.mutate(scale('web', 1, 3))).response.allowed).toBe(true);
    const after = [...h.ledger.index.allClaims()].filter((c) => c.owner.kind === 'StatefulSet');
    // Same addresses; ordinal 0 as it was, ordinals 1 and 2 renewed (the leader's release of the old state fails).
    expect(after.map((c) => c.ip.toString())).toEqual(before.map((c) => c.ip.toString()));
    expect(after.map((c, i) => c === before[i])).toEqual([true, false, false]);
    expect(await h.ledger.release(before[1]!)).toBe(false);
  });
});
