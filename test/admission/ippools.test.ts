import { describe, expect, it } from 'vitest';
import { denial, harness, ippoolReview, podCreate, statefulSet } from '../../harness/reviews.js';
import { compilePool } from '../../src/ipam/pool.js';

/** A Calico IPPool as the API server lists it (crd.projectcalico.org/v1). */
const calicoPool = (name: string, cidr: string, spec: object = {}) => ({
  apiVersion: 'crd.projectcalico.org/v1',
  kind: 'IPPool',
  metadata: { name },
  spec: { cidr, assignmentMode: 'Manual', ...spec },
});

describe('IPPool validation', () => {
  it('allows a well-formed pool that overlaps none', async () => {
    const h = await harness();
    for (const spec of [
      { cidr: '10.50.0.0/24' },
      { ranges: ['10.50.0.10-10.50.0.20', 'fd00:50::/120'], exclude: ['10.50.0.15'] },
    ]) {
      expect((await h.validate(ippoolReview('CREATE', 'new', spec))).response).toMatchObject({ allowed: true });
    }
  });

  it.each<[string, object, string]>([
    [
      'a malformed CIDR',
      { cidr: '10.50.0.0/33' },
      'IPPool new: spec.cidr/ranges: "10.50.0.0/33" is not a CIDR. Fix: write spec.cidr as a network',
    ],
    [
      'host bits',
      { cidr: '10.50.0.7/24' },
      'IPPool new: spec.cidr/ranges: "10.50.0.7/24" has host bits set; the network is 10.50.0.0/24. Fix: ',
    ],
    ['a bad range', { ranges: ['10.50.0.20-10.50.0.10'] }, '"10.50.0.20-10.50.0.10" ends before it starts'],
    ['no addresses', {}, 'IPPool new: set spec.cidr or spec.ranges'],
    [
      'exclusions that leave nothing',
      { cidr: '10.50.0.0/30', exclude: ['10.50.0.0/30'] },
      'IPPool new has no usable address once spec.exclude is applied. Fix: widen spec.cidr or spec.ranges, or exclude less',
    ],
    [
      'an overlap with an existing pool',
      { ranges: ['10.20.0.250-10.20.1.5'] },
      'IPPool new overlaps IPPool web at 10.20.0.250-10.20.0.254. Fix: pools must not share addresses',
    ],
    ['an IPv6 overlap', { cidr: 'fd00:20::80/121' }, 'IPPool new overlaps IPPool web-v6 at fd00:20::81-fd00:20::ff'],
  ])('refuses %s', async (_, spec, part) => {
    const h = await harness();
    expect(denial(await h.validate(ippoolReview('CREATE', 'new', spec)))).toContain(part);
  });

  describe("a ClusterSet's shared pool, read from the broker", () => {
    const sharedPool = async () => {
      const h = await harness();
      const pool = compilePool({ metadata: { name: 'shared' }, spec: { cidr: '10.99.0.0/24' } });
      h.ledger.index.setPool({ ...pool, shared: true });
      return h;
    };

    it('refuses an IPPool of this cluster over its addresses, naming it as shared', async () => {
      const h = await sharedPool();
      expect(denial(await h.validate(ippoolReview('CREATE', 'mine', { cidr: '10.99.0.128/25' })))).toContain(
        "IPPool mine overlaps the ClusterSet's shared IPPool shared at 10.99.0.129-10.99.0.254",
      );
    });

    it('refuses an IPPool of this cluster under its name', async () => {
      const h = await sharedPool();
      expect(denial(await h.validate(ippoolReview('CREATE', 'shared', { cidr: '10.98.0.0/24' })))).toContain(
        'IPPool shared is a pool the ClusterSet shares, kept in its broker',
      );
    });
  });

  it('allows an UPDATE that moves a pool over its own old range, or over an excluded address of another', async () => {
    const h = await harness();
    expect(
      (await h.validate(ippoolReview('UPDATE', 'web', { cidr: '10.20.0.0/23' }, { cidr: '10.20.0.0/24' }))).response
        .allowed,
    ).toBe(true);
    // web excludes 10.20.0.1, so a pool of just that address shares nothing with it.
    expect((await h.validate(ippoolReview('CREATE', 'gateway', { ranges: ['10.20.0.1'] }))).response.allowed).toBe(
      true,
    );
  });

  it('refuses an UPDATE that drops a held address, naming it and its holder', async () => {
    const h = await harness();
    await h.mutate(podCreate({ name: 'a', annotations: { 'netpin.io/ip': '10.20.0.200' } }));
    await h.mutate(statefulSet('CREATE', { replicas: 2, annotations: { 'netpin.io/pool': 'web' } }));
    const narrower = ippoolReview('UPDATE', 'web', { cidr: '10.20.0.0/25' }, { cidr: '10.20.0.0/24' });
    expect(denial(await h.validate(narrower))).toBe(
      'IPPool web: the change would drop 1 held address, among them 10.20.0.200 (pod shop/a). ' +
        'Fix: keep those addresses in spec.cidr/spec.ranges and out of spec.exclude until their workloads are gone',
    );
    const excluding = ippoolReview(
      'UPDATE',
      'web',
      { cidr: '10.20.0.0/24', exclude: ['10.20.0.2-10.20.0.3'] },
      { cidr: '10.20.0.0/24' },
    );
    expect(denial(await h.validate(excluding))).toContain(
      'would drop 2 held addresses, among them 10.20.0.2 (StatefulSet shop/web (ordinal 0))',
    );
    // Keeping every held address is fine.
    expect(
      (
        await h.validate(
          ippoolReview('UPDATE', 'web', { cidr: '10.20.0.0/24', exclude: ['10.20.0.100'] }, { cidr: '10.20.0.0/24' }),
        )
      ).response.allowed,
    ).toBe(true);
  });

  it('refuses a DELETE while addresses are held, and allows it once none is', async () => {
    const h = await harness();
    for (const name of ['a', 'b', 'c', 'd'])
      await h.mutate(podCreate({ name, annotations: { 'netpin.io/pool': 'web' } }));
    const del = ippoolReview('DELETE', 'web', undefined, { cidr: '10.20.0.0/24' });
    expect(denial(await h.validate(del))).toBe(
      'IPPool web still has 4 held addresses: 10.20.0.2 (pod shop/a), 10.20.0.3 (pod shop/b), 10.20.0.4 (pod shop/c). ' +
        'Fix: delete the workloads that hold them first; netpin releases their addresses when they are gone',
    );
    expect(
      (await h.validate(ippoolReview('DELETE', 'db', undefined, { ranges: ['10.30.0.10-10.30.0.19'] }))).response
        .allowed,
    ).toBe(true);
  });

  it('refuses, on netpin-ipam, a pool that gives its addresses no gateway, naming the field and the fix', async () => {
    const h = await harness({ cni: 'netpin-ipam' });
    const ok = await h.validate(ippoolReview('CREATE', 'new', { cidr: '10.50.0.0/24', exclude: ['10.50.0.1'] }));
    expect(ok.response).toMatchObject({ allowed: true });
    expect(denial(await h.validate(ippoolReview('CREATE', 'new', { cidr: '10.50.0.0/24' })))).toBe(
      'IPPool new: spec.exclude (CNI netpin-ipam): the pool hands out 10.50.0.1, the gateway of its subnet 10.50.0.0/24, so a pod could be given its own gateway. Fix: add 10.50.0.1 to spec.exclude of IPPool new',
    );
  });

  it('leaves IPPools to /validate: /mutate allows them untouched', async () => {
    const h = await harness();
    expect((await h.mutate(ippoolReview('CREATE', 'new', { cidr: '10.20.0.0/24' }))).response).toMatchObject({
      allowed: true,
    });
  });

  it('allows a dual-stack pool when the exclusions leave one family usable', async () => {
    const h = await harness();
    const spec = { ranges: ['10.50.0.0/30', 'fd00:50::/120'], exclude: ['10.50.0.0/30'] };
    expect((await h.validate(ippoolReview('CREATE', 'new', spec))).response.allowed).toBe(true);
  });

  it('names the pool from the object when the review carries no request.name', async () => {
    const h = await harness();
    const create = ippoolReview('CREATE', 'new', { ranges: ['10.20.0.250-10.20.1.5'] });
    delete create.request!.name;
    expect(denial(await h.validate(create))).toContain('IPPool new overlaps IPPool web at 10.20.0.250-10.20.0.254');
    // A DELETE has the pool only as stored.
    await h.mutate(podCreate({ name: 'a', annotations: { 'netpin.io/pool': 'web' } }));
    const del = ippoolReview('DELETE', 'web', undefined, { cidr: '10.20.0.0/24' });
    delete del.request!.name;
    expect(denial(await h.validate(del))).toBe(
      'IPPool web still has 1 held address: 10.20.0.2 (pod shop/a). Fix: delete the workloads that hold them first; netpin releases their addresses when they are gone',
    );
  });

  it('refuses a pool named nowhere with the reason, not an error', async () => {
    const h = await harness();
    const body = ippoolReview('CREATE', 'new', { cidr: '10.50.0.0/24' });
    delete body.request!.name;
    delete body.request!.object!.metadata;
    expect(denial(await h.validate(body))).toBe(
      'IPPool has no metadata.name. Fix: write spec.cidr as a network (10.0.0.0/24), spec.ranges as addresses, networks or first-last ranges (10.0.0.10-10.0.0.20)',
    );
  });

  it('allows operations other than CREATE, UPDATE and DELETE without looking at the pool', async () => {
    const h = await harness();
    const body = ippoolReview('CONNECT', 'new', { cidr: '10.20.0.0/24' });
    expect((await h.validate(body)).response).toEqual({ uid: body.request!.uid, allowed: true });
  });

  it("passes on the CNI's warning about the pool's backing, prefixed", async () => {
    const h = await harness({ cni: 'calico' });
    const answer = await h.validate(ippoolReview('CREATE', 'new', { cidr: '10.50.0.0/24' }));
    expect(answer.response.allowed).toBe(true);
    expect(answer.response.warnings).toEqual([
      'netpin: netpin could not read Calico\'s IPPools (netpin runs without a cluster (--ledger memory)): check that a Calico IPPool covers 10.50.0.1-10.50.0.254, is not disabled (Calico refuses ipAddrs from a disabled pool), and never assigns from it by itself: set assignmentMode: Manual (before Calico 3.30: nodeSelector: "!all()") on it.',
    ]);
  });

  it('refuses a pool whose ranges the CNI would not honour, naming each, and allows one it backs', async () => {
    const h = await harness({ cni: 'calico' });
    h.deps.cluster.nativeObjects = async () => [
      calicoPool('pinned', '10.50.0.0/24'),
      calicoPool('auto', '10.60.0.0/24', { assignmentMode: 'Automatic' }),
    ];
    const spec = { ranges: ['10.60.0.10-10.60.0.20', '10.70.0.10-10.70.0.20'] };
    expect(denial(await h.validate(ippoolReview('CREATE', 'new', spec)))).toBe(
      'IPPool new: spec.cidr (CNI Calico): 10.60.0.10-10.60.0.20 lies in Calico IPPool auto, which Calico assigns from by itself, so a pinned pod can find its address taken ("Address already assigned in block"). ' +
        'Fix: on Calico IPPool auto, set assignmentMode: Manual (before Calico 3.30: nodeSelector: "!all()"); or back netpin\'s range with a Calico IPPool of its own; ' +
        'IPPool new: spec.cidr (CNI Calico): 10.70.0.10-10.70.0.20 lies in no Calico IPPool, and Calico refuses ipAddrs outside its pools ("The provided IP address is not in a configured pool"). ' +
        'Fix: create a Calico IPPool over 10.70.0.10-10.70.0.20 and set assignmentMode: Manual (before Calico 3.30: nodeSelector: "!all()") on it',
    );
    expect(h.held()).toEqual({});
    const backed = ippoolReview('CREATE', 'new', { cidr: '10.50.0.0/25' });
    expect((await h.validate(backed)).response).toEqual({ uid: backed.request!.uid, allowed: true });
  });
});
