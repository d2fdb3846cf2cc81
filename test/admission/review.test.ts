import { describe, expect, it } from 'vitest';
import { decodeReview, MalformedReview } from '../../src/admission/review.js';
import { deployment, podCreate, podDelete, pod } from '../../harness/reviews.js';
import type { WireJson } from '../../harness/json.js';

/** A pod CREATE review as plain JSON, to break one field at a time. */
const body = (): WireJson =>
  JSON.parse(JSON.stringify(podCreate({ name: 'a', uid: 'u1', annotations: { 'netpin.io/pool': 'web' } })));

describe('decodeReview', () => {
  it('returns the request of a well-formed review', () => {
    const req = decodeReview(body());
    expect(req).toMatchObject({
      uid: 'u1',
      operation: 'CREATE',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      namespace: 'shop',
    });
    expect(req.object?.metadata?.annotations).toEqual({ 'netpin.io/pool': 'web' });
  });

  it('accepts a DELETE without object, and null objects', () => {
    expect(decodeReview(podDelete(pod({ name: 'a' }))).operation).toBe('DELETE');
    const b = body();
    b.request.oldObject = null;
    b.request.object.metadata.annotations = {};
    expect(decodeReview(b).oldObject).toBeNull();
  });

  it.each<[string, (b: WireJson) => unknown, string]>([
    ['a body that is not an object', () => 'text', 'body is not a JSON object'],
    ['null', () => null, 'body is not a JSON object'],
    ['an array', () => [], 'body is not a JSON object'],
    [
      'another apiVersion',
      (b) => ({ ...b, apiVersion: 'admission.k8s.io/v1beta1' }),
      'apiVersion must be admission.k8s.io/v1, got "admission.k8s.io/v1beta1"',
    ],
    ['no apiVersion', (b) => ({ ...b, apiVersion: undefined }), 'apiVersion must be admission.k8s.io/v1, got null'],
    ['another kind', (b) => ({ ...b, kind: 'Pod' }), 'kind must be AdmissionReview, got "Pod"'],
    ['no request', (b) => ({ ...b, request: undefined }), 'request is missing'],
    ['a request that is an array', (b) => ({ ...b, request: [] }), 'request is missing'],
    ['no uid', (b) => (delete b.request.uid, b), 'request.uid is missing'],
    ['an empty uid', (b) => ((b.request.uid = ''), b), 'request.uid is missing'],
    ['a uid that is not a string', (b) => ((b.request.uid = 7), b), 'request.uid is missing'],
    ['no request.kind', (b) => (delete b.request.kind, b), 'request.kind must have group, version and kind'],
    [
      'request.kind without group',
      (b) => (delete b.request.kind.group, b),
      'request.kind must have group, version and kind',
    ],
    [
      'an unknown operation',
      (b) => ((b.request.operation = 'PATCH'), b),
      'request.operation must be one of CREATE, UPDATE, DELETE, CONNECT',
    ],
    [
      'no operation',
      (b) => (delete b.request.operation, b),
      'request.operation must be one of CREATE, UPDATE, DELETE, CONNECT',
    ],
    ['an object that is a string', (b) => ((b.request.object = 'pod'), b), 'request.object is not an object'],
    ['an oldObject that is an array', (b) => ((b.request.oldObject = []), b), 'request.oldObject is not an object'],
    [
      'metadata that is not an object',
      (b) => ((b.request.object.metadata = 'x'), b),
      'request.object.metadata is not an object',
    ],
    ['null metadata', (b) => ((b.request.object.metadata = null), b), 'request.object.metadata is not an object'],
    ['no object on CREATE', (b) => (delete b.request.object, b), 'request.object is missing for CREATE'],
    [
      'a null object on UPDATE',
      (b) => ((b.request.operation = 'UPDATE'), (b.request.object = null), b),
      'request.object is missing for UPDATE',
    ],
    [
      'annotations that are not a string map',
      (b) => ((b.request.object.metadata.annotations = { 'netpin.io/ip': 5 }), b),
      'request.object.metadata.annotations must map strings to strings',
    ],
    [
      'annotations that are a list',
      (b) => ((b.request.object.metadata.annotations = ['netpin.io/ip']), b),
      'request.object.metadata.annotations must map strings to strings',
    ],
    [
      'annotations that are null',
      (b) => ((b.request.object.metadata.annotations = null), b),
      'request.object.metadata.annotations must map strings to strings',
    ],
    ['a namespace that is not a string', (b) => ((b.request.namespace = 3), b), 'request.namespace is not a string'],
    ['a name that is not a string', (b) => ((b.request.name = { toString: '' }), b), 'request.name is not a string'],
    [
      'a subResource that is not a string',
      (b) => ((b.request.subResource = ['scale']), b),
      'request.subResource is not a string',
    ],
    [
      'a resource without its parts',
      (b) => ((b.request.resource = { group: 'apps' }), b),
      'request.resource must have group, version and resource',
    ],
  ])('refuses %s', (_, breakIt, message) => {
    expect(() => decodeReview(breakIt(body()))).toThrow(new MalformedReview(message));
  });

  it('refuses pod template annotations that are not a string map', () => {
    const b: WireJson = JSON.parse(
      JSON.stringify(deployment('CREATE', { replicas: 2, annotations: { 'netpin.io/pool': 'web' } })),
    );
    expect(decodeReview(b).kind.kind).toBe('Deployment');
    b.request.object.spec.template.metadata.annotations['netpin.io/pool'] = ['web'];
    expect(() => decodeReview(b)).toThrow(
      new MalformedReview('request.object.spec.template.metadata.annotations must map strings to strings'),
    );
  });
});
