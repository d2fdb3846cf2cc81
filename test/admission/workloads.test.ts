import { describe, expect, it } from 'vitest';
import { denial, deployment, harness, statefulSet } from '../support/reviews.js';

const RECREATE = { type: 'Recreate' };

describe('Deployment and StatefulSet admission', () => {
  it('allows a Deployment with a pool, claiming nothing: its pods claim when they come', async () => {
    const h = await harness();
    for (const endpoint of ['mutate', 'validate'] as const) {
      const answer = await h[endpoint](deployment('CREATE', { replicas: 5, annotations: { 'netpin.io/pool': 'web' } }));
      expect(answer.response).toMatchObject({ allowed: true });
      expect(answer.response.patch).toBeUndefined();
    }
    expect(h.held()).toEqual({});
  });

  it('allows netpin.io/ip on a single replica that cannot surge', async () => {
    const h = await harness();
    expect(
      (
        await h.mutate(
          deployment('CREATE', { replicas: 1, strategy: RECREATE, annotations: { 'netpin.io/ip': '10.20.0.7' } }),
        )
      ).response.allowed,
    ).toBe(true);
    const noSurge = { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } };
    expect(
      (
        await h.mutate(
          deployment('CREATE', { replicas: 1, strategy: noSurge, annotations: { 'netpin.io/ip': '10.20.0.7' } }),
        )
      ).response.allowed,
    ).toBe(true);
    expect(
      (await h.mutate(statefulSet('CREATE', { replicas: 1, annotations: { 'netpin.io/ip': '10.20.0.7' } }))).response
        .allowed,
    ).toBe(true);
  });

  it('counts a missing spec.replicas as 1, as the API server defaults it', async () => {
    const h = await harness();
    const body = deployment('CREATE', { strategy: RECREATE, annotations: { 'netpin.io/ip': '10.20.0.7' } });
    delete body.request!.object!.spec.replicas;
    expect((await h.mutate(body)).response.allowed).toBe(true);
  });

  it('counts the pods a rolling update adds: netpin.io/ips needs replicas + maxSurge entries', async () => {
    const h = await harness();
    const ips = { 'netpin.io/ips': '10.20.0.7,10.20.0.8,10.20.0.9' };
    // 25% of 2 rounds up to 1: 3 entries serve 2 replicas and the surge pod.
    expect((await h.mutate(deployment('UPDATE', { replicas: 2, annotations: ips }))).response).toEqual(
      expect.objectContaining({ allowed: true }),
    );
    const surge2 = { type: 'RollingUpdate', rollingUpdate: { maxSurge: 2 } };
    expect(denial(await h.mutate(deployment('UPDATE', { replicas: 2, strategy: surge2, annotations: ips })))).toContain(
      'adds 2 more pods',
    );
    expect(
      (await h.mutate(deployment('UPDATE', { replicas: 3, strategy: RECREATE, annotations: ips }))).response.allowed,
    ).toBe(true);
  });

  it("warns that netpin annotations on the workload's own metadata are ignored", async () => {
    const h = await harness();
    const answer = await h.mutate(deployment('CREATE', { ownAnnotations: { 'netpin.io/pool': 'web' } }));
    expect(answer.response).toMatchObject({
      allowed: true,
      warnings: [
        "netpin: the netpin.io/ annotations on the Deployment's own metadata are ignored; put them under spec.template.metadata.annotations",
      ],
    });
    // The warning stays with a denial of the template.
    const both = await h.mutate(
      deployment('CREATE', { ownAnnotations: { 'netpin.io/pool': 'web' }, annotations: { 'netpin.io/pool': 'nope' } }),
    );
    expect(denial(both)).toContain('IPPool nope does not exist');
    expect(both.response.warnings).toHaveLength(1);
  });

  it("checks the template against the CNI with the workload's replicas", async () => {
    const h = await harness({ cni: 'kube-ovn' });
    const eip = { 'netpin.io/egress-ip': '203.0.113.10', 'netpin.io/egress-mode': 'eip' };
    expect(denial(await h.mutate(deployment('CREATE', { replicas: 3, annotations: eip })))).toContain(
      "netpin.io/egress-mode (CNI Kube-OVN): Kube-OVN's ovn.kubernetes.io/eip is a 1:1 NAT for one pod, and this Deployment has 3 replicas",
    );
    expect((await h.mutate(deployment('CREATE', { replicas: 1, annotations: eip }))).response.allowed).toBe(true);
  });

  it('reports the workload checks and the intent checks together', async () => {
    const h = await harness();
    const message = denial(
      await h.mutate(statefulSet('CREATE', { replicas: 3, annotations: { 'netpin.io/ips': '10.20.0.7,10.99.0.1' } })),
    );
    expect(message).toContain('netpin.io/ips (CNI Calico): 10.99.0.1 lies outside every IPPool');
    expect(message).toContain('netpin.io/ips (CNI Calico): has 2 entries, but ordinals 0..2 need 3');
  });

  it('allows workload UPDATEs without netpin annotations and DELETEs of Deployments', async () => {
    const h = await harness();
    expect((await h.mutate(deployment('UPDATE', { replicas: 4 }))).response).toMatchObject({ allowed: true });
    expect((await h.mutate(deployment('DELETE'))).response).toMatchObject({ allowed: true });
    expect((await h.validate(statefulSet('DELETE'))).response).toMatchObject({ allowed: true });
  });
});
