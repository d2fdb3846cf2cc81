// The whole admission path through buildApp(...).inject(), over every CNI, with random sequences of
// pods, workloads, updates and deletes carrying random valid and invalid intents, and malformed bodies.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AdmissionReview, KubeObject } from '../../src/admission/review.js';
import { CNI_NAMES, type CniName } from '../../src/cni/dialect.js';
import { ALLOCATED_KEY, PINNED_LABEL } from '../../src/intent/keys.js';
import { ownerKey } from '../../src/ipam/claim.js';
import { parseAddress } from '../../src/net/address.js';
import {
  harness,
  patched,
  pod,
  podCreate,
  podDelete,
  podUpdate,
  post,
  review,
  scaleUpdate,
  workloadReview,
  type Answer,
  type Harness,
} from '../../harness/reviews.js';
import { annotations, VALUES } from './arbitraries.js';
import { runs } from './runs.js';
import type { WireJson } from '../../harness/json.js';

const NAMESPACES = ['shop', 'payments', 'other'];

type Step =
  | {
      op: 'pod';
      name?: string;
      namespace: string;
      annotations: Record<string, string>;
      ordinal?: number;
      dryRun: boolean;
    }
  | { op: 'update'; target: number; key: string; value?: string }
  | { op: 'delete'; target: number }
  | {
      op: 'workload';
      kind: 'Deployment' | 'StatefulSet';
      operation: 'CREATE' | 'UPDATE' | 'DELETE';
      replicas: number;
      annotations: Record<string, string>;
      dryRun: boolean;
    }
  | { op: 'scale'; kind: 'Deployment' | 'StatefulSet'; replicas: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('pod' as const),
      name: fc.option(fc.constantFrom('a', 'b', 'c'), { nil: undefined }),
      namespace: fc.constantFrom(...NAMESPACES),
      annotations,
      ordinal: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined, freq: 3 }),
      dryRun: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({
        op: fc.constant('update' as const),
        target: fc.nat(),
        key: fc.constantFrom(...Object.keys(VALUES)),
        value: fc.option(fc.string({ maxLength: 4 }), { nil: undefined }),
      })
      .chain((s) => (s.value === undefined ? fc.constant(s) : VALUES[s.key]!.map((value) => ({ ...s, value })))),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const), target: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('workload' as const),
      kind: fc.constantFrom('Deployment' as const, 'StatefulSet' as const),
      operation: fc.constantFrom('CREATE' as const, 'UPDATE' as const, 'DELETE' as const),
      replicas: fc.integer({ min: 0, max: 4 }),
      annotations,
      dryRun: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('scale' as const),
      kind: fc.constantFrom('Deployment' as const, 'StatefulSet' as const),
      replicas: fc.integer({ min: 0, max: 6 }),
    }),
  },
);

/** A pod the model takes for running: admitted by both webhooks, not deleted since. */
interface LivePod {
  owner: string;
  object: KubeObject;
}

const TITLES: Record<CniName, string> = {
  calico: 'Calico',
  'kube-ovn': 'Kube-OVN',
  antrea: 'Antrea',
  cilium: 'Cilium',
  'netpin-ipam': 'netpin-ipam',
};

/** A well-formed review: HTTP 200, never an in-band 500; a denial opens with a key, the CNI, and has a fix. */
function expectDecided(answer: Answer, cni: CniName, keys: string[]): void {
  expect(answer.status, answer.body).toBe(200);
  expect(answer.response.status?.code, answer.response.status?.message).not.toBe(500);
  if (answer.response.allowed) return;
  const message = answer.response.status!.message;
  const named = keys.find((k) => message.startsWith(`${k} (CNI ${TITLES[cni]}): `));
  expect(named, message).toBeDefined();
  expect(message).toContain('. Fix: ');
}

/** The keys a denial may open with: the object's, its template's, and what netpin and the CNI write. */
function keysOf(h: Harness, o: KubeObject | null | undefined, more: Iterable<string> = []): string[] {
  return [
    ...more,
    ...Object.keys(o?.metadata?.annotations ?? {}),
    ...Object.keys(o?.spec?.template?.metadata?.annotations ?? {}),
    ...h.deps.dialect.placementKeys,
    ALLOCATED_KEY,
    PINNED_LABEL,
    'netpin.io/egress',
    'kubernetes.io/ingress-bandwidth',
    'kubernetes.io/egress-bandwidth',
  ].sort((a, b) => b.length - a.length);
}

async function run(cni: CniName, steps: Step[]): Promise<void> {
  const h = await harness({ cni });
  const live: LivePod[] = [];
  // A scale review carries no template: its denial names a key of the workload as netpin last saw it.
  const templateKeys = new Set<string>();

  // What KubeClusterView does with the pod watch: every running pod's addresses are in use.
  const observe = () => {
    for (const p of live)
      h.ledger.index.observe(
        `${p.object.metadata!.namespace}/${p.object.metadata!.name ?? p.owner}`,
        addressesOf(p.object),
      );
  };

  for (const s of steps) {
    if (s.op === 'pod') {
      const owner = s.ordinal !== undefined ? { kind: 'StatefulSet', name: 'db' } : undefined;
      const name = owner ? `db-${s.ordinal}` : s.name;
      const body = podCreate({
        name,
        generateName: name ? undefined : 'api-',
        namespace: s.namespace,
        annotations: s.annotations,
        owner,
        dryRun: s.dryRun,
      });
      const m = await h.mutate(body);
      expectDecided(m, cni, keysOf(h, body.request!.object));
      if (!m.response.allowed) continue;
      const object = patched(body, m.response);
      const v = await h.validate({ ...body, request: { ...body.request!, object } });
      expectDecided(v, cni, keysOf(h, object));
      // What the mutating webhook allows, the validating webhook allows.
      expect(v.response.allowed, v.response.status?.message).toBe(true);
      if (s.dryRun) continue;
      const key = owner
        ? ownerKey({ kind: 'StatefulSet', namespace: s.namespace, name: 'db', ordinal: s.ordinal! })
        : ownerKey({ kind: 'Pod', namespace: s.namespace, name: name ?? '', uid: body.request!.uid });
      const stored = {
        ...object,
        metadata: { ...object.metadata, name: name ?? `api-${body.request!.uid.slice(0, 5)}` },
      };
      const at = live.findIndex(
        (p) => p.object.metadata!.namespace === s.namespace && p.object.metadata!.name === stored.metadata.name,
      );
      if (at >= 0) live.splice(at, 1);
      live.push({ owner: key, object: stored });
    } else if (s.op === 'update' && live.length) {
      const p = live[s.target % live.length]!;
      const annotations = { ...p.object.metadata!.annotations };
      if (s.value === undefined) delete annotations[s.key];
      else annotations[s.key] = s.value;
      const body = podUpdate(p.object, { ...p.object, metadata: { ...p.object.metadata, annotations } });
      const m = await h.mutate(body);
      expectDecided(m, cni, keysOf(h, body.request!.object));
      if (!m.response.allowed) continue;
      const object = patched(body, m.response);
      const v = await h.validate(podUpdate(p.object, object));
      expectDecided(v, cni, keysOf(h, object));
      expect(v.response.allowed, v.response.status?.message).toBe(true);
      p.object = object;
    } else if (s.op === 'delete' && live.length) {
      const [p] = live.splice(s.target % live.length, 1);
      h.ledger.index.observe(`${p!.object.metadata!.namespace}/${p!.object.metadata!.name}`, []);
      expectDecided(await h.mutate(podDelete(p!.object)), cni, []);
    } else if (s.op === 'workload') {
      const name = s.kind === 'StatefulSet' ? 'db' : 'api';
      const body = workloadReview(s.kind, s.operation, {
        name,
        replicas: s.replicas,
        annotations: s.annotations,
        dryRun: s.dryRun,
      });
      for (const k of Object.keys(s.annotations)) templateKeys.add(k);
      const m = await h.mutate(body);
      expectDecided(m, cni, keysOf(h, body.request!.object ?? body.request!.oldObject));
      if (!m.response.allowed || s.operation === 'DELETE') {
        if (m.response.allowed && !s.dryRun && s.kind === 'StatefulSet') {
          // The garbage collector deletes the StatefulSet's pods with it.
          for (let i = live.length - 1; i >= 0; i--)
            if (live[i]!.owner.startsWith('StatefulSet/shop/db/')) live.splice(i, 1);
        }
        continue;
      }
      const v = await h.validate(body);
      expectDecided(v, cni, keysOf(h, body.request!.object));
      expect(v.response.allowed, v.response.status?.message).toBe(true);
    } else if (s.op === 'scale') {
      const name = s.kind === 'StatefulSet' ? 'db' : 'api';
      const body = scaleUpdate(s.kind === 'StatefulSet' ? 'statefulsets' : 'deployments', name, s.replicas);
      expectDecided(await h.mutate(body), cni, keysOf(h, undefined, templateKeys));
      expectDecided(await h.validate(body), cni, keysOf(h, undefined, templateKeys));
    }
    observe();

    // No address goes to two live owners.
    const owners = new Map<string, string>();
    for (const p of live) {
      for (const a of addressesOf(p.object)) {
        const prior = owners.get(a.toString());
        expect(prior === undefined || prior === p.owner, `${a.toString()} held by ${prior} and ${p.owner}`).toBe(true);
        owners.set(a.toString(), p.owner);
      }
    }
  }
}

function addressesOf(o: KubeObject) {
  const text = o.metadata?.annotations?.[ALLOCATED_KEY];
  return (text ?? '')
    .split(',')
    .map((t) => parseAddress(t))
    .filter((a) => a !== undefined);
}

describe('the admission path, property-based', () => {
  it.each(CNI_NAMES)(
    '%s: well-formed reviews are decided, denials name a key, mutate-allowed is validate-allowed, no address has two live owners',
    async (cni) => {
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 12 }), (steps) => run(cni, steps)),
        { numRuns: runs(80) },
      );
    },
  );

  // Reviews bent out of shape field by field: the decoder refuses them with a 4xx and a message, or they are decided in band.
  it('a malformed review gets a 4xx with a message, a bent one an in-band answer, and the app keeps answering', async () => {
    const h = await harness();
    const paths: string[][] = [
      [],
      ['apiVersion'],
      ['kind'],
      ['request'],
      ['request', 'uid'],
      ['request', 'kind'],
      ['request', 'kind', 'kind'],
      ['request', 'operation'],
      ['request', 'name'],
      ['request', 'namespace'],
      ['request', 'dryRun'],
      ['request', 'subResource'],
      ['request', 'resource'],
      ['request', 'object'],
      ['request', 'oldObject'],
      ['request', 'object', 'metadata'],
      ['request', 'object', 'metadata', 'name'],
      ['request', 'object', 'metadata', 'namespace'],
      ['request', 'object', 'metadata', 'labels'],
      ['request', 'object', 'metadata', 'annotations'],
      ['request', 'object', 'metadata', 'ownerReferences'],
      ['request', 'object', 'spec'],
      ['request', 'object', 'spec', 'replicas'],
      ['request', 'object', 'spec', 'template'],
      ['request', 'object', 'spec', 'strategy'],
      ['request', 'object', 'spec', 'ordinals'],
    ];
    const base = fc.constantFrom<() => AdmissionReview>(
      () => podCreate({ name: 'a', annotations: { 'netpin.io/pool': 'web' } }),
      () =>
        podCreate({
          name: 'db-0',
          annotations: { 'netpin.io/pool': 'web' },
          owner: { kind: 'StatefulSet', name: 'db' },
        }),
      () =>
        podUpdate(
          pod({ name: 'a', annotations: { 'netpin.io/egress-rate': '10M' } }),
          pod({ name: 'a', annotations: { 'netpin.io/egress-rate': '20M' } }),
        ),
      () =>
        workloadReview('StatefulSet', 'CREATE', { name: 'db', replicas: 2, annotations: { 'netpin.io/pool': 'web' } }),
      () =>
        workloadReview('Deployment', 'UPDATE', { name: 'api', replicas: 2, annotations: { 'netpin.io/pool': 'web' } }),
      () => scaleUpdate('statefulsets', 'db', 3),
      () =>
        review({
          kind: { group: 'netpin.io', version: 'v1alpha1', kind: 'IPPool' },
          operation: 'CREATE',
          name: 'x',
          object: { metadata: { name: 'x' }, spec: { cidr: '10.99.0.0/24' } },
        }),
    );
    await fc.assert(
      fc.asyncProperty(
        base,
        fc.constantFrom(...paths),
        fc.jsonValue({ maxDepth: 2 }),
        fc.constantFrom('mutate' as const, 'validate' as const),
        async (make, path, value, endpoint) => {
          const body = JSON.parse(JSON.stringify(make())) as Record<string, WireJson>;
          let target: WireJson = body;
          for (const p of path.slice(0, -1)) target = target?.[p];
          const payload = path.length === 0 ? value : body;
          if (path.length > 0 && target && typeof target === 'object') target[path.at(-1)!] = value;
          const res = await h.app.inject({
            method: 'POST',
            url: `/${endpoint}`,
            payload: JSON.stringify(payload),
            headers: { 'content-type': 'application/json' },
          });
          if (res.statusCode === 200) {
            expect(res.json().response.status?.code, res.json().response.status?.message).not.toBe(500);
          } else {
            expect(res.statusCode, res.body).toBeGreaterThanOrEqual(400);
            expect(res.statusCode, res.body).toBeLessThan(500);
            expect(res.json().message).toBeTypeOf('string');
          }
        },
      ),
      { numRuns: runs(1000) },
    );
    // Still answering.
    expect(
      (await post(h.app, 'mutate', podCreate({ name: 'after', annotations: { 'netpin.io/pool': 'web' } }))).response
        .allowed,
    ).toBe(true);
  });
});
