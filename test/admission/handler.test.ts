import { describe, expect, it, vi } from 'vitest';
import { Admission, type Outcome } from '../../src/admission/handler.js';
import { MalformedReview } from '../../src/admission/review.js';
import { harness, podCreate, review, statefulSet } from '../../harness/reviews.js';

describe('Admission', () => {
  it('answers with the request uid in an admission.k8s.io/v1 AdmissionReview', async () => {
    const h = await harness();
    const admission = new Admission(h.deps);
    const body = podCreate({ uid: 'abc', name: 'a', annotations: { 'netpin.io/pool': 'web' } });
    const answer = await admission.review('mutate', body);
    expect(answer).toMatchObject({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response: { uid: 'abc', allowed: true, patchType: 'JSONPatch' },
    });
    expect(answer.request).toBeUndefined();
  });

  it('throws MalformedReview for a review it cannot decode, reporting no outcome', async () => {
    const onOutcome = vi.fn();
    const admission = new Admission((await harness()).deps, { onOutcome });
    await expect(admission.review('mutate', { apiVersion: 'v1' })).rejects.toBeInstanceOf(MalformedReview);
    expect(onOutcome).not.toHaveBeenCalled();
  });

  it('reports each outcome with endpoint, kind, operation and result', async () => {
    const outcomes: Outcome[] = [];
    const admission = new Admission((await harness()).deps, { onOutcome: (o) => outcomes.push(o) });
    const pinned = podCreate({ name: 'a', annotations: { 'netpin.io/pool': 'web' } });
    await admission.review('mutate', pinned);
    await admission.review('mutate', pinned);
    await admission.review('mutate', podCreate({ name: 'b', annotations: { 'netpin.io/pool': 'nope' } }));
    await admission.review('validate', statefulSet('UPDATE', { replicas: 2 }));
    expect(outcomes.map(({ seconds, ...o }) => (expect(seconds).toBeGreaterThanOrEqual(0), o))).toEqual([
      { endpoint: 'mutate', kind: 'Pod', operation: 'CREATE', result: 'patched' },
      { endpoint: 'mutate', kind: 'Pod', operation: 'CREATE', result: 'replayed' },
      { endpoint: 'mutate', kind: 'Pod', operation: 'CREATE', result: 'denied', reason: 'netpin.io/pool' },
      { endpoint: 'validate', kind: 'StatefulSet', operation: 'UPDATE', result: 'allowed' },
    ]);
  });

  it('replays what claimed an address and what it refused, and decides again what claimed nothing', async () => {
    const outcomes: Outcome['result'][] = [];
    const admission = new Admission((await harness()).deps, { onOutcome: (o) => outcomes.push(o.result) });
    const rated = podCreate({ name: 'r', uid: 'u-rate', annotations: { 'netpin.io/egress-rate': '10M' } });
    const pinned = podCreate({ name: 'p', uid: 'u-pin', annotations: { 'netpin.io/pool': 'web' } });
    const refused = podCreate({ name: 'x', uid: 'u-bad', annotations: { 'netpin.io/pool': 'nope' } });
    for (const body of [rated, rated, pinned, pinned, refused, refused]) await admission.review('mutate', body);
    expect(outcomes).toEqual(['patched', 'patched', 'patched', 'replayed', 'denied', 'replayed']);
    // The same answer either way.
    const again = await admission.review('mutate', rated);
    expect(again.response).toEqual((await admission.review('mutate', rated)).response);
  });

  it('allows what it does not handle: subresources, other kinds, pod UPDATEs', async () => {
    const h = await harness();
    const pod = podCreate({ name: 'a', annotations: { 'netpin.io/pool': 'web' } }).request!;
    const cases = [
      review({ ...pod, subResource: 'status', operation: 'UPDATE', oldObject: pod.object }),
      review({ ...pod, operation: 'UPDATE', oldObject: pod.object }),
      review({ ...pod, kind: { group: '', version: 'v1', kind: 'Service' } }),
      review({ ...pod, kind: { group: 'apps', version: 'v1', kind: 'ReplicaSet' } }),
      review({ ...pod, kind: { group: 'other.io', version: 'v1', kind: 'StatefulSet' } }),
      review({ ...pod, operation: 'CONNECT' }),
    ];
    for (const body of cases) {
      const answer = await h.mutate(body);
      expect(answer.response).toEqual({ uid: body.request!.uid, allowed: true });
    }
    expect(h.held()).toEqual({});
  });

  it('answers in band with code 500 when the ledger fails, and decides again on retry', async () => {
    const h = await harness();
    vi.spyOn(h.ledger, 'claimNext').mockRejectedValueOnce(new Error('etcd timeout'));
    const body = podCreate({ name: 'a', annotations: { 'netpin.io/pool': 'web' } });
    const failed = await h.mutate(body);
    expect(failed.status).toBe(200);
    expect(failed.response).toEqual({
      uid: body.request!.uid,
      allowed: false,
      status: { code: 500, reason: 'InternalError', message: 'netpin could not decide: etcd timeout' },
    });
    // An error is not replayed: the API server's retry gets a real answer.
    const retried = await h.mutate(body);
    expect(retried.response.allowed).toBe(true);
    expect(h.held()).toEqual({ '10.20.0.2': 'Pod/shop/a' });
  });
});
