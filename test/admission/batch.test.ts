import { describe, expect, it } from 'vitest';
import {
  admittedAnnotations,
  cronJob,
  denial,
  harness,
  job,
  podCreate,
  type BatchFields,
} from '../../harness/reviews.js';

const IP = { 'netpin.io/ip': '10.20.0.7' };
const ENDPOINTS = ['mutate', 'validate'] as const;

describe('Job and CronJob admission', () => {
  it('allows a pool on any Job or CronJob, on both webhooks, claiming nothing: its pods claim when they come', async () => {
    const h = await harness();
    const pool = { annotations: { 'netpin.io/pool': 'web' } };
    for (const body of [job('CREATE', { ...pool, parallelism: 5 }), cronJob('CREATE', pool)])
      for (const endpoint of ENDPOINTS) {
        const answer = await h[endpoint](body);
        expect(answer.response).toMatchObject({ allowed: true });
        expect(answer.response.patch).toBeUndefined();
      }
    expect(h.held()).toEqual({});
  });

  it('allows netpin.io/ip on a Job that runs one pod at a time, and on a CronJob that forbids overlapping runs', async () => {
    const h = await harness();
    for (const body of [
      job('CREATE', { annotations: IP }),
      job('CREATE', { annotations: IP, parallelism: 1 }),
      cronJob('CREATE', { annotations: IP, concurrencyPolicy: 'Forbid' }),
    ])
      for (const endpoint of ENDPOINTS) expect((await h[endpoint](body)).response.allowed).toBe(true);
    expect(h.held()).toEqual({});
  });

  it('refuses a fixed address on a Job with parallelism above 1, naming netpin.io/pool and the pool of the address', async () => {
    const h = await harness();
    for (const endpoint of ENDPOINTS) {
      const message = denial(await h[endpoint](job('CREATE', { annotations: IP, parallelism: 3 })));
      expect(message).toContain(
        'netpin.io/ip (CNI Calico): Job backup runs up to 3 pods at once (spec.parallelism: 3), and one fixed address (10.20.0.7) would serve only the first',
      );
      expect(message).toContain('use netpin.io/pool: web, so that each pod gets a free address of its own');
    }
    const ips = { 'netpin.io/ips': '10.20.0.7;10.20.0.8' };
    expect(denial(await h.validate(job('CREATE', { annotations: ips, parallelism: 2 })))).toContain(
      'netpin.io/ips (CNI Calico): Job backup runs up to 2 pods at once',
    );
    expect(h.held()).toEqual({});
  });

  it.each([undefined, 'Allow', 'Replace'] as const)(
    'refuses a fixed address on a CronJob whose concurrencyPolicy is %s: a run may start while the last one holds it',
    async (policy) => {
      const h = await harness();
      const message = denial(await h.mutate(cronJob('CREATE', { annotations: IP, concurrencyPolicy: policy })));
      expect(message).toContain(
        `CronJob backup may start a Job while the last one still runs (spec.concurrencyPolicy: ${policy ?? 'Allow'})`,
      );
      expect(message).toContain('set spec.concurrencyPolicy: Forbid, or use netpin.io/pool: web');
    },
  );

  it("refuses a fixed address on a CronJob that forbids overlapping runs when its jobTemplate's parallelism is above 1", async () => {
    const h = await harness();
    const body = cronJob('CREATE', { annotations: IP, concurrencyPolicy: 'Forbid', parallelism: 2 });
    expect(denial(await h.validate(body))).toContain('(spec.jobTemplate.spec.parallelism: 2)');
  });

  it.each<[string, BatchFields, string]>([
    ['an unknown pool', { annotations: { 'netpin.io/pool': 'nope' } }, 'netpin.io/pool (CNI Calico): IPPool nope'],
    [
      'a pool that does not select the namespace',
      { annotations: { 'netpin.io/pool': 'db' } },
      'netpin.io/pool (CNI Calico): IPPool db',
    ],
    ['a misspelt key', { annotations: { 'netpin.io/pol': 'web' } }, 'netpin.io/pol'],
    ['a rate with a bad unit', { annotations: { 'netpin.io/egress-rate': '10Mbps' } }, 'netpin.io/egress-rate'],
  ])('gives the pod template the checks its pods get: %s', async (_, fields, expected) => {
    const h = await harness();
    for (const body of [job('CREATE', fields), cronJob('CREATE', { ...fields, concurrencyPolicy: 'Forbid' })])
      for (const endpoint of ENDPOINTS) expect(denial(await h[endpoint](body))).toContain(expected);
  });

  it("refuses what the cluster's CNI cannot honour, in that CNI's words", async () => {
    const h = await harness({ cni: 'cilium' });
    expect(denial(await h.validate(job('CREATE', { annotations: IP })))).toContain('netpin.io/ip (CNI Cilium)');
    expect((await h.validate(job('CREATE', { annotations: { 'netpin.io/pool': 'web' } }))).response.allowed).toBe(true);
  });

  it("refuses netpin's labels written by hand in the pod template, and warns of netpin.io/ keys on the object's own metadata", async () => {
    const h = await harness();
    const body = job('CREATE', { annotations: { 'netpin.io/pool': 'web' } });
    body.request!.object!.spec.template.metadata.labels = { 'netpin.io/pinned': 'true' };
    expect(denial(await h.validate(body))).toContain("netpin.io/pinned (CNI Calico): is netpin's label");
    const own = await h.validate(cronJob('CREATE', { ownAnnotations: IP }));
    expect(own.response.allowed).toBe(true);
    expect(own.response.warnings).toEqual([
      "netpin: the netpin.io/ annotations on the CronJob's own metadata are ignored; put them under spec.jobTemplate.spec.template.metadata.annotations",
    ]);
  });

  it('judges an UPDATE only when it changes what netpin reads: a pool deleted since never blocks the controllers', async () => {
    const h = await harness();
    const gone = { annotations: { 'netpin.io/pool': 'nope' } };
    // The same template and parallelism, as the Job controller or the garbage collector writes it.
    expect((await h.validate(job('UPDATE', gone, gone))).response.allowed).toBe(true);
    expect(denial(await h.validate(job('UPDATE', gone, { annotations: { 'netpin.io/pool': 'web' } })))).toContain(
      'IPPool nope',
    );
    const before = { annotations: IP, concurrencyPolicy: 'Forbid' as const };
    expect(denial(await h.validate(cronJob('UPDATE', { annotations: IP }, before)))).toContain(
      'spec.concurrencyPolicy: Allow',
    );
    expect(denial(await h.validate(job('UPDATE', { annotations: IP, parallelism: 4 }, { annotations: IP })))).toContain(
      'runs up to 4 pods at once',
    );
  });

  it("gives a Job's pod a pool address as a bare pod gets one, held by the pod's name", async () => {
    const h = await harness();
    const body = podCreate({
      name: 'backup-28301-abcde',
      annotations: { 'netpin.io/pool': 'web' },
      owner: { kind: 'Job', name: 'backup-28301' },
    });
    const annotations = admittedAnnotations(body, await h.mutate(body));
    expect(annotations['netpin.io/allocated']).toBe('10.20.0.2');
    expect(h.held()).toEqual({ '10.20.0.2': 'Pod/shop/backup-28301-abcde' });
  });
});
