// What the pod tracker holds for each pod (issue 20, attack 3): outside opted-in namespaces only what
// a tenant cannot forge (status.podIPs, and one address per family of a scheduled pod's CNI
// annotation), never netpin.io/allocated; at most one address per family from each place anywhere;
// and a namespace that opts in or out has its own pods judged again, and no others.
import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { inUse, podAddresses, podRecord, PodRecords, type PodRecord } from '../../src/cluster/pod-tracker.js';
import { staleClaims } from '../../src/cluster/reconciler.js';
import type { Claim } from '../../src/ipam/claim.js';
import { v4 } from '../cni/fixtures.js';

const CALICO = 'cni.projectcalico.org/ipAddrs';
const KEYS = [CALICO, 'cni.projectcalico.org/ipAddrsNoIpam'];

/** Every address of 10.9.0.0/24 but the first: what the squatter of issue 20 wrote. */
const EVERY = Array.from({ length: 254 }, (_, i) => `10.9.0.${i + 1}`);

function pod(
  name: string,
  opts: {
    namespace?: string;
    annotations?: Record<string, string>;
    nodeName?: string;
    podIPs?: string[];
    phase?: string;
    uid?: string;
  } = {},
): V1Pod {
  return {
    metadata: {
      name,
      namespace: opts.namespace ?? 'out',
      uid: opts.uid ?? `uid-${name}`,
      annotations: opts.annotations ?? {},
    },
    spec: { containers: [], ...(opts.nodeName ? { nodeName: opts.nodeName } : {}) },
    status: { phase: opts.phase ?? 'Pending', ...(opts.podIPs ? { podIPs: opts.podIPs.map((ip) => ({ ip })) } : {}) },
  };
}

/** The squatter: Pending, never scheduled, every address in Calico's annotation and in netpin's record. */
const squatter = (namespace = 'out') =>
  pod('squatter', {
    namespace,
    annotations: { [CALICO]: JSON.stringify(EVERY), 'netpin.io/allocated': EVERY.join(',') },
  });

describe('what a pod outside opted-in namespaces holds against others', () => {
  it('nothing for a Pending pod that no node runs, whatever its annotations name', () => {
    const r = podRecord(squatter(), KEYS, false);
    expect(inUse(r)).toEqual([]);
  });

  it("never netpin.io/allocated, which only netpin's webhook guards", () => {
    const scheduled = pod('p', { nodeName: 'node-1', annotations: { 'netpin.io/allocated': '10.9.0.5,fd00::5' } });
    expect(inUse(podRecord(scheduled, KEYS, false))).toEqual([]);
    const running = pod('p', {
      nodeName: 'node-1',
      phase: 'Running',
      podIPs: ['10.9.0.7'],
      annotations: { 'netpin.io/allocated': '10.9.0.5' },
    });
    expect(inUse(podRecord(running, KEYS, false))).toEqual(['10.9.0.7']);
  });

  it('status.podIPs, which the kubelet writes, one per family, even before the pod is seen scheduled', () => {
    expect(inUse(podRecord(pod('p', { podIPs: ['10.9.0.9', 'fd00::9'] }), KEYS, false))).toEqual([
      '10.9.0.9',
      'fd00::9',
    ]);
  });

  it("the CNI's annotation of a scheduled pod, at most one address per family", () => {
    const scheduled = pod('p', { nodeName: 'node-1', annotations: { [CALICO]: JSON.stringify(EVERY) } });
    expect(inUse(podRecord(scheduled, KEYS, false))).toEqual(['10.9.0.1']);
    const dual = pod('p', {
      nodeName: 'node-1',
      annotations: { [CALICO]: '["10.9.0.3","10.9.0.4","fd00::3","fd00::4"]' },
    });
    expect(inUse(podRecord(dual, KEYS, false))).toEqual(['10.9.0.3', 'fd00::3']);
    // Both of Calico's keys together still give one per family.
    const both = pod('p', {
      nodeName: 'node-1',
      annotations: { [CALICO]: '["10.9.0.3"]', 'cni.projectcalico.org/ipAddrsNoIpam': '["10.9.0.4"]' },
    });
    expect(inUse(podRecord(both, KEYS, false))).toEqual(['10.9.0.3']);
  });

  it('the CNI annotation only for a family the kubelet has not reported: it cannot add an address to a running pod', () => {
    const running = pod('p', {
      nodeName: 'node-1',
      phase: 'Running',
      podIPs: ['10.9.0.7'],
      annotations: { [CALICO]: '["10.9.0.200","fd00::7"]' },
    });
    expect(inUse(podRecord(running, KEYS, false))).toEqual(['10.9.0.7', 'fd00::7']);
  });

  it('nothing once the pod has ended', () => {
    const ended = pod('p', { nodeName: 'node-1', phase: 'Succeeded', podIPs: ['10.9.0.7'] });
    expect(podRecord(ended, KEYS, false)).toMatchObject({
      addresses: [],
      unforged: [],
      inUse: [],
      egress: [],
      finished: true,
    });
    expect(podRecord(pod('p', { phase: 'Failed' }), KEYS, true).finished).toBe(true);
    expect(podRecord(pod('p', { phase: 'Running' }), KEYS, true).finished).toBeUndefined();
  });
});

describe('what a pod of an opted-in namespace holds', () => {
  it("netpin.io/allocated and the CNI's annotations, Pending or not: netpin wrote or checked them", () => {
    const pinned = pod('p', { annotations: { 'netpin.io/allocated': '10.9.0.5', [CALICO]: '["10.9.0.5"]' } });
    expect(inUse(podRecord(pinned, KEYS, true))).toEqual(['10.9.0.5']);
  });

  it('at most one address per family from each place, however many an annotation names', () => {
    const r = podRecord(squatter('in'), KEYS, true);
    expect(inUse(r)).toEqual(['10.9.0.1']);
    const mixed = pod('p', {
      nodeName: 'n',
      podIPs: ['10.9.0.30', 'fd00::30'],
      annotations: { 'netpin.io/allocated': '10.9.0.10,10.9.0.11,fd00::10', [CALICO]: '["10.9.0.20","10.9.0.21"]' },
    });
    expect(inUse(podRecord(mixed, KEYS, true))).toEqual([
      '10.9.0.10',
      'fd00::10',
      '10.9.0.20',
      '10.9.0.30',
      'fd00::30',
    ]);
  });

  it('reads only the first few tokens of an annotation: an address after them is never seen', () => {
    const padded = pod('p', { annotations: { 'netpin.io/allocated': `x,y,z,w,10.9.0.5` } });
    expect(podAddresses(padded, KEYS)).toEqual([]);
    expect(podAddresses(pod('p', { annotations: { 'netpin.io/allocated': 'x,10.9.0.5' } }), KEYS)).toEqual([
      '10.9.0.5',
    ]);
  });

  it('keeps one egress address per family', () => {
    const p = pod('p', { annotations: { 'netpin.io/egress-allocated': '10.8.0.1,10.8.0.2,fd00::1' } });
    expect(podRecord(p, KEYS, true).egress).toEqual(['10.8.0.1', 'fd00::1']);
  });
});

describe('the record of a pod of a namespace that opted out', () => {
  // The race: the namespace loses its label while a pod netpin admitted is still Pending. Its address
  // must stay held until the pod is gone. The claim does that (by the pod's name, or, while no pod is
  // named in it yet, by the address the pod shows), though the pod's annotations no longer count
  // against other namespaces.
  it("still keeps its own namespace's claim, named or not yet named", () => {
    const pending = podRecord(
      pod('api-x1', {
        namespace: 'shop',
        annotations: { 'netpin.io/allocated': '10.0.0.5', [CALICO]: '["10.0.0.5"]' },
      }),
      KEYS,
      false,
    );
    expect(inUse(pending)).toEqual([]);
    const unnamed: Claim = {
      pool: 'web',
      ip: v4('10.0.0.5'),
      owner: { kind: 'Pod', namespace: 'shop', name: '', uid: 'req-1' },
      createdAt: 0,
    };
    const named: Claim = { ...unnamed, owner: { kind: 'Pod', namespace: 'shop', name: 'api-x1' } };
    expect(staleClaims([unnamed, named], [pending], () => false, 1_000_000, 1)).toEqual([]);
    // A pod of another namespace showing the address keeps nothing.
    const elsewhere = { ...pending, namespace: 'other', name: 'x' };
    expect(staleClaims([unnamed], [elsewhere], () => false, 1_000_000, 1)).toEqual([unnamed]);
  });
});

describe('PodRecords', () => {
  function tracker(optedIn: Set<string>) {
    const changes: Array<{ key: string; inUse: string[] | undefined; before: string[] | undefined }> = [];
    const records = new PodRecords(
      KEYS,
      (ns) => optedIn.has(ns),
      (key, record, before) => changes.push({ key, inUse: record && inUse(record), before: before && inUse(before) }),
    );
    return { records, changes };
  }

  it('judges each pod by its namespace when it is seen', () => {
    const { records, changes } = tracker(new Set(['in']));
    records.seen(squatter('out'));
    records.seen(squatter('in'));
    expect(changes).toEqual([
      { key: 'out/squatter', inUse: [], before: undefined },
      { key: 'in/squatter', inUse: ['10.9.0.1'], before: undefined },
    ]);
    expect(records.get('out', 'squatter')?.addresses).toEqual(['10.9.0.1']);
  });

  it('judges the pods of a namespace again when it opts in or out, without their objects, and no others', () => {
    const optedIn = new Set<string>();
    const { records, changes } = tracker(optedIn);
    const allocated = (name: string, namespace: string, ip: string) =>
      pod(name, { namespace, annotations: { 'netpin.io/allocated': ip } });
    records.seen(allocated('a', 'late', '10.9.0.1'));
    records.seen(allocated('b', 'late', '10.9.0.2'));
    records.seen(pod('c', { namespace: 'late', podIPs: ['10.9.0.3'] }));
    records.seen(allocated('d', 'other', '10.9.0.4'));
    changes.length = 0;

    optedIn.add('late');
    expect(records.reconsider('late')).toBe(2);
    // c holds the same either way: nobody is told of it.
    expect(changes).toEqual([
      { key: 'late/a', inUse: ['10.9.0.1'], before: [] },
      { key: 'late/b', inUse: ['10.9.0.2'], before: [] },
    ]);
    expect(inUse(records.get('other', 'd')!)).toEqual([]);

    changes.length = 0;
    optedIn.delete('late');
    optedIn.add('other');
    expect(records.reconsider()).toBe(3);
    expect(changes.map((c) => [c.key, c.inUse])).toEqual([
      ['late/a', []],
      ['late/b', []],
      ['other/d', ['10.9.0.4']],
    ]);
    // Judging again without a change tells nothing.
    changes.length = 0;
    expect(records.reconsider()).toBe(0);
    expect(changes).toEqual([]);
  });

  it('tells of a pod that changes, is deleted, or is missing from a list', () => {
    const { records, changes } = tracker(new Set());
    records.seen(pod('a', { podIPs: ['10.9.0.1'] }));
    records.seen(pod('a', { podIPs: ['10.9.0.1'] }));
    records.seen(pod('a', { podIPs: ['10.9.0.2'] }));
    records.seen(pod('b'));
    records.seen(pod('c', { namespace: 'x' }));
    records.forget('out/b');
    records.forget('out/nobody');
    records.keepOnly(new Set(['out/a']));
    expect(changes.map((c) => [c.key, c.inUse, c.before])).toEqual([
      ['out/a', ['10.9.0.1'], undefined],
      ['out/a', ['10.9.0.2'], ['10.9.0.1']],
      ['out/b', [], undefined],
      ['x/c', [], undefined],
      ['out/b', undefined, []],
      ['x/c', undefined, []],
    ]);
    expect([...records.values()].map((r: PodRecord) => r.name)).toEqual(['a']);
    expect(records.reconsider('x')).toBe(0);
  });
});
