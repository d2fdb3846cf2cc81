// Which admissions tell which events, and about which object: kubectl describe finds an event by the
// object's kind, namespace, name and uid.
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { EventNotice, EventSink } from '../../src/cluster/event-sink.js';
import type { AdmissionReview, KubeObject } from '../../src/admission/review.js';
import type { CniName } from '../../src/cni/dialect.js';
import {
  denial,
  deployment,
  harness,
  ippoolReview,
  patched,
  podCreate,
  podUpdate,
  review,
  scaleUpdate,
  statefulSet,
  type Harness,
} from '../../harness/reviews.js';

/** What admission told, in order: `now` from record(), `created` from recordWhenCreated(). */
class MemorySink implements EventSink {
  readonly now: EventNotice[] = [];
  readonly created: EventNotice[] = [];
  record(e: EventNotice): void {
    this.now.push(e);
  }
  recordWhenCreated(e: EventNotice): void {
    this.created.push(e);
  }
}

async function setup(cni?: CniName): Promise<{ h: Harness; sink: MemorySink }> {
  const h = await harness({ cni });
  const sink = new MemorySink();
  h.deps.events = sink;
  return { h, sink };
}

/** The object as the API server stores it: with a uid. */
function stored<T extends AdmissionReview>(body: T, uid: string): T {
  for (const o of [body.request!.object, body.request!.oldObject]) if (o?.metadata) o.metadata.uid = uid;
  return body;
}

const UNKNOWN_POOL = { 'netpin.io/pool': 'nope' };
const RS_POD = { generateName: 'web-5d8f-', owner: { kind: 'ReplicaSet', name: 'web-5d8f' } };

describe('a refusal', () => {
  it("of a controller's pod is told on the controller, with the uid of the owner reference: the pod never exists", async () => {
    const { h, sink } = await setup();
    denial(await h.mutate(podCreate({ ...RS_POD, annotations: UNKNOWN_POOL })));
    denial(
      await h.mutate(
        podCreate({ name: 'db-2', owner: { kind: 'StatefulSet', name: 'db' }, annotations: UNKNOWN_POOL }),
      ),
    );
    expect(sink.now.every((e) => e.type === 'Warning' && e.reason === 'Refused' && e.action === 'Admit')).toBe(true);
    expect(sink.now.map((e) => e.regarding)).toEqual([
      { apiVersion: 'apps/v1', kind: 'ReplicaSet', namespace: 'shop', name: 'web-5d8f', uid: 'uid-web-5d8f' },
      { apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: 'shop', name: 'db', uid: 'uid-db' },
    ]);
    expect(sink.now[0]!.note).toMatch(/^Refused a new pod: netpin\.io\/pool \(CNI Calico\): .*nope/);
    expect(sink.now[1]!.note).toMatch(/^Refused pod db-2: netpin\.io\/pool/);
  });

  it('of a bare pod is told on the pod by name, without a uid; one with no name leaves nothing to name', async () => {
    const { h, sink } = await setup();
    const message = denial(await h.mutate(podCreate({ name: 'lone', annotations: UNKNOWN_POOL })));
    denial(await h.mutate(podCreate({ generateName: 'lone-', annotations: UNKNOWN_POOL })));
    expect(sink.now).toEqual([
      {
        regarding: { apiVersion: 'v1', kind: 'Pod', namespace: 'shop', name: 'lone', uid: undefined },
        type: 'Warning',
        reason: 'Refused',
        action: 'Admit',
        note: `Refused the creation: ${message}`,
      },
    ]);
  });

  it('of a change to a running pod, a workload or its scale is told on that object, with its uid', async () => {
    const { h, sink } = await setup();
    const create = podCreate({ name: 'fixed', annotations: { 'netpin.io/ip': '10.20.0.9' } });
    const pod = patched(create, (await h.mutate(create)).response);
    pod.metadata!.uid = 'pod-uid';
    const changed: KubeObject = structuredClone(pod);
    changed.metadata!.annotations!['netpin.io/ip'] = '10.20.0.10';
    denial(await h.mutate(podUpdate(pod, changed)));
    const fixed = (ip: string) => ({ 'netpin.io/ip': ip });
    denial(
      await h.mutate(
        stored(deployment('UPDATE', { name: 'api', replicas: 2, annotations: fixed('10.20.0.20') }), 'deploy-uid'),
      ),
    );
    expect(
      (await h.mutate(statefulSet('CREATE', { name: 'db', annotations: fixed('10.20.0.30') }))).response.allowed,
    ).toBe(true);
    denial(await h.mutate(stored(scaleUpdate('statefulsets', 'db', 3), 'sts-uid')));
    expect(sink.now.map((e) => e.regarding)).toEqual([
      { apiVersion: 'v1', kind: 'Pod', namespace: 'shop', name: 'fixed', uid: 'pod-uid' },
      { apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'shop', name: 'api', uid: 'deploy-uid' },
      { apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: 'shop', name: 'db', uid: 'sts-uid' },
    ]);
    expect(sink.now.map((e) => e.note.split(':')[0])).toEqual([
      'Refused an update',
      'Refused an update',
      'Refused scaling to 3 replicas',
    ]);
  });

  it('of a workload being created names it without a uid, and of an IPPool in no namespace', async () => {
    const { h, sink } = await setup();
    denial(await h.mutate(deployment('CREATE', { name: 'api', annotations: UNKNOWN_POOL })));
    await h.mutate(podCreate({ name: 'a', annotations: { 'netpin.io/pool': 'web' } }));
    denial(await h.validate(stored(ippoolReview('DELETE', 'web', undefined, { cidr: '10.20.0.0/24' }), 'pool-uid')));
    expect(sink.now.map((e) => e.regarding)).toEqual([
      { apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'shop', name: 'api', uid: undefined },
      { apiVersion: 'netpin.io/v1alpha1', kind: 'IPPool', namespace: '', name: 'web', uid: 'pool-uid' },
    ]);
    expect(sink.now[1]!.note).toMatch(/^Refused the deletion: IPPool web still has 1 held address/);
  });

  it('is told once for a replayed review, and never for a dry run', async () => {
    const { h, sink } = await setup();
    const body = podCreate({ name: 'lone', annotations: UNKNOWN_POOL });
    denial(await h.mutate(body));
    denial(await h.mutate(body));
    denial(await h.mutate(podCreate({ name: 'dry', annotations: UNKNOWN_POOL, dryRun: true })));
    denial(await h.validate(podCreate({ name: 'dry', annotations: UNKNOWN_POOL, dryRun: true })));
    expect(sink.now.map((e) => e.regarding.name)).toEqual(['lone']);
  });

  it('is not told for what netpin allows', async () => {
    const { h, sink } = await setup();
    await h.mutate(podCreate({ name: 'a', annotations: { 'netpin.io/egress-rate': '10M' } }));
    await h.validate(deployment('UPDATE', { replicas: 3 }));
    expect(sink.now).toEqual([]);
  });
});

describe('an allocation', () => {
  /** The pod the mutating webhook pinned, as the validating webhook sees it: named and with a uid. */
  async function admitted(h: Harness, create: AdmissionReview, name: string, uid: string): Promise<AdmissionReview> {
    const object = patched(create, (await h.mutate(create)).response);
    object.metadata = { ...object.metadata, name, uid };
    return review({ ...create.request!, uid: randomUUID(), name, object });
  }

  it("is told by the validating webhook, which sees the pod's name and uid, once the pod exists", async () => {
    const { h, sink } = await setup();
    const create = podCreate({ ...RS_POD, annotations: { 'netpin.io/pool': 'web' } });
    const validated = await admitted(h, create, 'web-5d8f-x1', 'pod-uid');
    expect(sink.created).toEqual([]);
    expect((await h.validate(validated)).response.allowed).toBe(true);
    expect(sink.created).toEqual([
      {
        regarding: { apiVersion: 'v1', kind: 'Pod', namespace: 'shop', name: 'web-5d8f-x1', uid: 'pod-uid' },
        type: 'Normal',
        reason: 'Allocated',
        action: 'Allocate',
        note: 'Allocated 10.20.0.2 from IPPool web',
      },
    ]);
    expect(sink.now).toEqual([]);
  });

  it('names the egress address, and the StatefulSet ordinal whose reservation a pod uses', async () => {
    // Cilium gives pods their egress address through netpin; Calico has no per-pod egress.
    const cilium = await setup('cilium');
    const egress = podCreate({ name: 'out-1', annotations: { 'netpin.io/egress-pool': 'out' } });
    expect((await cilium.h.validate(await admitted(cilium.h, egress, 'out-1', 'u1'))).response.allowed).toBe(true);
    expect(cilium.sink.created.map((e) => e.note)).toEqual(['Allocated egress address 203.0.113.1 from IPPool out']);

    const { h, sink } = await setup();
    await h.mutate(statefulSet('CREATE', { name: 'db', replicas: 1, annotations: { 'netpin.io/pool': 'web' } }));
    const ordinal = podCreate({
      name: 'db-0',
      owner: { kind: 'StatefulSet', name: 'db' },
      annotations: { 'netpin.io/pool': 'web' },
    });
    await h.validate(await admitted(h, ordinal, 'db-0', 'u2'));
    expect(sink.created.filter((e) => e.reason === 'Allocated').map((e) => e.note)).toEqual([
      'Allocated 10.20.0.2 from IPPool web (the reservation of StatefulSet db, ordinal 0)',
    ]);
  });

  it('names each address of a dual-stack pod and its pool', async () => {
    const { h, sink } = await setup();
    const create = podCreate({ name: 'dual', annotations: { 'netpin.io/pool': 'web,web-v6' } });
    expect((await h.validate(await admitted(h, create, 'dual', 'u1'))).response.allowed).toBe(true);
    expect(sink.created.map((e) => e.note)).toEqual([
      'Allocated 10.20.0.2 from IPPool web, fd00:20::1 from IPPool web-v6',
    ]);
  });

  it('is not told for a pod netpin gives no address, nor in a dry run', async () => {
    const { h, sink } = await setup();
    await h.validate(
      await admitted(h, podCreate({ name: 'rate', annotations: { 'netpin.io/egress-rate': '10M' } }), 'rate', 'u1'),
    );
    const dry = await admitted(h, podCreate({ name: 'dry', annotations: { 'netpin.io/pool': 'web' } }), 'dry', 'u2');
    dry.request!.dryRun = true;
    expect((await h.validate(dry)).response.allowed).toBe(true);
    expect(sink.created).toEqual([]);
  });
});

describe('a StatefulSet reservation', () => {
  it('is told on the StatefulSet: once it exists when it is being created, at once with its uid when it scales', async () => {
    const { h, sink } = await setup();
    const annotations = { 'netpin.io/pool': 'web' };
    await h.mutate(statefulSet('CREATE', { name: 'db', replicas: 2, annotations, dryRun: true }));
    await h.mutate(statefulSet('CREATE', { name: 'db', replicas: 2, annotations }));
    expect(sink.created).toEqual([
      {
        regarding: { apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: 'shop', name: 'db', uid: undefined },
        type: 'Normal',
        reason: 'Reserved',
        action: 'Reserve',
        note: 'Reserved db-0=10.20.0.2 db-1=10.20.0.3 from IPPool web',
      },
    ]);
    await h.mutate(stored(scaleUpdate('statefulsets', 'db', 3), 'sts-uid'));
    // Scaled down and up again: the reservations are kept, nothing new to tell.
    await h.mutate(stored(scaleUpdate('statefulsets', 'db', 1), 'sts-uid'));
    await h.mutate(stored(scaleUpdate('statefulsets', 'db', 3), 'sts-uid'));
    expect(sink.now).toEqual([
      {
        regarding: { apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: 'shop', name: 'db', uid: 'sts-uid' },
        type: 'Normal',
        reason: 'Reserved',
        action: 'Reserve',
        note: 'Reserved db-0=10.20.0.2 db-1=10.20.0.3 db-2=10.20.0.4 from IPPool web',
      },
    ]);
  });

  it('names every pool the reservation drew on', async () => {
    const { h, sink } = await setup();
    await h.mutate(statefulSet('CREATE', { name: 'db', replicas: 1, annotations: { 'netpin.io/pool': 'web,web-v6' } }));
    expect(sink.created.map((e) => e.note)).toEqual(['Reserved db-0=10.20.0.2,fd00:20::1 from IPPool web, web-v6']);
  });
});
