// The smaller points of issue 20, each as a tenant of one opted-in namespace would try it.
import { randomUUID } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { applyAntreaEgressCrds } from '../../../harness/cni-crds.js';
import { apiMessage, createPool, listClaims, waitFor } from '../../../harness/cluster.js';
import type { HostileEnv } from './env.js';

const SPEC = { containers: [{ name: 'app', image: 'registry.example/app:1' }], terminationGracePeriodSeconds: 0 };

export function smallerPoints(env: HostileEnv): void {
  /** The API server's refusal of a pod CREATE, naming netpin's words; '' when the pod was created. */
  const refusal = (namespace: string, metadata: V1Pod['metadata']): Promise<string> =>
    env.c.core.createNamespacedPod({ namespace, body: { metadata, spec: SPEC } }).then(
      () => '',
      (e: unknown) => apiMessage(e),
    );

  // A pod named <sts>-<k> whose controller is StatefulSet <sts> takes ordinal k's reserved address.
  // Anyone who may create a pod may write any ownerReference: it must name the live StatefulSet's uid.
  describe("a StatefulSet pod's owner is the live StatefulSet", () => {
    const NS = 'sm-sts';

    beforeAll(async () => {
      await env.use();
      await env.namespace(NS);
      await createPool(env.c, 'sm-sts', { ranges: ['10.205.0.1-10.205.0.8'] });
    });

    it('refuses a bare pod whose ownerReference forges the uid, or names a StatefulSet that does not exist', async () => {
      // OrderedReady: with no kubelet, db-0 never becomes Ready, and the controller never makes db-1.
      await env.c.apps.createNamespacedStatefulSet({
        namespace: NS,
        body: {
          metadata: { name: 'db' },
          spec: {
            replicas: 2,
            serviceName: 'db',
            selector: { matchLabels: { app: 'db' } },
            template: {
              metadata: { labels: { app: 'db' }, annotations: { 'netpin.io/pool': 'sm-sts' } },
              spec: SPEC,
            },
          },
        },
      });
      const reserved = await waitFor('the reservations of db', async () => {
        const claims = (await listClaims(env.c, 'sm-sts')).filter((c) => c.owner.name === 'db');
        return claims.length === 2 ? Object.fromEntries(claims.map((c) => [c.owner.ordinal, c.ip])) : undefined;
      });
      const db0 = await waitFor('pod db-0', () => env.c.core.readNamespacedPod({ namespace: NS, name: 'db-0' }));
      expect(db0.metadata?.annotations?.['netpin.io/allocated']).toBe(reserved[0]);

      const forged = randomUUID();
      const owner = (name: string, uid: string) => [
        { apiVersion: 'apps/v1', kind: 'StatefulSet', name, uid, controller: true, blockOwnerDeletion: false },
      ];
      const annotations = { 'netpin.io/pool': 'sm-sts' };
      expect(await refusal(NS, { name: 'db-1', ownerReferences: owner('db', forged), annotations })).toContain(
        `metadata.ownerReferences (CNI Calico): names StatefulSet "db" with uid "${forged}" as the controller of pod "db-1", ` +
          `and no live StatefulSet of namespace ${NS} has that name and uid: a StatefulSet's pod takes its ordinal's reserved address, so only the StatefulSet's own pods may name it. ` +
          'Fix: let StatefulSet "db" create its pods, or remove the ownerReference: a pod of its own gets an address of its own',
      );
      expect(await refusal(NS, { name: 'gone-0', ownerReferences: owner('gone', forged), annotations })).toContain(
        `names StatefulSet "gone" with uid "${forged}" as the controller of pod "gone-0", and no live StatefulSet of namespace ${NS} has that name and uid`,
      );
      // Ordinal 1 keeps its address for the StatefulSet's own pod; a bare pod of that name gets another.
      const bare = await env.c.core.createNamespacedPod({
        namespace: NS,
        body: { metadata: { name: 'db-1', annotations }, spec: SPEC },
      });
      const own = bare.metadata?.annotations?.['netpin.io/allocated'];
      expect(own).toBeDefined();
      expect(Object.values(reserved)).not.toContain(own);
      const claims = await listClaims(env.c, 'sm-sts');
      expect(claims.find((c) => c.ip === reserved[1])?.owner).toMatchObject({
        kind: 'StatefulSet',
        name: 'db',
        ordinal: 1,
      });
    });
  });

  // Antrea's Egress (and Cilium's policy) selects the pods of an egress address by netpin.io/egress:
  // a pod that carried it would send its traffic from another workload's egress address.
  describe("netpin.io/egress is netpin's label", () => {
    const NS = 'sm-egress';
    const LABEL = 'netpin.io/egress';

    beforeAll(async () => {
      const served = await env.c.ext.readCustomResourceDefinition({ name: 'egresses.crd.antrea.io' }).then(
        () => true,
        () => false,
      );
      if (!served) await applyAntreaEgressCrds(env.c);
      await env.use({ cni: 'antrea' });
      await env.namespace(NS);
      await createPool(env.c, 'sm-out', { cidr: '198.18.205.0/28', egress: {} });
    });

    it("refuses the label written by hand at CREATE, or added by UPDATE, so no pod joins another workload's egress address", async () => {
      const theirs = await env.c.core.createNamespacedPod({
        namespace: NS,
        body: { metadata: { name: 'payments', annotations: { 'netpin.io/egress-pool': 'sm-out' } }, spec: SPEC },
      });
      const value = theirs.metadata!.labels![LABEL]!;
      expect(value).toMatch(/^198\.18\.205\.\d+$/);
      // netpin keeps an Egress for the address, which selects its pods by the label.
      const egress = await waitFor('the Egress of payments', async () =>
        (
          (await env.c.custom.listClusterCustomObject({
            group: 'crd.antrea.io',
            version: 'v1beta1',
            plural: 'egresses',
          })) as { items: Array<{ spec: { egressIP: string; appliedTo: unknown } }> }
        ).items.find((e) => e.spec.egressIP === value),
      );
      expect(JSON.stringify(egress.spec.appliedTo)).toContain(`"${LABEL}":"${value}"`);

      for (const annotations of [{}, { 'netpin.io/egress-rate': '10M' }] as Array<Record<string, string>>) {
        expect(await refusal(NS, { name: 'sneaky', labels: { [LABEL]: value }, annotations })).toContain(
          `${LABEL} (CNI Antrea): is netpin's label, set here by hand to "${value}": ` +
            "the CNI's egress resources select the pods that share an egress address by it, so it would join another workload's egress address. " +
            `Fix: remove the label ${LABEL}: netpin sets it on the pods it gives an egress address (netpin.io/egress-pool or netpin.io/egress-ip)`,
        );
      }
      await env.c.core.createNamespacedPod({ namespace: NS, body: { metadata: { name: 'later' }, spec: SPEC } });
      const added = await env.c.core
        .patchNamespacedPod({
          namespace: NS,
          name: 'later',
          body: [{ op: 'add', path: '/metadata/labels', value: { [LABEL]: value } }],
        })
        .then(
          () => '',
          (e: unknown) => apiMessage(e),
        );
      expect(added).toContain(
        `${LABEL} (CNI Antrea): is a label netpin set on this pod and cannot change on a running pod`,
      );
    });
  });
}
