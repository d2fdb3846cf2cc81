import { describe, expect, it } from 'vitest';
import { denial, harness, ippoolReview, podCreate, statefulSet } from '../support/reviews.js';

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

  it('leaves IPPools to /validate: /mutate allows them untouched', async () => {
    const h = await harness();
    expect((await h.mutate(ippoolReview('CREATE', 'new', { cidr: '10.20.0.0/24' }))).response).toMatchObject({
      allowed: true,
    });
  });
});
