// Deployment templates checked against the ledger on a real API server (issue 19): what their pods
// would be refused for is refused at apply and at `kubectl scale`, instead of a loop of FailedCreate.
// The controllers create the pods; nothing schedules or runs them, so they stay Pending.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PatchStrategy, setHeaderOptions, type V1Deployment } from '@kubernetes/client-node';
import { calicoIps, listClaims, podsWithPrefix, refusal, waitFor, type Clients } from '../../harness/cluster.js';
import { startFixture, type Fixture } from '../../harness/fixture.js';

const NS = 'shop';

let fixture: Fixture | undefined;
let c: Clients;

const spec = { containers: [{ name: 'app', image: 'registry.example/app:1' }], terminationGracePeriodSeconds: 0 };

function deploymentBody(
  name: string,
  replicas: number,
  annotations: Record<string, string>,
  extra: Partial<NonNullable<V1Deployment['spec']>> = {},
): V1Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: NS },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name }, annotations }, spec },
      ...extra,
    },
  };
}

/** `kubectl apply --server-side`: creates the Deployment, or updates it to what is applied. */
function apply(body: V1Deployment): Promise<V1Deployment> {
  return c.apps.patchNamespacedDeployment(
    { name: body.metadata!.name!, namespace: NS, body, fieldManager: 'kubectl', force: true },
    setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
  );
}

async function absent(name: string): Promise<void> {
  await expect(c.apps.readNamespacedDeployment({ name, namespace: NS })).rejects.toThrow();
}

beforeAll(async () => {
  fixture = await startFixture({
    namespaces: { [NS]: { 'netpin.io/enabled': 'true' } },
    pools: { fixed: { cidr: '10.100.0.0/24' }, exact: { ranges: ['10.101.0.1-10.101.0.4'] } },
  });
  c = fixture.c;
});

afterAll(async () => {
  await fixture?.stop();
});

describe('a Deployment template', () => {
  it('is refused at apply when its fixed address is held, naming the holder, and claims nothing', async () => {
    await c.core.createNamespacedPod({
      namespace: NS,
      body: { metadata: { name: 'holder', annotations: { 'netpin.io/ip': '10.100.0.7' } }, spec },
    });
    const before = await listClaims(c);
    const body = deploymentBody('pinned', 1, { 'netpin.io/ip': '10.100.0.7' }, { strategy: { type: 'Recreate' } });
    expect(await refusal(apply(body))).toContain(
      'netpin.io/ip (CNI Calico): 10.100.0.7 is held by pod shop/holder (IPPool fixed). Fix: choose a free address such as 10.100.0.1, or let netpin choose with netpin.io/pool: fixed',
    );
    await absent('pinned');
    expect(await listClaims(c)).toEqual(before);
  });

  it('is refused at apply when its pool has fewer free addresses than replicas', async () => {
    const body = deploymentBody('big', 5, { 'netpin.io/pool': 'exact' }, { strategy: { type: 'Recreate' } });
    expect(await refusal(apply(body))).toContain(
      'netpin.io/pool (CNI Calico): IPPool exact has 4 free IPv4 addresses (0 of 4 held), and Deployment big has 5 replicas. Fix: lower replicas to 4, or add addresses to IPPool exact',
    );
    await absent('big');
  });

  it('at full size of a pool sized for it and its surge, can still be updated; `kubectl scale` past the room is refused', async () => {
    // 3 replicas and the 1 pod a rolling update adds (maxSurge 25%): the 4 addresses of exact.
    const body = deploymentBody('full', 3, { 'netpin.io/pool': 'exact' });
    await apply(body);
    const pods = await waitFor('3 full pods with their addresses', async () => {
      const p = await podsWithPrefix(c, NS, 'full-');
      return p.length === 3 && p.every((x) => calicoIps(x).length === 1) ? p : undefined;
    });
    expect(new Set(pods.map((p) => calicoIps(p)[0])).size).toBe(3);
    // Another pod takes the spare address: the pool is full, and no UPDATE of the same needs is refused for it.
    const spare = await c.core.createNamespacedPod({
      namespace: NS,
      body: { metadata: { name: 'spare', annotations: { 'netpin.io/pool': 'exact' } }, spec },
    });
    expect(calicoIps(spare)).toHaveLength(1);
    const labelled = await apply({ ...body, metadata: { ...body.metadata, labels: { team: 'shop' } } });
    expect(labelled.metadata?.labels).toEqual({ team: 'shop' });

    const message = await refusal(
      c.apps.replaceNamespacedDeploymentScale({
        name: 'full',
        namespace: NS,
        body: { metadata: { name: 'full', namespace: NS }, spec: { replicas: 4 } },
      }),
    );
    expect(message).toContain(
      'netpin.io/pool (CNI Calico): IPPool exact has 0 free IPv4 addresses (4 of 4 held) and 3 that Deployment full holds, and Deployment full needs 5: 4 replicas and 1 more pods a rolling update adds (maxSurge 25%). Fix: lower replicas to 2',
    );
    expect((await c.apps.readNamespacedDeployment({ name: 'full', namespace: NS })).spec?.replicas).toBe(3);
  });
});
