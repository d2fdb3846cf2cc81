// Which namespaces netpin admits the pods of, as the pod tracker asks (issue 20, attack 3): the
// namespaceSelector of netpin's own mutating webhook, read from the API server, and nothing until then.
import type { V1MutatingWebhookConfiguration, V1Namespace } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { MUTATING_WEBHOOK, OptIn } from '../../src/cluster/kube-view.js';

/** The chart's selector (templates/_helpers.tpl, netpin.namespaceSelector). */
const CHART = {
  matchExpressions: [
    { key: 'netpin.io/enabled', operator: 'In', values: ['true'] },
    { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'netpin-system'] },
  ],
};

function config(webhooks: V1MutatingWebhookConfiguration['webhooks']): V1MutatingWebhookConfiguration {
  return { metadata: { name: 'netpin' }, webhooks };
}

function hook(name: string, extra: Record<string, unknown> = {}) {
  return { name, clientConfig: {}, sideEffects: 'None', admissionReviewVersions: ['v1'], ...extra };
}

function namespace(name: string, labels: Record<string, string> = {}): V1Namespace {
  return { metadata: { name, labels: { ...labels, 'kubernetes.io/metadata.name': name } } };
}

function setup() {
  const namespaces = new Map<string, V1Namespace>();
  const told: Array<string | undefined> = [];
  const optIn = new OptIn(
    (name) => namespaces.get(name)?.metadata?.labels,
    (ns) => told.push(ns),
  );
  const put = (ns: V1Namespace) => {
    const before = namespaces.get(ns.metadata!.name!);
    namespaces.set(ns.metadata!.name!, ns);
    optIn.namespaceChanged(ns, before);
  };
  const remove = (name: string) => {
    const before = namespaces.get(name);
    namespaces.delete(name);
    optIn.namespaceChanged(undefined, before);
  };
  return { optIn, told, put, remove };
}

describe('OptIn', () => {
  it("follows the namespaceSelector of netpin's mutating webhook, its excluded namespaces included", () => {
    const { optIn, put } = setup();
    optIn.webhooksChanged([config([hook('other.example.com'), hook(MUTATING_WEBHOOK, { namespaceSelector: CHART })])]);
    put(namespace('shop', { 'netpin.io/enabled': 'true' }));
    put(namespace('plain'));
    put(namespace('netpin-system', { 'netpin.io/enabled': 'true' }));
    expect(optIn.has('shop')).toBe(true);
    expect(optIn.has('plain')).toBe(false);
    expect(optIn.has('netpin-system')).toBe(false);
    // Not seen yet: not trusted.
    expect(optIn.has('unknown')).toBe(false);
  });

  it('trusts no namespace while no webhook of netpin is known, nor where it may not see every pod', () => {
    const { optIn, put, told } = setup();
    put(namespace('shop', { 'netpin.io/enabled': 'true' }));
    expect(optIn.has('shop')).toBe(false);
    optIn.webhooksChanged([config([hook('mutate.example.com', { namespaceSelector: {} })])]);
    expect(optIn.has('shop')).toBe(false);
    optIn.webhooksChanged([
      config([hook(MUTATING_WEBHOOK, { namespaceSelector: CHART, objectSelector: { matchLabels: { a: 'b' } } })]),
    ]);
    expect(optIn.has('shop')).toBe(false);
    optIn.webhooksChanged([
      config([
        hook(MUTATING_WEBHOOK, { namespaceSelector: CHART, matchConditions: [{ name: 'x', expression: 'true' }] }),
      ]),
    ]);
    expect(optIn.has('shop')).toBe(false);
    // Pods admitted unchecked while netpin does not answer.
    optIn.webhooksChanged([config([hook(MUTATING_WEBHOOK, { namespaceSelector: CHART, failurePolicy: 'Ignore' })])]);
    expect(optIn.has('shop')).toBe(false);
    expect(told).toEqual([]);
    optIn.webhooksChanged([config([hook(MUTATING_WEBHOOK, { namespaceSelector: CHART, failurePolicy: 'Fail' })])]);
    expect(optIn.has('shop')).toBe(true);
    // Another label configured in the chart (webhook.optInLabel).
    optIn.webhooksChanged([
      config([hook(MUTATING_WEBHOOK, { namespaceSelector: { matchLabels: { 'team.example/netpin': 'on' } } })]),
    ]);
    expect(optIn.has('shop')).toBe(false);
    put(namespace('web', { 'team.example/netpin': 'on' }));
    expect(optIn.has('web')).toBe(true);
  });

  it("has every namespace's pods judged again when the webhooks change, and only when they do", () => {
    const { optIn, told } = setup();
    const configs = [config([hook(MUTATING_WEBHOOK, { namespaceSelector: CHART })])];
    optIn.webhooksChanged(configs);
    optIn.webhooksChanged(configs);
    expect(told).toEqual([undefined]);
    optIn.webhooksChanged([]);
    expect(told).toEqual([undefined, undefined]);
  });

  it("has a namespace's pods judged again when it opts in or out, and not on other changes", () => {
    const { optIn, told, put, remove } = setup();
    optIn.webhooksChanged([config([hook(MUTATING_WEBHOOK, { namespaceSelector: CHART })])]);
    told.length = 0;
    put(namespace('late'));
    put(namespace('late', { team: 'web' }));
    expect(told).toEqual([]);
    put(namespace('late', { team: 'web', 'netpin.io/enabled': 'true' }));
    expect(told).toEqual(['late']);
    expect(optIn.has('late')).toBe(true);
    put(namespace('late', { team: 'db', 'netpin.io/enabled': 'true' }));
    put(namespace('late', { team: 'db' }));
    expect(told).toEqual(['late', 'late']);
    expect(optIn.has('late')).toBe(false);
    // Seen opted in at once, then deleted.
    put(namespace('fresh', { 'netpin.io/enabled': 'true' }));
    remove('fresh');
    expect(told).toEqual(['late', 'late', 'fresh', 'fresh']);
  });
});
