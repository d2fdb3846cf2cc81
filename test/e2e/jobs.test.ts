// Jobs and CronJobs on the real API server and Job controller: a Job's pod gets a pool address, and
// once it has finished (marked Succeeded through the status subresource, as a kubelet would: there is
// no kubelet here) its claim is released while the pod object stays, so the address serves a new pod.
// A fixed address on a Job with parallelism 3 is refused at apply.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchV1Api, type V1PodTemplateSpec } from '@kubernetes/client-node';
import { DEFAULT_CONTROLLERS } from '../../harness/controlplane.js';
import { apiMessage, calicoIps, listClaims, podsWithPrefix, waitFor, type Clients } from '../../harness/cluster.js';
import { startFixture, type Fixture } from '../../harness/fixture.js';

const NS = 'shop';
const GRACE_SECONDS = 3;

let fixture: Fixture | undefined;
let c: Clients;
let batch: BatchV1Api;

const template = (annotations: Record<string, string>): V1PodTemplateSpec => ({
  metadata: { annotations },
  spec: {
    restartPolicy: 'Never',
    containers: [{ name: 'app', image: 'registry.example/backup:1' }],
    terminationGracePeriodSeconds: 0,
  },
});

beforeAll(async () => {
  fixture = await startFixture({
    controlPlane: { controllers: [...DEFAULT_CONTROLLERS, 'job-controller'] },
    namespaces: { [NS]: { 'netpin.io/enabled': 'true' } },
    // One address: a second pod gets it only once the first has given it back.
    pools: { one: { ranges: ['10.93.0.1-10.93.0.1'] } },
    netpin: { claimGraceSeconds: GRACE_SECONDS },
  });
  c = fixture.c;
  batch = c.kc.makeApiClient(BatchV1Api);
});

afterAll(async () => {
  await fixture?.stop();
});

describe("a Job's pod", () => {
  it('gets a pool address, and gives it back once it has finished, while the pod object stays', async () => {
    // A CronJob, suspended so that its schedule never fires here, and a Job made from it as
    // `kubectl create job --from=cronjob/backup` makes it: its jobTemplate and an ownerReference.
    const cron = await batch.createNamespacedCronJob({
      namespace: NS,
      body: {
        metadata: { name: 'backup' },
        spec: {
          schedule: '* * * * *',
          suspend: true,
          jobTemplate: { spec: { template: template({ 'netpin.io/pool': 'one' }) } },
        },
      },
    });
    await batch.createNamespacedJob({
      namespace: NS,
      body: {
        metadata: {
          name: 'backup-manual',
          ownerReferences: [
            { apiVersion: 'batch/v1', kind: 'CronJob', name: 'backup', uid: cron.metadata!.uid!, controller: true },
          ],
        },
        spec: cron.spec!.jobTemplate.spec,
      },
    });
    const pod = await waitFor("the Job's pod, with its address", async () =>
      (await podsWithPrefix(c, NS, 'backup-manual-')).find((p) => calicoIps(p).length > 0),
    );
    const name = pod.metadata!.name!;
    expect(calicoIps(pod)).toEqual(['10.93.0.1']);
    // The reconciler names the pod in the claim made before the pod had a name: from then on the name holds it.
    await waitFor('the claim to name the pod', async () => (await listClaims(c, 'one'))[0]?.owner.name === name);

    // The pool is exhausted while the pod runs.
    const other = { metadata: { name: 'next', annotations: { 'netpin.io/pool': 'one' } }, spec: template({}).spec! };
    const refused = await c.core.createNamespacedPod({ namespace: NS, body: other }).then(
      () => '',
      (e: unknown) => apiMessage(e),
    );
    expect(refused).toContain('IPPool one has no free IPv4 address');

    const running = await c.core.readNamespacedPod({ namespace: NS, name });
    running.status = { ...running.status, phase: 'Succeeded' };
    await c.core.replaceNamespacedPodStatus({ namespace: NS, name, body: running });
    await waitFor('the claim to be released', async () => (await listClaims(c, 'one')).length === 0, 30_000);
    const stays = await c.core.readNamespacedPod({ namespace: NS, name });
    expect(stays.status?.phase).toBe('Succeeded');
    expect(stays.metadata?.deletionTimestamp).toBeUndefined();

    const next = await c.core.createNamespacedPod({ namespace: NS, body: other });
    expect(calicoIps(next)).toEqual(['10.93.0.1']);
    await waitFor('the claim to name the new pod', async () => (await listClaims(c, 'one'))[0]?.owner.name === 'next');
  });
});

describe('a fixed address on a Job', () => {
  it('is refused at apply when the Job runs 3 pods at once, naming netpin.io/pool', async () => {
    const message = await batch
      .createNamespacedJob({
        namespace: NS,
        body: {
          metadata: { name: 'fanout' },
          spec: { parallelism: 3, template: template({ 'netpin.io/ip': '10.93.0.1' }) },
        },
      })
      .then(
        () => '',
        (e: unknown) => apiMessage(e),
      );
    expect(message).toContain('netpin.io/ip (CNI Calico): Job fanout runs up to 3 pods at once (spec.parallelism: 3)');
    expect(message).toContain('use netpin.io/pool: one');
    await expect(batch.readNamespacedJob({ namespace: NS, name: 'fanout' })).rejects.toThrow();
  });
});
