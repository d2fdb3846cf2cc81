import { describe, expect, it } from 'vitest';
import { BODY_LIMIT } from '../../src/transport/app.js';
import { deployment, harness, ippoolReview, podCreate, post } from '../../harness/reviews.js';
import type { WireJson } from '../../harness/json.js';

const ok = () => JSON.parse(JSON.stringify(podCreate({ name: 'a', annotations: { 'netpin.io/pool': 'web' } })));

describe('the webhook over HTTP', () => {
  it('reports health and readiness', async () => {
    let synced = false;
    const h = await harness({ readiness: () => (synced ? [] : ['ledger not synced']) });
    expect((await h.app.inject({ url: '/healthz' })).json()).toEqual({ status: 'ok' });
    const notReady = await h.app.inject({ url: '/readyz' });
    expect(notReady.statusCode).toBe(503);
    expect(notReady.json()).toEqual({ status: 'not ready', problems: ['ledger not synced'] });
    synced = true;
    const ready = await h.app.inject({ url: '/readyz' });
    expect([ready.statusCode, ready.json()]).toEqual([200, { status: 'ready' }]);
  });

  describe('malformed reviews: HTTP 400 with a JSON message, never 500', () => {
    const cases: Array<[string, string | object, RegExp]> = [
      ['a body that is not JSON', '{"apiVersion": "admission.k8s.io/v1", ', /JSON/i],
      ['a JSON string', '"review"', /^malformed AdmissionReview: body is not a JSON object$/],
      [
        'the wrong apiVersion',
        { ...ok(), apiVersion: 'admission.k8s.io/v1beta1' },
        /^malformed AdmissionReview: apiVersion must be admission.k8s.io\/v1/,
      ],
      [
        'the wrong kind',
        { ...ok(), kind: 'AdmissionResponse' },
        /^malformed AdmissionReview: kind must be AdmissionReview/,
      ],
      ['no request', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, /request is missing/],
      [
        'no request.uid',
        (() => {
          const b = ok();
          delete b.request.uid;
          return b;
        })(),
        /request.uid is missing/,
      ],
      [
        'a bad operation',
        (() => {
          const b = ok();
          b.request.operation = 'APPLY';
          return b;
        })(),
        /request.operation must be one of/,
      ],
      [
        'no object on CREATE',
        (() => {
          const b = ok();
          delete b.request.object;
          return b;
        })(),
        /request.object is missing for CREATE/,
      ],
      [
        'annotations that are not a string map',
        (() => {
          const b = ok();
          b.request.object.metadata.annotations = { 'netpin.io/pool': { name: 'web' } };
          return b;
        })(),
        /annotations must map strings to strings/,
      ],
      [
        'template annotations that are not a string map',
        (() => {
          const b: WireJson = JSON.parse(
            JSON.stringify(deployment('CREATE', { annotations: { 'netpin.io/ip': '10.20.0.7' } })),
          );
          b.request.object.spec.template.metadata.annotations['netpin.io/ip'] = 7;
          return b;
        })(),
        /spec.template.metadata.annotations must map strings to strings/,
      ],
      ['an empty body', '', /body/i],
      // Found by test/property: these were in-band 500s ("name?.startsWith is not a function").
      [
        'a metadata.name that is not a string',
        (() => {
          const b = ok();
          b.request.object.metadata.name = 7;
          return b;
        })(),
        /request.object.metadata.name is not a string/,
      ],
      [
        'labels that are not a string map',
        (() => {
          const b = ok();
          b.request.object.metadata.labels = { app: null };
          return b;
        })(),
        /request.object.metadata.labels must map strings to strings/,
      ],
      [
        'ownerReferences that are not a list',
        (() => {
          const b = ok();
          b.request.object.metadata.ownerReferences = { kind: 'StatefulSet' };
          return b;
        })(),
        /ownerReferences must be a list of references with a kind and a name/,
      ],
    ];

    it.each(cases)('%s', async (_, payload, message) => {
      const h = await harness();
      for (const url of ['/mutate', '/validate']) {
        const res = await h.app.inject({
          method: 'POST',
          url,
          payload,
          headers: { 'content-type': 'application/json' },
        });
        expect(res.statusCode).toBe(400);
        expect(res.headers['content-type']).toMatch(/^application\/json/);
        expect(Object.keys(res.json())).toEqual(['message']);
        expect(res.json().message).toMatch(message);
      }
      expect(h.held()).toEqual({});
    });
  });

  it('refuses an oversized body with 413, and accepts one just under the limit', async () => {
    const h = await harness();
    const big = ok();
    big.request.object.metadata.annotations['example.com/blob'] = 'x'.repeat(BODY_LIMIT);
    const res = await h.app.inject({
      method: 'POST',
      url: '/mutate',
      payload: JSON.stringify(big),
      headers: { 'content-type': 'application/json' },
    });
    expect(res.statusCode).toBe(413);
    expect(res.json().message).toMatch(/too large/i);

    // Two objects of nearly 3 MiB (the API server's request limit), as an UPDATE may carry, fit.
    const update = ok();
    update.request.operation = 'UPDATE';
    update.request.object.metadata.annotations['example.com/blob'] = 'x'.repeat(3 * 1024 * 1024 - 4096);
    update.request.oldObject = update.request.object;
    const fits = await post(h.app, 'mutate', update);
    expect(fits.status).toBe(200);
    expect(fits.response.allowed).toBe(true);
  });

  it('refuses a body that is not JSON by content type with a 4xx', async () => {
    const h = await harness();
    const res = await h.app.inject({
      method: 'POST',
      url: '/mutate',
      payload: 'apiVersion: v1',
      headers: { 'content-type': 'application/yaml' },
    });
    expect(res.statusCode).toBe(415);
    expect(res.json().message).toBeTypeOf('string');
  });

  it('exposes Prometheus metrics: admissions by kind, operation and result, latency, pool usage', async () => {
    const h = await harness();
    await h.mutate(podCreate({ name: 'a', annotations: { 'netpin.io/pool': 'web' } }));
    const dual = podCreate({ name: 'b', annotations: { 'netpin.io/pool': 'web,web-v6' } });
    await h.mutate(dual);
    await h.mutate(dual);
    await h.mutate(podCreate({ name: 'c', annotations: { 'netpin.io/pool': 'nope' } }));
    await h.validate(ippoolReview('CREATE', 'x', { cidr: '10.99.0.0/24' }));

    const res = await h.app.inject({ url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    const lines = res.body.split('\n');
    for (const line of [
      'netpin_admissions_total{endpoint="mutate",kind="Pod",operation="CREATE",result="patched"} 2',
      'netpin_admissions_total{endpoint="mutate",kind="Pod",operation="CREATE",result="replayed"} 1',
      'netpin_admissions_total{endpoint="mutate",kind="Pod",operation="CREATE",result="denied"} 1',
      'netpin_admissions_total{endpoint="validate",kind="IPPool",operation="CREATE",result="allowed"} 1',
      'netpin_admission_duration_seconds_count{endpoint="mutate",kind="Pod"} 4',
      'netpin_pool_capacity_addresses{pool="web",family="ipv4"} 253',
      'netpin_pool_capacity_addresses{pool="web-v6",family="ipv6"} 255',
      'netpin_pool_capacity_addresses{pool="db",family="ipv4"} 10',
      'netpin_pool_allocated_addresses{pool="web",family="ipv4"} 2',
      'netpin_pool_allocated_addresses{pool="web-v6",family="ipv6"} 1',
      'netpin_pool_allocated_addresses{pool="tiny",family="ipv4"} 0',
    ]) {
      expect(lines).toContain(line);
    }
    expect(res.body).toMatch(
      /^netpin_admission_duration_seconds_bucket\{le="0.001",endpoint="mutate",kind="Pod"\} \d+$/m,
    );
    expect(res.body).toContain('# TYPE netpin_admissions_total counter');
  });

  it('keeps the metrics of two apps in one process apart', async () => {
    const a = await harness();
    const b = await harness();
    await a.mutate(podCreate({ name: 'a', annotations: { 'netpin.io/pool': 'web' } }));
    expect((await b.app.inject({ url: '/metrics' })).body).not.toContain('netpin_admissions_total{');
    expect((await a.app.inject({ url: '/metrics' })).body).toContain('netpin_admissions_total{');
  });

  it('answers 404 for other paths', async () => {
    const h = await harness();
    expect((await h.app.inject({ method: 'POST', url: '/admit', payload: ok() })).statusCode).toBe(404);
  });
});
