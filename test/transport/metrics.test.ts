import { afterEach, describe, expect, it, vi } from 'vitest';
import { Admission, type Outcome } from '../../src/admission/handler.js';
import type { Claim } from '../../src/ipam/claim.js';
import { compilePool } from '../../src/ipam/pool.js';
import { buildApp } from '../../src/transport/app.js';
import { Metrics, OutcomeMetric, Tally } from '../../src/transport/metrics.js';
import { harness, ippoolReview, podCreate, post, review } from '../../harness/reviews.js';

/** An app over the test pools, and its metrics as the kube backend would get them. */
async function instrumented() {
  const h = await harness();
  const metrics = new Metrics(h.ledger.index);
  const app = await buildApp({ deps: h.deps, metrics });
  const scrape = async () => (await app.inject({ url: '/metrics' })).body.split('\n');
  const mutate = (body: unknown) => post(app, 'mutate', body);
  return { h, app, metrics, scrape, mutate, validate: (body: unknown) => post(app, 'validate', body) };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('admission metrics', () => {
  it('count denials by the netpin.io key at fault, other keys and IPPool refusals as other', async () => {
    const t = await instrumented();
    await t.mutate(podCreate({ name: 'a', annotations: { 'netpin.io/pool': 'nope' } }));
    await t.mutate(podCreate({ name: 'b', annotations: { 'netpin.io/pool': 'also-nope' } }));
    await t.mutate(podCreate({ name: 'c', annotations: { 'netpin.io/ip': '10.20.0.300' } }));
    await t.mutate(podCreate({ name: 'd', annotations: { 'netpin.io/egress-rate': '10Mbps' } }));
    // A typo is refused under its own (unbounded) key: counted as other.
    await t.mutate(podCreate({ name: 'e', annotations: { 'netpin.io/pooool': 'web' } }));
    await t.validate(ippoolReview('CREATE', 'overlap', { cidr: '10.20.0.0/25' }));

    const lines = await t.scrape();
    for (const line of [
      'netpin_admission_denials_total{endpoint="mutate",kind="Pod",reason="netpin.io/pool"} 2',
      'netpin_admission_denials_total{endpoint="mutate",kind="Pod",reason="netpin.io/ip"} 1',
      'netpin_admission_denials_total{endpoint="mutate",kind="Pod",reason="netpin.io/egress-rate"} 1',
      'netpin_admission_denials_total{endpoint="mutate",kind="Pod",reason="other"} 1',
      'netpin_admission_denials_total{endpoint="validate",kind="IPPool",reason="other"} 1',
      'netpin_admissions_total{endpoint="mutate",kind="Pod",operation="CREATE",result="denied"} 5',
    ]) {
      expect(lines).toContain(line);
    }
    expect(lines.filter((l) => l.startsWith('netpin_admission_denials_total{'))).toHaveLength(5);
  });

  it('do not count a replayed denial again', async () => {
    const t = await instrumented();
    const body = podCreate({ name: 'a', annotations: { 'netpin.io/pool': 'nope' } });
    await t.mutate(body);
    await t.mutate(body);
    const lines = await t.scrape();
    expect(lines).toContain('netpin_admission_denials_total{endpoint="mutate",kind="Pod",reason="netpin.io/pool"} 1');
    expect(lines).toContain(
      'netpin_admissions_total{endpoint="mutate",kind="Pod",operation="CREATE",result="replayed"} 1',
    );
  });

  it('count a kind no webhook sends as other, so that callers cannot add series', async () => {
    const t = await instrumented();
    const pod = podCreate({ name: 'a' }).request!;
    for (const kind of ['Widget', 'Gadget']) {
      await t.mutate(review({ ...pod, uid: kind, kind: { group: 'example.com', version: 'v1', kind } }));
    }
    const lines = await t.scrape();
    expect(lines).toContain(
      'netpin_admissions_total{endpoint="mutate",kind="other",operation="CREATE",result="allowed"} 2',
    );
    expect(lines).toContain('netpin_admission_duration_seconds_count{endpoint="mutate",kind="other"} 2');
    expect(lines.join('\n')).not.toMatch(/Widget|Gadget/);
  });

  it('export latency as a cumulative histogram', async () => {
    const t = await instrumented();
    for (const name of ['a', 'b', 'c']) await t.mutate(podCreate({ name, annotations: { 'netpin.io/pool': 'web' } }));
    const lines = await t.scrape();
    const buckets = lines.filter((l) => l.startsWith('netpin_admission_duration_seconds_bucket{'));
    const bounds = ['0.0005', '0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '1', '2.5', '+Inf'];
    expect(buckets.map((l) => /le="([^"]+)"/.exec(l)![1])).toEqual(bounds);
    const counts = buckets.map((l) => Number(l.split(' ')[1]));
    expect(counts).toEqual([...counts].sort((x, y) => x - y));
    expect(counts.at(-1)).toBe(3);
    expect(lines).toContain('netpin_admission_duration_seconds_count{endpoint="mutate",kind="Pod"} 3');
    const sumLine = lines.find((l) =>
      l.startsWith('netpin_admission_duration_seconds_sum{endpoint="mutate",kind="Pod"} '),
    );
    const sum = Number(sumLine!.split(' ')[1]);
    expect(sum).toBeGreaterThan(0);
    expect(sum).toBeLessThan(10);
    expect(lines).toContain('# TYPE netpin_admission_duration_seconds histogram');
  });

  it('count errors in band and over HTTP, both at 0 before the first', async () => {
    const t = await instrumented();
    const none = ['netpin_webhook_errors_total{type="in_band"} 0', 'netpin_webhook_errors_total{type="http"} 0'];
    expect(await t.scrape()).toEqual(expect.arrayContaining(none));
    vi.spyOn(t.h.ledger, 'claimNext').mockRejectedValueOnce(new Error('etcd timeout'));
    expect(
      (await t.mutate(podCreate({ name: 'a', annotations: { 'netpin.io/pool': 'web' } }))).response.status?.code,
    ).toBe(500);
    vi.spyOn(Admission.prototype, 'review').mockRejectedValueOnce(new Error('a bug'));
    expect((await t.mutate(podCreate({ name: 'b' }))).status).toBe(500);
    const lines = await t.scrape();
    expect(lines).toContain('netpin_webhook_errors_total{type="in_band"} 1');
    expect(lines).toContain('netpin_webhook_errors_total{type="http"} 1');
    expect(lines).toContain(
      'netpin_admissions_total{endpoint="mutate",kind="Pod",operation="CREATE",result="error"} 1',
    );
  });

  it("keep one series per combination, outside prom-client's per-observation label hashing", async () => {
    const t = await instrumented();
    for (let i = 0; i < 20; i++)
      await t.mutate(podCreate({ name: `p${i}`, annotations: { 'netpin.io/pool': i % 2 ? 'web' : 'nope' } }));
    const metric = (name: string) => t.metrics.registry.getSingleMetric(name) as unknown as OutcomeMetric<Tally>;
    for (const name of [
      'netpin_admissions_total',
      'netpin_admission_duration_seconds',
      'netpin_admission_denials_total',
    ]) {
      expect(metric(name)).toBeInstanceOf(OutcomeMetric);
    }
    const patched: Outcome = {
      endpoint: 'mutate',
      kind: 'Pod',
      operation: 'CREATE',
      result: 'patched',
      reason: undefined,
      seconds: 0,
    };
    expect(metric('netpin_admissions_total').of(patched).value).toBe(10);
    expect((await metric('netpin_admissions_total').get()).values).toHaveLength(2);
  });
});

describe('OutcomeMetric', () => {
  const label = (name: 'endpoint' | 'result') => ({ name, of: (o: Outcome) => o[name] });
  const outcome = (endpoint: Outcome['endpoint'], result: Outcome['result']): Outcome => ({
    endpoint,
    kind: 'Pod',
    operation: 'CREATE',
    result,
    reason: undefined,
    seconds: 0.001,
  });

  it('makes one series per combination of label values, and finds it again', async () => {
    const make = vi.fn((labels: Record<string, string>) => new Tally(labels));
    const m = new OutcomeMetric('x_total', 'x', 'counter', [label('endpoint'), label('result')], make);
    const first = m.of(outcome('mutate', 'allowed'));
    for (let i = 0; i < 50; i++) {
      m.of(outcome('mutate', 'allowed')).value++;
      m.of(outcome('mutate', 'denied')).value++;
      m.of(outcome('validate', 'allowed')).value++;
    }
    expect(make.mock.calls.map(([labels]) => labels)).toEqual([
      { endpoint: 'mutate', result: 'allowed' },
      { endpoint: 'mutate', result: 'denied' },
      { endpoint: 'validate', result: 'allowed' },
    ]);
    expect(m.of(outcome('mutate', 'allowed'))).toBe(first);
    expect((await m.get()).values).toEqual([
      { metricName: 'x_total', labels: { endpoint: 'mutate', result: 'allowed' }, value: 50 },
      { metricName: 'x_total', labels: { endpoint: 'mutate', result: 'denied' }, value: 50 },
      { metricName: 'x_total', labels: { endpoint: 'validate', result: 'allowed' }, value: 50 },
    ]);
  });
});

describe('pool metrics', () => {
  it('give each pool and family its size, held and free addresses, read at scrape time', async () => {
    const t = await instrumented();
    await t.mutate(podCreate({ name: 'a', annotations: { 'netpin.io/pool': 'web,web-v6' } }));
    await t.mutate(podCreate({ name: 'b', annotations: { 'netpin.io/pool': 'web' } }));
    let lines = await t.scrape();
    for (const line of [
      'netpin_pool_capacity_addresses{pool="web",family="ipv4"} 253',
      'netpin_pool_allocated_addresses{pool="web",family="ipv4"} 2',
      'netpin_pool_free_addresses{pool="web",family="ipv4"} 251',
      'netpin_pool_capacity_addresses{pool="web-v6",family="ipv6"} 255',
      'netpin_pool_allocated_addresses{pool="web-v6",family="ipv6"} 1',
      'netpin_pool_free_addresses{pool="web-v6",family="ipv6"} 254',
      'netpin_pool_free_addresses{pool="tiny",family="ipv4"} 2',
    ]) {
      expect(lines).toContain(line);
    }
    // Addresses a pod uses without a claim are held too.
    t.h.ledger.index.observe('other/legacy', [t.h.ledger.index.firstFree('tiny', 'ipv4')!]);
    lines = await t.scrape();
    expect(lines).toContain('netpin_pool_allocated_addresses{pool="tiny",family="ipv4"} 1');
    expect(lines).toContain('netpin_pool_free_addresses{pool="tiny",family="ipv4"} 1');
  });
});

describe('namespace metrics', () => {
  it("give what each namespace holds of each pool and family, and each capped pool's limit, read at scrape time", async () => {
    const t = await instrumented();
    await t.mutate(podCreate({ name: 'a', annotations: { 'netpin.io/pool': 'web,web-v6' } }));
    await t.mutate(podCreate({ name: 'b', annotations: { 'netpin.io/pool': 'web' } }));
    await t.mutate(podCreate({ name: 'c', namespace: 'payments', annotations: { 'netpin.io/pool': 'tiny' } }));
    t.h.ledger.index.setPool(
      compilePool({ metadata: { name: 'tiny' }, spec: { cidr: '10.40.0.0/30', namespaceLimit: 1 } }),
    );
    let lines = await t.scrape();
    for (const line of [
      'netpin_namespace_allocated_addresses{pool="web",claim_namespace="shop",family="ipv4"} 2',
      'netpin_namespace_allocated_addresses{pool="web-v6",claim_namespace="shop",family="ipv6"} 1',
      'netpin_namespace_allocated_addresses{pool="tiny",claim_namespace="payments",family="ipv4"} 1',
      'netpin_pool_namespace_limit_addresses{pool="tiny"} 1',
    ]) {
      expect(lines).toContain(line);
    }
    // No series for what a namespace does not hold, nor a limit for a pool without one.
    expect(lines.filter((l) => l.startsWith('netpin_namespace_allocated_addresses{'))).toHaveLength(3);
    expect(lines.filter((l) => l.startsWith('netpin_pool_namespace_limit_addresses{'))).toHaveLength(1);
    for (const c of [...t.h.ledger.index.allClaims()].filter((c) => c.owner.namespace === 'payments'))
      await t.h.ledger.release(c);
    lines = await t.scrape();
    expect(lines.some((l) => l.includes('claim_namespace="payments"'))).toBe(false);
  });
});

describe('ledger and reconciler metrics', () => {
  it('count claim writes by op and outcome, every pair at 0 from the start', async () => {
    const t = await instrumented();
    const before = (await t.scrape()).filter((l) => l.startsWith('netpin_claim_writes_total{'));
    expect(before).toHaveLength(12);
    expect(before.every((l) => l.endsWith(' 0'))).toBe(true);
    t.metrics.ledger.write('create', 'ok');
    t.metrics.ledger.write('create', 'ok');
    t.metrics.ledger.write('create', 'conflict');
    t.metrics.ledger.write('delete', 'gone');
    const lines = await t.scrape();
    expect(lines).toContain('netpin_claim_writes_total{op="create",outcome="ok"} 2');
    expect(lines).toContain('netpin_claim_writes_total{op="create",outcome="conflict"} 1');
    expect(lines).toContain('netpin_claim_writes_total{op="delete",outcome="gone"} 1');
    expect(lines).toContain('netpin_claim_writes_total{op="patch",outcome="error"} 0');
  });

  it('count releases by pool, and report claims overdue until they are released or renewed', async () => {
    const t = await instrumented();
    await t.mutate(podCreate({ name: 'a', annotations: { 'netpin.io/pool': 'web' } }));
    await t.mutate(podCreate({ name: 'b', annotations: { 'netpin.io/pool': 'db' }, namespace: 'payments' }));
    const [madeA, madeB] = [...t.h.ledger.index.allClaims()] as [Claim, Claim];
    expect(await t.scrape()).toEqual(
      expect.arrayContaining(['netpin_claims_overdue 0', 'netpin_claims_overdue_seconds 0']),
    );

    const a = { ...madeA, createdAt: Date.now() - 90_000 };
    const b = { ...madeB, createdAt: Date.now() - 40_000 };
    t.h.ledger.index.replace(madeA, a);
    t.h.ledger.index.replace(madeB, b);
    t.metrics.reconciler.overdue([a, b], 30_000);
    let lines = await t.scrape();
    expect(lines).toContain('netpin_claims_overdue 2');
    const seconds = Number(lines.find((l) => l.startsWith('netpin_claims_overdue_seconds '))!.split(' ')[1]);
    expect(seconds).toBeGreaterThanOrEqual(60);
    expect(seconds).toBeLessThan(65);

    // Released by this replica or, through the watch, by another: gone from the index.
    await t.h.ledger.release(a);
    t.metrics.reconciler.released(a);
    lines = await t.scrape();
    expect(lines).toContain('netpin_claim_releases_total{pool="web"} 1');
    expect(lines).toContain('netpin_claims_overdue 1');
    // Renewed by an admission: within its grace period again.
    expect(await t.h.ledger.renew(b)).toBe(true);
    expect(await t.scrape()).toEqual(
      expect.arrayContaining(['netpin_claims_overdue 0', 'netpin_claims_overdue_seconds 0']),
    );
  });
});
