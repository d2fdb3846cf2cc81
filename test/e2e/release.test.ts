// Releases on the real API server and controllers: a deleted pod's address comes back at once, a pod
// refused after netpin's mutating webhook gives its claim back within seconds, and renewals racing
// releases never leave a live pod without its claim. Nothing schedules the pods: they stay Pending,
// and a deleted one is gone at once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { V1Pod } from '@kubernetes/client-node';
import { DEFAULT_CONTROLLERS } from '../../harness/controlplane.js';
import {
  apiMessage,
  calicoIps,
  createNamespace,
  listClaims,
  podsWithPrefix,
  waitFor,
  type Clients,
} from '../../harness/cluster.js';
import { startFixture, type Fixture } from '../../harness/fixture.js';

const NS = 'shop';
// Far longer than any wait below: what comes back here, comes back because its pod was seen deleted.
const LONG_GRACE_SECONDS = 120;
// Shorter than a churned pod's life, so that the sweep finds claims past it while their pods come and go.
const SHORT_GRACE_SECONDS = 2;

let fixture: Fixture | undefined;
let c: Clients;

const template = (app: string, annotations: Record<string, string>) => ({
  metadata: { labels: { app }, annotations },
  spec: { containers: [{ name: 'app', image: 'registry.example/app:1' }], terminationGracePeriodSeconds: 0 },
});

/**
 * The promise after any round: every live pod's address has an IPClaim held by that pod (by its name,
 * or by its StatefulSet ordinal), and no address has two live pods.
 */
async function expectEveryPodItsOwnClaim(namespace: string): Promise<void> {
  const pods = (await c.core.listNamespacedPod({ namespace })).items.filter((p) => !p.metadata?.deletionTimestamp);
  const claims = new Map((await listClaims(c)).map((x) => [x.ip, x]));
  const seen = new Map<string, string>();
  for (const pod of pods) {
    const name = pod.metadata!.name!;
    for (const ip of calicoIps(pod)) {
      expect(seen.get(ip), `${ip} of ${name} is also the address of ${seen.get(ip)}`).toBeUndefined();
      seen.set(ip, name);
      const claim = claims.get(ip);
      expect(claim, `${ip} of live pod ${name} has no IPClaim`).toBeDefined();
      const o = claim!.owner;
      const holder = o.kind === 'StatefulSet' ? `${o.name}-${o.ordinal}` : o.name;
      // A claim made before the pod had a name is held by the request until the reconciler names the pod.
      if (holder !== '') expect(holder, `the IPClaim on ${ip} names another owner than ${name}`).toBe(name);
    }
  }
}

async function livePods(prefix: string, n: number, not: ReadonlySet<string> = new Set()): Promise<V1Pod[]> {
  return waitFor(
    `${n} addressed pods ${prefix}*`,
    async () => {
      const pods = (await podsWithPrefix(c, NS, prefix)).filter(
        (p) => calicoIps(p).length > 0 && !not.has(p.metadata!.uid!),
      );
      return pods.length === n ? pods : undefined;
    },
    60_000,
  );
}

/** Another netpin in place of the running one, with its own grace period, behind the same webhooks. */
async function restartNetpin(graceSeconds: number): Promise<void> {
  await fixture!.restartNetpin({ claimGraceSeconds: graceSeconds });
}

beforeAll(async () => {
  fixture = await startFixture({
    // The quota controller computes a ResourceQuota's status, which its admission needs.
    controlPlane: { controllers: [...DEFAULT_CONTROLLERS, 'resourcequota-controller'] },
    namespaces: { [NS]: { 'netpin.io/enabled': 'true' } },
    pools: {
      exact: { ranges: ['10.90.0.1-10.90.0.6'] },
      churn: { ranges: ['10.91.0.1-10.91.0.4'] },
      quota: { cidr: '10.92.0.0/28' },
    },
    netpin: { claimGraceSeconds: LONG_GRACE_SECONDS },
  });
  c = fixture.c;
});

afterAll(async () => {
  await fixture?.stop();
});

describe('a deleted pod', () => {
  it('gives its address back at once: a pool of exactly N re-creates all N pods of a Deployment, without the grace period', async () => {
    await c.apps.createNamespacedDeployment({
      namespace: NS,
      body: {
        metadata: { name: 'exact' },
        spec: {
          replicas: 6,
          // A rolling update would need addresses beyond the 6 (refused at apply): Recreate.
          strategy: { type: 'Recreate' },
          selector: { matchLabels: { app: 'exact' } },
          template: template('exact', { 'netpin.io/pool': 'exact' }),
        },
      },
    });
    const first = await livePods('exact-', 6);
    expect(new Set(first.flatMap(calicoIps)).size).toBe(6);

    const started = Date.now();
    await c.core.deleteCollectionNamespacedPod({ namespace: NS, labelSelector: 'app=exact', gracePeriodSeconds: 0 });
    const again = await livePods('exact-', 6, new Set(first.map((p) => p.metadata!.uid!)));
    const seconds = (Date.now() - started) / 1000;
    // Each replacement has a new name: only the deletions, seen and confirmed, could free the addresses.
    expect(seconds).toBeLessThan(LONG_GRACE_SECONDS / 2);
    expect(new Set(again.flatMap(calicoIps))).toEqual(new Set(first.flatMap(calicoIps)));
    await expectEveryPodItsOwnClaim(NS);
  });
});

describe('a pod deleted and created again under its name', () => {
  it('deleted and created again under its name, again and again, keeps one claim that names it: renewals race the sweep', async () => {
    await restartNetpin(SHORT_GRACE_SECONDS);
    const names = ['c-0', 'c-1', 'c-2', 'c-3'];
    const create = (name: string) =>
      c.core.createNamespacedPod({
        namespace: NS,
        body: { metadata: { name, annotations: { 'netpin.io/pool': 'churn' } }, spec: template('churn', {}).spec },
      });
    for (const name of names) await create(name);
    for (let round = 0; round < 12; round++) {
      // Each pod lives a while, past the grace period or not, then is deleted and created again with no
      // pause: the admission renews its claim while the leader's sweep, or its prompt pass after the
      // deletion, decides whether to release it.
      await Promise.all(
        names.map(async (name) => {
          await new Promise((r) => setTimeout(r, Math.random() * (SHORT_GRACE_SECONDS + 1) * 1000));
          await c.core.deleteNamespacedPod({ name, namespace: NS, gracePeriodSeconds: 0 });
          await waitFor(
            `${name} created again`,
            async () => {
              try {
                await create(name);
                return true;
              } catch (e) {
                // Still being deleted, or its address not yet free: a controller would retry too.
                if (/already exists|no free|is held/.test(apiMessage(e))) return false;
                throw e;
              }
            },
            30_000,
            50,
          );
        }),
      );
      // Let the prompt pass run and the watches settle, then check the promise.
      await new Promise((r) => setTimeout(r, 300));
      await expectEveryPodItsOwnClaim(NS);
    }
    const claims = (await listClaims(c, 'churn')).map((x) => x.owner.name).sort();
    expect(claims).toEqual(names);
  });
});

describe('a pod refused after netpin admitted it', () => {
  it("gives its claim back after the grace period, and within seconds with the default's length", async () => {
    // The default grace: the webhook's timeout and 5 s.
    await restartNetpin(15);

    // ResourceQuota runs after the mutating webhooks: netpin has claimed an address when it refuses.
    await createNamespace(c, 'quota', { 'netpin.io/enabled': 'true' });
    await c.core.createNamespacedResourceQuota({
      namespace: 'quota',
      body: { metadata: { name: 'no-pods' }, spec: { hard: { pods: '0' } } },
    });
    await waitFor('the quota in force', async () => {
      const q = await c.core.readNamespacedResourceQuota({ name: 'no-pods', namespace: 'quota' });
      return q.status?.hard?.pods === '0';
    });
    const err = await c.core
      .createNamespacedPod({
        namespace: 'quota',
        body: { metadata: { name: 'over', annotations: { 'netpin.io/pool': 'quota' } }, spec: template('q', {}).spec },
      })
      .catch((e: unknown) => e);
    expect(apiMessage(err)).toMatch(/exceeded quota/);
    const refused = Date.now();
    expect((await listClaims(c, 'quota')).length).toBe(1);
    await waitFor("the refused pod's claim released", async () => (await listClaims(c, 'quota')).length === 0, 40_000);
    // The grace period, and at most one sweep interval and the sweep's reads after it.
    expect((Date.now() - refused) / 1000).toBeLessThan(15 + 5 + 5);
  });
});
