// A namespace's default pool (netpin.io/pool on the Namespace) on a real API server: netpin learns it
// through its namespace watch, gives it to pods that name no address source, and a change of it
// reaches new pods only. Nothing schedules the pods, so they stay Pending.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { calicoIps, waitFor, type Clients } from '../../harness/cluster.js';
import { startFixture, type Fixture } from '../../harness/fixture.js';

const NS = 'shop';

let fixture: Fixture | undefined;
let c: Clients;

const bare = (name: string): V1Pod => ({
  metadata: { name },
  spec: { containers: [{ name: 'app', image: 'registry.example/app:1' }], terminationGracePeriodSeconds: 0 },
});

/** `kubectl annotate namespace shop --overwrite netpin.io/pool=<pool>`. */
async function setDefault(pool: string): Promise<void> {
  await c.core.patchNamespace(
    { name: NS, body: { metadata: { annotations: { 'netpin.io/pool': pool } } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}

/** Once netpin's namespace watch has the default: a dry run of a bare pod is given an address of `prefix`. */
async function defaultSeen(prefix: string): Promise<void> {
  await waitFor(`a bare pod to be given an address of ${prefix}`, async () => {
    const pod = await c.core.createNamespacedPod({ namespace: NS, body: bare('probe'), dryRun: 'All' });
    return pod.metadata?.annotations?.['netpin.io/allocated']?.startsWith(prefix);
  });
}

beforeAll(async () => {
  fixture = await startFixture({
    namespaces: { [NS]: { 'netpin.io/enabled': 'true' } },
    pools: { first: { cidr: '10.110.0.0/24' }, second: { cidr: '10.111.0.0/24' } },
  });
  c = fixture.c;
}, 180_000);

afterAll(async () => {
  await fixture?.stop();
});

describe("a namespace's default pool", () => {
  it('gives a bare pod an address from it; a new default reaches new pods, and the first keeps its address', async () => {
    await setDefault('first');
    await defaultSeen('10.110.0.');
    const one = await c.core.createNamespacedPod({ namespace: NS, body: bare('one') });
    expect(one.metadata?.annotations).toMatchObject({ 'netpin.io/pool': 'first', 'netpin.io/allocated': '10.110.0.1' });
    expect(calicoIps(one)).toEqual(['10.110.0.1']);

    await setDefault('second');
    await defaultSeen('10.111.0.');
    const two = await c.core.createNamespacedPod({ namespace: NS, body: bare('two') });
    expect(two.metadata?.annotations).toMatchObject({
      'netpin.io/pool': 'second',
      'netpin.io/allocated': '10.111.0.1',
    });

    // The running pod keeps its pool and address, and may still be edited (kubectl label).
    const labelled = await c.core.patchNamespacedPod(
      { name: 'one', namespace: NS, body: { metadata: { labels: { tier: 'front' } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    expect(labelled.metadata?.annotations).toMatchObject({
      'netpin.io/pool': 'first',
      'netpin.io/allocated': '10.110.0.1',
    });
  });
});
