// Kubernetes Events on a real API server: what netpin refused, allocated, reserved and released,
// read back through events.k8s.io/v1, and found the way `kubectl describe` looks for them (by the
// object's kind, name and uid). The controllers create the pods; nothing runs them.
import { Watch, type V1Pod, type V1ReplicaSet } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../../src/cluster/event-series.js';
import { REPORTING_CONTROLLER } from '../../src/cluster/events.js';
import { apiMessage, podsWithPrefix, waitFor, type Clients } from '../../harness/cluster.js';
import { startFixture, type Fixture } from '../../harness/fixture.js';

const NS = 'told';
const EVENTS = { group: 'events.k8s.io', version: 'v1', namespace: NS, plural: 'events' } as const;
const spec = { containers: [{ name: 'app', image: 'registry.example/app:1' }], terminationGracePeriodSeconds: 0 };

/** The fields of an events.k8s.io/v1 Event the tests read. */
interface Event {
  metadata: { name: string; resourceVersion: string };
  eventTime: string;
  reportingController: string;
  reportingInstance: string;
  type: string;
  reason: string;
  action: string;
  note: string;
  regarding: { apiVersion?: string; kind: string; namespace?: string; name: string; uid?: string };
  series?: { count: number };
}

let fixture: Fixture | undefined;
let c: Clients;
/** The ReplicaSet whose pods netpin refuses, from the first test on. */
let rs: { name: string; uid: string };

async function netpinEvents(reason: string, kind: string, name: string): Promise<Event[]> {
  const list = (await c.custom.listNamespacedCustomObject(EVENTS)) as { items: Event[] };
  const ours = (e: Event) => e.reportingController === REPORTING_CONTROLLER && e.reason === reason;
  return list.items.filter((e) => ours(e) && e.regarding.kind === kind && e.regarding.name === name);
}

function eventOn(
  reason: string,
  kind: string,
  name: string,
  matching: (e: Event) => boolean = () => true,
): Promise<Event> {
  return waitFor(
    `a ${reason} event on ${kind} ${name}`,
    async () => (await netpinEvents(reason, kind, name)).find(matching),
    60_000,
    250,
  );
}

/** What `kubectl describe` lists for an object: core/v1 Events selected by its kind, name and uid. */
async function describeEvents(
  kind: string,
  name: string,
  uid: string,
): Promise<Array<{ reason?: string; reportingComponent?: string }>> {
  const fieldSelector = `involvedObject.kind=${kind},involvedObject.name=${name},involvedObject.uid=${uid}`;
  return (await c.core.listNamespacedEvent({ namespace: NS, fieldSelector })).items;
}

const netpinShown = (items: Array<{ reason?: string; reportingComponent?: string }>, reason: string) =>
  items.some((e) => e.reason === reason && e.reportingComponent === REPORTING_CONTROLLER);

beforeAll(async () => {
  fixture = await startFixture({
    namespaces: { [NS]: { 'netpin.io/enabled': 'true' } },
    pools: { single: { ranges: ['10.95.0.1-10.95.0.1'] }, roomy: { cidr: '10.96.0.0/24' } },
    netpin: { claimGraceSeconds: 2 },
  });
  c = fixture.c;
});

afterAll(async () => {
  await fixture?.stop();
});

describe('a refusal', () => {
  it("of a Deployment's pod is a Warning on its ReplicaSet, where kubectl describe shows it", async () => {
    // Two Deployments of one replica each on a pool of one address: both fit when applied, since no pod
    // exists yet ('over' is paused; templates are checked against the ledger at apply). 'full' takes the
    // address; unpaused, 'over' has its pod refused, and its ReplicaSet retries.
    const deployment = (name: string, paused: boolean) => {
      const labels = { app: name };
      const template = { metadata: { labels, annotations: { 'netpin.io/pool': 'single' } }, spec };
      return {
        metadata: { name },
        spec: { replicas: 1, paused, strategy: { type: 'Recreate' }, selector: { matchLabels: labels }, template },
      };
    };
    await c.apps.createNamespacedDeployment({ namespace: NS, body: deployment('over', true) });
    await c.apps.createNamespacedDeployment({ namespace: NS, body: deployment('full', false) });
    await waitFor('the address taken by full', async () =>
      (await podsWithPrefix(c, NS, 'full-')).some((p) => p.metadata?.annotations?.['netpin.io/allocated']),
    );
    await c.apps.patchNamespacedDeployment({
      name: 'over',
      namespace: NS,
      body: [{ op: 'replace', path: '/spec/paused', value: false }],
    });
    const replicaSets = async () => (await c.apps.listNamespacedReplicaSet({ namespace: NS })).items;
    const set: V1ReplicaSet = await waitFor('its ReplicaSet', async () =>
      (await replicaSets()).find((r) => r.metadata?.name?.startsWith('over-')),
    );
    rs = { name: set.metadata!.name!, uid: set.metadata!.uid! };
    const event = await eventOn('Refused', 'ReplicaSet', rs.name);
    expect(event).toMatchObject({
      type: 'Warning',
      action: 'Admit',
      regarding: { apiVersion: 'apps/v1', namespace: NS, uid: rs.uid },
    });
    expect(event.note).toMatch(
      /^Refused a new pod: netpin\.io\/pool \(CNI Calico\): IPPool single has no free IPv4 address/,
    );
    expect(event.eventTime).toMatch(/\.\d{6}Z$/);
    expect(event.reportingInstance).not.toBe('');
    expect(netpinShown(await describeEvents('ReplicaSet', rs.name, rs.uid), 'Refused')).toBe(true);
  });

  it('repeated in a storm is one Event that counts it, written a bounded number of times', async () => {
    const [event] = await netpinEvents('Refused', 'ReplicaSet', rs.name);
    const before = event!.series?.count ?? 1;
    const list = (await c.custom.listNamespacedCustomObject(EVENTS)) as { metadata: { resourceVersion: string } };
    let writes = 0;
    const watching = await new Watch(c.kc).watch(
      `/apis/events.k8s.io/v1/namespaces/${NS}/events`,
      { resourceVersion: list.metadata.resourceVersion },
      (type: string, e: Event) => {
        const mine = e.reportingController === REPORTING_CONTROLLER && e.regarding?.uid === rs.uid;
        if (mine && (type === 'ADDED' || type === 'MODIFIED')) writes++;
      },
      () => {},
    );
    const started = Date.now();
    const STORM = 40;
    const ownerReferences = [
      { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: rs.name, uid: rs.uid, controller: true },
    ];
    const metadata = { generateName: `${rs.name}-`, ownerReferences, annotations: { 'netpin.io/pool': 'single' } };
    const refused = await Promise.all(
      Array.from({ length: STORM }, () =>
        c.core.createNamespacedPod({ namespace: NS, body: { metadata, spec } }).then(
          () => 'admitted',
          (e: unknown) => apiMessage(e),
        ),
      ),
    );
    expect(refused.every((m) => m.includes('IPPool single has no free IPv4 address'))).toBe(true);
    const counted = await waitFor(
      'the series to count the storm',
      async () => {
        const events = await netpinEvents('Refused', 'ReplicaSet', rs.name);
        return events.length === 1 && (events[0]!.series?.count ?? 1) >= before + STORM ? events[0] : undefined;
      },
      60_000,
      250,
    );
    const elapsed = Date.now() - started;
    watching.abort();
    expect(counted.metadata.name).toBe(event!.metadata.name);
    // At most one write of the count per seriesWriteMs (the ReplicaSet's own retries count too).
    expect(writes).toBeGreaterThanOrEqual(1);
    expect(writes).toBeLessThanOrEqual(Math.ceil(elapsed / DEFAULT_LIMITS.seriesWriteMs) + 1);
    const seconds = (elapsed / 1000).toFixed(1);
    console.log(
      `netpin: ${counted.series!.count - before} refusals in a storm, ${writes} Event writes in ${seconds} s`,
    );
  });

  it('of a bare pod is told on the pod by name; a dry run tells nothing', async () => {
    const body = (name: string) => ({ metadata: { name, annotations: { 'netpin.io/pool': 'nope' } }, spec });
    await expect(c.core.createNamespacedPod({ namespace: NS, body: body('dry'), dryRun: 'All' })).rejects.toThrow();
    await expect(c.core.createNamespacedPod({ namespace: NS, body: body('wet') })).rejects.toThrow();
    const wet = await eventOn('Refused', 'Pod', 'wet');
    expect(wet.regarding.uid).toBeUndefined();
    expect(wet.note).toMatch(/^Refused the creation: netpin\.io\/pool \(CNI Calico\)/);
    // Written one at a time, in order: had the dry run been told, it would be there by now.
    expect(await netpinEvents('Refused', 'Pod', 'dry')).toEqual([]);
  });
});

describe('an allocation', () => {
  it('is a Normal event on the pod once it exists, with its uid, also for a pod named by generateName', async () => {
    const body = { metadata: { name: 'solo', annotations: { 'netpin.io/pool': 'roomy' } }, spec };
    const solo = await c.core.createNamespacedPod({ namespace: NS, body });
    const ip = solo.metadata!.annotations!['netpin.io/allocated']!;
    const event = await eventOn('Allocated', 'Pod', 'solo');
    expect(event).toMatchObject({ type: 'Normal', action: 'Allocate', regarding: { uid: solo.metadata!.uid } });
    expect(event.note).toBe(`Allocated ${ip} from IPPool roomy`);
    expect(netpinShown(await describeEvents('Pod', 'solo', solo.metadata!.uid!), 'Allocated')).toBe(true);

    const pinned = (p: V1Pod) => p.metadata?.annotations?.['netpin.io/allocated'] === '10.95.0.1';
    const [first] = (await podsWithPrefix(c, NS, 'full-')).filter(pinned);
    expect(first).toBeDefined();
    const named = await eventOn('Allocated', 'Pod', first!.metadata!.name!);
    expect(named).toMatchObject({
      note: 'Allocated 10.95.0.1 from IPPool single',
      regarding: { uid: first!.metadata!.uid },
    });
  });
});

describe('a StatefulSet', () => {
  it('has its reservations told on it, at creation and when it scales up', async () => {
    const labels = { app: 'db' };
    const template = { metadata: { labels, annotations: { 'netpin.io/pool': 'roomy' } }, spec };
    const body = {
      metadata: { name: 'db' },
      spec: { serviceName: 'db', replicas: 2, selector: { matchLabels: labels }, template },
    };
    const sts = await c.apps.createNamespacedStatefulSet({ namespace: NS, body });
    const uid = sts.metadata!.uid!;
    const created = await eventOn('Reserved', 'StatefulSet', 'db');
    expect(created).toMatchObject({ type: 'Normal', action: 'Reserve', regarding: { apiVersion: 'apps/v1', uid } });
    expect(created.note).toMatch(/^Reserved db-0=10\.96\.0\.\d+ db-1=10\.96\.0\.\d+ from IPPool roomy$/);
    await c.apps.patchNamespacedStatefulSet({
      name: 'db',
      namespace: NS,
      body: [{ op: 'replace', path: '/spec/replicas', value: 3 }],
    });
    const scaled = await eventOn('Reserved', 'StatefulSet', 'db', (e) => e.note.includes('db-2='));
    expect(scaled.regarding.uid).toBe(uid);
    expect(netpinShown(await describeEvents('StatefulSet', 'db', uid), 'Reserved')).toBe(true);
    const pod = await waitFor('pod db-0', async () => (await podsWithPrefix(c, NS, 'db-0'))[0]);
    const allocated = await eventOn('Allocated', 'Pod', 'db-0');
    expect(allocated.regarding.uid).toBe(pod.metadata!.uid);
    expect(allocated.note).toContain('(the reservation of StatefulSet db, ordinal 0)');
  });
});

describe('a release', () => {
  it('is told on the pod that held the address once it is gone, and on the StatefulSet for its ordinals', async () => {
    const solo = await c.core.readNamespacedPod({ name: 'solo', namespace: NS });
    const ip = solo.metadata!.annotations!['netpin.io/allocated']!;
    await c.core.deleteNamespacedPod({ name: 'solo', namespace: NS });
    const released = await eventOn('Released', 'Pod', 'solo');
    expect(released).toMatchObject({ type: 'Normal', action: 'Release', note: `Released ${ip} from IPPool roomy` });

    await c.apps.deleteNamespacedStatefulSet({ name: 'db', namespace: NS });
    // One event per sweep: its pods may go in more than one.
    const notes = await waitFor(
      'every ordinal of db released',
      async () => {
        const text = (await netpinEvents('Released', 'StatefulSet', 'db')).map((e) => e.note).join(' ');
        return [0, 1, 2].every((k) => text.includes(`(ordinal ${k})`)) ? text : undefined;
      },
      60_000,
      250,
    );
    expect(notes).toMatch(/^Released 10\.96\.0\.\d+ from IPPool roomy \(ordinal \d\)/);
  });
});
