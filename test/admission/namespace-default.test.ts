import { describe, expect, it } from 'vitest';
import {
  admittedAnnotations,
  denial,
  deployment,
  harness,
  patched,
  podCreate,
  podUpdate,
  POOLS,
  statefulSet,
  type Harness,
} from '../../harness/reviews.js';
import type { CniName } from '../../src/cni/dialect.js';

// POOLS, with defaults: shop's pool is web (which selects it), payments' is web (which does not),
// small's is tiny (two addresses), broken's does not parse, plain has none.
const DEFAULTS = `${POOLS}
---
apiVersion: v1
kind: Namespace
metadata:
  name: shop-out
  labels: { team: web }
  annotations: { netpin.io/pool: web, netpin.io/egress-pool: out }
---
apiVersion: v1
kind: Namespace
metadata: { name: payments-web, labels: { team: db }, annotations: { netpin.io/pool: web } }
---
apiVersion: v1
kind: Namespace
metadata: { name: small, annotations: { netpin.io/pool: tiny } }
---
apiVersion: v1
kind: Namespace
metadata: { name: broken, annotations: { netpin.io/pool: "Web!" } }
---
apiVersion: v1
kind: Namespace
metadata: { name: plain }
`;

const make = (cni: CniName = 'calico') => harness({ pools: DEFAULTS, cni });

/** Creates a pod through the mutating webhook, checks the validating one agrees, and returns its annotations. */
async function created(h: Harness, namespace: string, annotations?: Record<string, string>, name = 'p') {
  const body = podCreate({ name, namespace, ...(annotations && { annotations }) });
  const after = admittedAnnotations(body, await h.mutate(body));
  const validated = await h.validate(podCreate({ name, namespace, annotations: after }));
  expect(validated.response.status?.message).toBeUndefined();
  expect(validated.response.allowed).toBe(true);
  return after;
}

describe("a namespace's default pool", () => {
  it('gives a pod with no netpin.io/ annotation an address from it, and writes the key on the pod', async () => {
    const h = await make();
    const a = await created(h, 'small');
    expect(a).toEqual({
      'netpin.io/pool': 'tiny',
      'netpin.io/allocated': '10.40.0.1',
      'cni.projectcalico.org/ipAddrs': '["10.40.0.1"]',
    });
    expect(h.held()).toEqual({ '10.40.0.1': 'Pod/small/p' });
  });

  it('applies to a pod that asks only for a rate: it names no address source', async () => {
    const h = await make();
    const a = await created(h, 'small', { 'netpin.io/egress-rate': '10M' });
    expect(a['netpin.io/allocated']).toBe('10.40.0.1');
    expect(a['kubernetes.io/egress-bandwidth']).toBe('10M');
  });

  it("yields to the pod's own netpin.io/pool, netpin.io/ip or netpin.io/ips", async () => {
    const h = await make();
    expect((await created(h, 'small', { 'netpin.io/pool': 'tiny' }, 'a'))['netpin.io/allocated']).toBe('10.40.0.1');
    const own = await created(h, 'broken', { 'netpin.io/ip': '10.40.0.2' }, 'b');
    expect(own['netpin.io/allocated']).toBe('10.40.0.2');
    expect(own['netpin.io/pool']).toBeUndefined();
  });

  it('leaves pods of a namespace without a default, and hostNetwork pods, as they are', async () => {
    const h = await make();
    const plain = await h.mutate(podCreate({ name: 'p', namespace: 'plain' }));
    expect(plain.response).toMatchObject({ allowed: true });
    expect(plain.response.patch).toBeUndefined();
    const body = podCreate({ name: 'host', namespace: 'small' });
    body.request!.object!.spec.hostNetwork = true;
    const host = await h.mutate(body);
    expect(host.response.patch).toBeUndefined();
    expect(h.held()).toEqual({});
  });

  it('is refused when its pool does not select the namespace, naming the namespace as the source', async () => {
    const h = await make();
    const message = denial(await h.mutate(podCreate({ name: 'p', namespace: 'payments-web' })));
    expect(message).toContain("netpin.io/pool (namespace payments-web's default) (CNI Calico): ");
    expect(message).toContain('IPPool web does not select namespace payments-web');
    expect(message).toContain('the value is the annotation netpin.io/pool of Namespace payments-web');
    expect(h.held()).toEqual({});
    // The pod's own pool is checked as its own: no word of the namespace.
    const own = denial(
      await h.mutate(podCreate({ name: 'q', namespace: 'payments-web', annotations: { 'netpin.io/pool': 'web' } })),
    );
    expect(own).not.toContain('default');
  });

  it('that does not parse refuses the pods that would use it, naming the namespace and the annotation', async () => {
    const h = await make();
    const message = denial(await h.mutate(podCreate({ name: 'p', namespace: 'broken' })));
    expect(message).toMatch(
      /^netpin\.io\/pool \(namespace broken's default\) \(CNI Calico\): "Web!" is not an IPPool name/,
    );
    expect(message).toContain('annotation netpin.io/pool of Namespace broken');
  });

  it('and its default egress pool give an egress address as netpin.io/egress-pool would', async () => {
    const h = await make('kube-ovn');
    const body = podCreate({ name: 'p', namespace: 'shop-out' });
    const answer = await h.mutate(body);
    expect(answer.response.status?.message).toBeUndefined();
    const pod = patched(body, answer.response);
    expect(pod.metadata?.annotations).toMatchObject({
      'netpin.io/pool': 'web',
      'netpin.io/egress-pool': 'out',
      'netpin.io/allocated': '10.20.0.2',
      'netpin.io/egress-allocated': '203.0.113.1',
    });
    expect(pod.metadata?.annotations?.['ovn.kubernetes.io/snat']).toBe('203.0.113.1');
    // A fixed egress address of its own wins over the default egress pool.
    const ownBody = podCreate({
      name: 'q',
      namespace: 'shop-out',
      annotations: { 'netpin.io/egress-ip': '203.0.113.9' },
    });
    const own = admittedAnnotations(ownBody, await h.mutate(ownBody));
    expect(own['netpin.io/egress-pool']).toBeUndefined();
    expect(own['netpin.io/egress-allocated']).toBe('203.0.113.9');
  });

  it('is refused on Calico as an egress default, with the CNI and the namespace named', async () => {
    const h = await make();
    const message = denial(await h.mutate(podCreate({ name: 'p', namespace: 'shop-out' })));
    expect(message).toContain("netpin.io/egress-pool (namespace shop-out's default) (CNI Calico): ");
  });
});

describe("a namespace's default pool on templates", () => {
  it('checks a Deployment template that names no source with the default, naming the namespace', async () => {
    const h = await make();
    const wrong = denial(await h.mutate(deployment('CREATE', { namespace: 'payments-web', replicas: 1 })));
    expect(wrong).toContain("netpin.io/pool (namespace payments-web's default) (CNI Calico): ");
    const full = denial(await h.mutate(deployment('CREATE', { namespace: 'small', replicas: 3 })));
    expect(full).toContain("netpin.io/pool (namespace small's default)");
    expect(full).toContain('IPPool tiny');
    const fits = await h.mutate(
      deployment('CREATE', { namespace: 'small', replicas: 2, strategy: { type: 'Recreate' } }),
    );
    expect(fits.response.allowed).toBe(true);
  });

  it("leaves a hostNetwork template without the default: its pods use the node's addresses", async () => {
    const h = await make();
    const body = deployment('CREATE', { namespace: 'payments-web', replicas: 1 });
    body.request!.object!.spec.template.spec.hostNetwork = true;
    expect((await h.mutate(body)).response.allowed).toBe(true);
  });

  it("reserves a StatefulSet's ordinals from the default", async () => {
    const h = await make();
    const answer = await h.mutate(statefulSet('CREATE', { name: 'db', namespace: 'small', replicas: 2 }));
    expect(answer.response.allowed).toBe(true);
    expect(h.held()).toEqual({ '10.40.0.1': 'StatefulSet/small/db/0', '10.40.0.2': 'StatefulSet/small/db/1' });
  });

  it("follows a changed default when a StatefulSet's pod is created again: the template named no pool", async () => {
    const h = await make();
    await h.mutate(statefulSet('CREATE', { name: 'db', namespace: 'small', replicas: 1 }));
    h.cluster.setNamespace('small', { team: 'web' }, { pool: 'web' });
    const body = podCreate({ name: 'db-0', namespace: 'small', owner: { kind: 'StatefulSet', name: 'db' } });
    const a = admittedAnnotations(body, await h.mutate(body));
    expect(a).toMatchObject({ 'netpin.io/pool': 'web', 'netpin.io/allocated': '10.20.0.2' });
    expect(h.held()).toEqual({ '10.20.0.2': 'StatefulSet/small/db/0' });
  });
});

describe('a changed namespace default', () => {
  it('gives new pods the new pool, and a running pod keeps what it has through its UPDATEs', async () => {
    const h = await make();
    const before = podCreate({ name: 'p', namespace: 'small' });
    const running = patched(before, (await h.mutate(before)).response);
    expect(running.metadata?.annotations?.['netpin.io/allocated']).toBe('10.40.0.1');

    h.cluster.setNamespace('small', { team: 'web' }, { pool: 'web' });
    const next = await created(h, 'small', undefined, 'q');
    expect(next['netpin.io/allocated']).toBe('10.20.0.2');

    // kubectl label on the running pod: its pool is tiny, the namespace's default web.
    const labelled = {
      ...running,
      metadata: { ...running.metadata, labels: { ...running.metadata?.labels, tier: 'front' } },
    };
    for (const endpoint of ['mutate', 'validate'] as const) {
      const answer = await h[endpoint](podUpdate(running, labelled));
      expect(answer.response.status?.message).toBeUndefined();
      expect(answer.response.allowed).toBe(true);
    }
    expect(h.held()).toMatchObject({ '10.40.0.1': 'Pod/small/p', '10.20.0.2': 'Pod/small/q' });
  });

  it('leaves a pod from before its namespace had a default as it is through its UPDATEs', async () => {
    const h = await make();
    const before = podCreate({ name: 'old', namespace: 'plain' });
    expect((await h.mutate(before)).response.patch).toBeUndefined();
    const running = before.request!.object!;
    h.cluster.setNamespace('plain', {}, { pool: 'tiny' });
    const labelled = { ...running, metadata: { ...running.metadata, labels: { tier: 'front' } } };
    for (const endpoint of ['mutate', 'validate'] as const) {
      const answer = await h[endpoint](podUpdate(running, labelled));
      expect(answer.response).toMatchObject({ allowed: true });
      expect(answer.response.patch).toBeUndefined();
    }
    expect(h.held()).toEqual({});
  });
});
