// A tenant who may create and update pods in one opted-in namespace, against what netpin gave
// others (issue 20, attack 4 and two of the smaller points): Kube-OVN's write-back, its snat, eip
// and per-attachment keys, egress addresses outside every egress pool, StatefulSet ownerReferences,
// and netpin's labels.
import { describe, expect, it } from 'vitest';
import type { KubeObject } from '../../src/admission/review.js';
import type { CniName } from '../../src/cni/dialect.js';
import {
  admittedAnnotations,
  denial,
  harness,
  patched,
  podCreate,
  podUpdate,
  POOLS,
  statefulSet,
  type Harness,
} from '../../harness/reviews.js';

/** Creates a pod through both webhooks and returns it as stored. */
async function created(h: Harness, annotations: Record<string, string>, name = 'a'): Promise<KubeObject> {
  const body = podCreate({ name, annotations });
  const answer = await h.mutate(body);
  expect(answer.response.allowed).toBe(true);
  const stored = patched(body, answer.response);
  expect((await h.validate(podCreate({ name, annotations: stored.metadata!.annotations }))).response.allowed).toBe(
    true,
  );
  return stored;
}

/** `pod` with these annotations added or changed. */
function annotated(pod: KubeObject, more: Record<string, string>): KubeObject {
  const copy = structuredClone(pod);
  copy.metadata!.annotations = { ...copy.metadata!.annotations, ...more };
  return copy;
}

/** The answers of both webhooks to one UPDATE: each must refuse, or each must allow. */
async function bothOnUpdate(h: Harness, before: KubeObject, after: KubeObject) {
  const body = podUpdate(before, after);
  return [await h.mutate(body), await h.validate(body)];
}

const RECREATE =
  'delete the pod and create it again with the new value; for a Deployment or StatefulSet, change its pod template and let it roll out';

describe("Kube-OVN's write-back", () => {
  it('refuses a pod UPDATE that adds a netpin pool address the pod was not given, of either family', async () => {
    const h = await harness({ cni: 'kube-ovn' });
    const pod = await created(h, { 'netpin.io/pool': 'web' });
    expect(pod.metadata!.annotations!['ovn.kubernetes.io/ip_address']).toBe('10.20.0.2');
    // fd00:20::9 is an address of IPPool web-v6, which netpin may give another pod.
    for (const answer of await bothOnUpdate(
      h,
      pod,
      annotated(pod, { 'ovn.kubernetes.io/ip_address': '10.20.0.2,fd00:20::9' }),
    )) {
      expect(denial(answer)).toBe(
        'ovn.kubernetes.io/ip_address (CNI Kube-OVN): names fd00:20::9, an address of IPPool web-v6 that netpin did not give this pod: ' +
          'Kube-OVN writes back the addresses the pod was given, and of another family only one from its own IPAM. ' +
          'Fix: remove fd00:20::9 from ovn.kubernetes.io/ip_address: a pod gets an address of IPPool web-v6 when it is created with netpin.io/ip or netpin.io/pool. ' +
          "If Kube-OVN picked it by itself, keep IPPool web-v6's range out of what Kube-OVN assigns",
      );
    }
    // A second IPv4 address, or another one: not what Kube-OVN writes.
    for (const value of ['10.20.0.2,10.20.0.3', '10.20.0.3', '10.20.0.2,fd00:99::1,10.20.0.3']) {
      for (const answer of await bothOnUpdate(h, pod, annotated(pod, { 'ovn.kubernetes.io/ip_address': value }))) {
        expect(denial(answer)).toBe(
          `ovn.kubernetes.io/ip_address (CNI Kube-OVN): cannot change on a running pod: Kube-OVN reads it only when the pod is created. Fix: ${RECREATE}`,
        );
      }
    }
    expect(h.held()).toEqual({ '10.20.0.2': 'Pod/shop/a' });
  });

  it("takes Kube-OVN's own address of the other family, outside every netpin pool, and what netpin rendered", async () => {
    const h = await harness({ cni: 'kube-ovn' });
    const pod = await created(h, { 'netpin.io/pool': 'web' });
    const written = annotated(pod, {
      'ovn.kubernetes.io/ip_address': '10.20.0.2,fd00:99::9',
      'ovn.kubernetes.io/logical_switch': 'web-subnet',
      'ovn.kubernetes.io/allocated': 'true',
    });
    for (const answer of await bothOnUpdate(h, pod, written)) expect(answer.response.allowed).toBe(true);
  });

  it("keeps Kube-OVN's write-back when a running pod changes a rate, which netpin renders again", async () => {
    const h = await harness({ cni: 'kube-ovn' });
    const pod = await created(h, { 'netpin.io/pool': 'web', 'netpin.io/egress-rate': '10M' });
    const written = annotated(pod, { 'ovn.kubernetes.io/ip_address': '10.20.0.2,fd00:99::9' });
    for (const answer of await bothOnUpdate(h, pod, written)) expect(answer.response.allowed).toBe(true);
    const faster = annotated(written, { 'netpin.io/egress-rate': '20M' });
    const answer = await h.mutate(podUpdate(written, faster));
    expect(answer.response.allowed).toBe(true);
    const result = patched(podUpdate(written, faster), answer.response);
    expect(result.metadata!.annotations).toMatchObject({
      'ovn.kubernetes.io/egress_rate': '20',
      'ovn.kubernetes.io/ip_address': '10.20.0.2,fd00:99::9',
    });
    expect((await h.validate(podUpdate(written, result))).response.allowed).toBe(true);
  });

  it('refuses a pool address written on a pod netpin gave none, and takes an address of no pool once', async () => {
    const h = await harness({ cni: 'kube-ovn' });
    for (const annotations of [{ 'netpin.io/egress-rate': '10M' }, { 'example.com/team': 'web' }] as Array<
      Record<string, string>
    >) {
      const pod = await created(h, annotations, 'plain');
      // 10.20.0.9 is free in IPPool web: named here, the pod would be counted as using it.
      for (const answer of await bothOnUpdate(h, pod, annotated(pod, { 'ovn.kubernetes.io/ip_address': '10.20.0.9' })))
        expect(denial(answer)).toContain(
          'ovn.kubernetes.io/ip_address (CNI Kube-OVN): names 10.20.0.9, an address of IPPool web that netpin did not give this pod',
        );
      // The egress pool's addresses likewise.
      for (const answer of await bothOnUpdate(
        h,
        pod,
        annotated(pod, { 'ovn.kubernetes.io/ip_address': '203.0.113.4' }),
      ))
        expect(denial(answer)).toContain('names 203.0.113.4, an address of IPPool out');
      const recorded = annotated(pod, { 'ovn.kubernetes.io/ip_address': '10.16.0.9,fd00:16::9' });
      for (const answer of await bothOnUpdate(h, pod, recorded)) expect(answer.response.allowed).toBe(true);
      // Once recorded, the address is not written again, and never two of a family.
      for (const answer of await bothOnUpdate(
        h,
        recorded,
        annotated(recorded, { 'ovn.kubernetes.io/ip_address': '10.16.0.10' }),
      ))
        expect(denial(answer)).toContain('ovn.kubernetes.io/ip_address (CNI Kube-OVN): cannot change on a running pod');
      for (const answer of await bothOnUpdate(
        h,
        pod,
        annotated(pod, { 'ovn.kubernetes.io/ip_address': '10.16.0.9,10.16.0.10' }),
      ))
        expect(denial(answer)).toContain('ovn.kubernetes.io/ip_address (CNI Kube-OVN): cannot change on a running pod');
    }
  });

  it("judges an attachment's address as the primary network's", async () => {
    const h = await harness({ cni: 'kube-ovn' });
    const pod = await created(h, { 'netpin.io/pool': 'web' });
    const key = 'net1.shop.ovn.kubernetes.io/ip_address';
    for (const answer of await bothOnUpdate(h, pod, annotated(pod, { [key]: '10.20.0.9' })))
      expect(denial(answer)).toContain(`${key} (CNI Kube-OVN): names 10.20.0.9, an address of IPPool web`);
    for (const answer of await bothOnUpdate(h, pod, annotated(pod, { [key]: '10.20.0.2,10.20.0.3' })))
      expect(denial(answer)).toContain(`${key} (CNI Kube-OVN): cannot change on a running pod`);
    const recorded = annotated(pod, { [key]: '172.18.0.9', 'net1.shop.ovn.kubernetes.io/logical_switch': 'net1' });
    for (const answer of await bothOnUpdate(h, pod, recorded)) expect(answer.response.allowed).toBe(true);
  });

  it('refuses snat or eip added to a running pod: Kube-OVN writes neither back', async () => {
    const h = await harness({ cni: 'kube-ovn' });
    const pod = await created(h, { 'netpin.io/pool': 'web' });
    for (const key of ['ovn.kubernetes.io/snat', 'ovn.kubernetes.io/eip'])
      for (const answer of await bothOnUpdate(h, pod, annotated(pod, { [key]: '198.51.100.7' })))
        expect(denial(answer)).toBe(
          `${key} (CNI Kube-OVN): cannot change on a running pod: Kube-OVN reads it only when the pod is created. Fix: ${RECREATE}`,
        );
  });
});

describe("Kube-OVN's snat, eip and per-attachment keys are placement keys", () => {
  const HAND_WRITTEN =
    "is written by hand, so netpin's ledger does not know the address and no IPPool namespaceSelector applies. " +
    'Fix: write netpin.io/ip, netpin.io/ips or netpin.io/pool instead (netpin.io/egress-ip or netpin.io/egress-pool for an egress address), and netpin writes this annotation';

  it("refuses another team's egress address written as snat or eip, on both webhooks, and claims nothing", async () => {
    const h = await harness({ cni: 'kube-ovn' });
    // Team db's pod has the egress address 203.0.113.1.
    const theirs = await created(h, { 'netpin.io/egress-pool': 'out' }, 'theirs');
    expect(theirs.metadata!.annotations!['ovn.kubernetes.io/snat']).toBe('203.0.113.1');
    const held = h.held();
    for (const key of ['ovn.kubernetes.io/snat', 'ovn.kubernetes.io/eip']) {
      // With an intent, the mutating webhook refuses it; the validating one refuses any pod that carries it.
      const withIntent = podCreate({ name: 'mine', annotations: { 'netpin.io/pool': 'web', [key]: '203.0.113.1' } });
      expect(denial(await h.mutate(withIntent))).toBe(`${key} (CNI Kube-OVN): ${HAND_WRITTEN}`);
      const mine = await created(h, { 'netpin.io/pool': 'web' }, 'mine');
      const forged = podCreate({ name: 'mine', annotations: { ...mine.metadata!.annotations, [key]: '203.0.113.1' } });
      expect(denial(await h.validate(forged))).toBe(`${key} (CNI Kube-OVN): ${HAND_WRITTEN}`);
      const bare = podCreate({ name: 'bare', annotations: { [key]: '203.0.113.1' } });
      expect(denial(await h.validate(bare))).toBe(`${key} (CNI Kube-OVN): ${HAND_WRITTEN}`);
      await h.mutate({ ...forged, request: { ...forged.request!, operation: 'DELETE', oldObject: mine } });
    }
    expect(h.held()).toEqual(held);
  });

  it('refuses the per-attachment address, pool and Subnet keys written by hand', async () => {
    const h = await harness({ cni: 'kube-ovn' });
    for (const key of [
      'net1.shop.ovn.kubernetes.io/ip_address',
      'net1.shop.ovn.kubernetes.io/ip_pool',
      'net1.shop.ovn.kubernetes.io/logical_switch',
      'net1.shop.ovn.kubernetes.io/snat',
    ]) {
      const body = podCreate({ name: 'a', annotations: { 'netpin.io/pool': 'web', [key]: '10.20.0.9' } });
      expect(denial(await h.mutate(body))).toBe(`${key} (CNI Kube-OVN): ${HAND_WRITTEN}`);
      expect(denial(await h.validate(podCreate({ name: 'a', annotations: { [key]: '10.20.0.9' } })))).toBe(
        `${key} (CNI Kube-OVN): ${HAND_WRITTEN}`,
      );
    }
    // Keys that only look alike are the pod's own.
    const own = { 'ovn.kubernetes.io/ip_address.note': 'x', 'example.com/ovn.kubernetes.io/snat': 'y' };
    expect((await h.validate(podCreate({ name: 'b', annotations: own }))).response.allowed).toBe(true);
    expect(h.held()).toEqual({});
  });

  it('takes the snat netpin wrote for the intent, and refuses another value', async () => {
    const h = await harness({ cni: 'kube-ovn' });
    const pod = await created(h, { 'netpin.io/egress-pool': 'out' });
    const message = denial(
      await h.validate(
        podCreate({
          name: 'a',
          annotations: { ...pod.metadata!.annotations, 'ovn.kubernetes.io/snat': '203.0.113.7' },
        }),
      ),
    );
    expect(message).toBe(
      'ovn.kubernetes.io/snat (CNI Kube-OVN): is set by hand to "203.0.113.7", but the netpin intent needs "203.0.113.1". ' +
        'Fix: remove ovn.kubernetes.io/snat and let netpin write it, or remove the netpin.io/ annotations',
    );
  });
});

describe('an egress address outside every egress pool', () => {
  const WITH_GATEWAY = POOLS.replace(
    'cidr: 203.0.113.0/28\n',
    'cidr: 203.0.113.0/28\n  exclude: ["203.0.113.1"]\n  namespaceSelector: { matchLabels: { team: web } }\n',
  );

  it.each<[string, CniName, string]>([
    ['outside every pool', 'kube-ovn', '198.51.100.7'],
    ['the excluded gateway of an egress pool', 'kube-ovn', '203.0.113.1'],
    ['an egress pool that does not select the namespace', 'kube-ovn', '203.0.113.4'],
    ['outside every pool', 'antrea', '198.51.100.7'],
    ['outside every pool', 'cilium', '198.51.100.7'],
  ])('is refused when it is %s (%s), in every mode, claiming nothing', async (_, cni, ip) => {
    const h = await harness({ cni, pools: WITH_GATEWAY });
    for (const mode of cni === 'kube-ovn' ? ['snat', 'eip'] : ['snat']) {
      const annotations = { 'netpin.io/egress-ip': ip, 'netpin.io/egress-mode': mode };
      const namespace = ip === '203.0.113.4' ? 'payments' : 'shop';
      const body = podCreate({ name: 'a', namespace, annotations });
      for (const answer of [await h.mutate(body), await h.validate(body)]) {
        const message = denial(answer);
        expect(
          message.startsWith(
            `netpin.io/egress-ip (CNI ${h.deps.dialect.title}): ${ip} is no address of an egress pool this namespace may use`,
          ),
        ).toBe(true);
        expect(message).toContain('Fix: choose an address of an IPPool with spec.egress that selects this namespace');
      }
    }
    expect(h.held()).toEqual({});
  });

  it('is given on Kube-OVN from an egress pool the namespace may use, and claimed', async () => {
    const h = await harness({ cni: 'kube-ovn', pools: WITH_GATEWAY });
    const body = podCreate({ name: 'a', annotations: { 'netpin.io/egress-ip': '203.0.113.4' } });
    const after = admittedAnnotations(body, await h.mutate(body));
    expect(after['ovn.kubernetes.io/snat']).toBe('203.0.113.4');
    expect(h.held()).toEqual({ '203.0.113.4': 'Egress/Pod/shop/a' });
  });

  it('is judged against the pool it was given from when a running pod changes a live key', async () => {
    const h = await harness({ cni: 'kube-ovn' });
    const pod = await created(h, { 'netpin.io/egress-ip': '203.0.113.9', 'netpin.io/egress-rate': '10M' });
    const faster = annotated(pod, { 'netpin.io/egress-rate': '20M' });
    const answer = await h.mutate(podUpdate(pod, faster));
    expect(answer.response.allowed).toBe(true);
    expect(patched(podUpdate(pod, faster), answer.response).metadata!.annotations).toMatchObject({
      'ovn.kubernetes.io/egress_rate': '20',
      'ovn.kubernetes.io/snat': '203.0.113.9',
    });
  });
});

describe("a StatefulSet pod's owner", () => {
  const POOL = { 'netpin.io/pool': 'web' };

  /** Pod web-k as the StatefulSet controller makes it, its ownerReference naming `uid`. */
  function stsPod(k: number, uid: string) {
    const body = podCreate({ name: `web-${k}`, owner: { kind: 'StatefulSet', name: 'web' }, annotations: POOL });
    body.request!.object!.metadata!.ownerReferences![0]!.uid = uid;
    return body;
  }

  /** A harness whose cluster view watches StatefulSets: web has uid `live`, when it exists. */
  async function watching(live: string | undefined) {
    const h = await harness();
    expect((await h.mutate(statefulSet('CREATE', { replicas: 2, annotations: POOL }))).response.allowed).toBe(true);
    const isLiveStatefulSet = async (namespace: string, name: string, uid: string) =>
      namespace === 'shop' && name === 'web' && uid === live;
    Object.assign(h.cluster, { isLiveStatefulSet });
    return h;
  }

  it("gives the live StatefulSet's pod its ordinal's reserved address", async () => {
    const h = await watching('uid-live');
    const body = stsPod(1, 'uid-live');
    expect(admittedAnnotations(body, await h.mutate(body))['netpin.io/allocated']).toBe('10.20.0.3');
  });

  it.each<[string, string | undefined, string]>([
    [
      'a forged uid',
      'uid-live',
      'names StatefulSet "web" with uid "uid-forged" as the controller of pod "web-1", and no live StatefulSet of namespace shop has that name and uid',
    ],
    [
      'a StatefulSet that no longer exists',
      undefined,
      'names StatefulSet "web" with uid "uid-forged" as the controller of pod "web-1", and no live StatefulSet of namespace shop has that name and uid',
    ],
  ])('refuses a bare pod whose ownerReference names %s, on both webhooks, claiming nothing', async (_, live, words) => {
    const h = await watching(live);
    const held = h.held();
    const body = stsPod(1, 'uid-forged');
    const refusal =
      `metadata.ownerReferences (CNI Calico): ${words}: a StatefulSet's pod takes its ordinal's reserved address, so only the StatefulSet's own pods may name it. ` +
      'Fix: let StatefulSet "web" create its pods, or remove the ownerReference: a pod of its own gets an address of its own';
    expect(denial(await h.mutate(body))).toBe(refusal);
    // The validating webhook refuses it too, with netpin's records of the ordinal written by hand.
    body.request!.object!.metadata!.annotations = {
      ...POOL,
      'netpin.io/allocated': '10.20.0.3',
      'cni.projectcalico.org/ipAddrs': '["10.20.0.3"]',
    };
    expect(denial(await h.validate(body))).toBe(refusal);
    expect(h.held()).toEqual(held);
    // Without the ownerReference, the pod is a bare pod with an address of its own.
    const bare = podCreate({ name: 'web-1', annotations: POOL });
    expect(admittedAnnotations(bare, await h.mutate(bare))['netpin.io/allocated']).toBe('10.20.0.4');
  });

  it('trusts the ownerReference where the view cannot tell (--ledger memory)', async () => {
    const h = await harness();
    expect((await h.mutate(statefulSet('CREATE', { replicas: 2, annotations: POOL }))).response.allowed).toBe(true);
    const body = stsPod(1, 'uid-anything');
    expect(admittedAnnotations(body, await h.mutate(body))['netpin.io/allocated']).toBe('10.20.0.3');
  });
});

describe("netpin's labels", () => {
  const EGRESS = 'netpin.io/egress';

  /** A pod CREATE with these labels and annotations. */
  const labelled = (labels: Record<string, string>, annotations: Record<string, string>) =>
    podCreate({ name: 'mine', labels, annotations });

  it.each<CniName>(['antrea', 'cilium'])(
    "refuses a hand-written %s egress label that would join another workload's egress address",
    async (cni) => {
      const h = await harness({ cni });
      const theirs = await created(h, { 'netpin.io/egress-pool': 'out' }, 'theirs');
      const value = theirs.metadata!.labels![EGRESS]!;
      expect(value).toBe('203.0.113.1');
      const held = h.held();
      const refusal =
        `netpin.io/egress (CNI ${h.deps.dialect.title}): is netpin's label, set here by hand to "203.0.113.1": ` +
        "the CNI's egress resources select the pods that share an egress address by it, so it would join another workload's egress address. " +
        'Fix: remove the label netpin.io/egress: netpin sets it on the pods it gives an egress address (netpin.io/egress-pool or netpin.io/egress-ip)';
      for (const annotations of [{}, { 'netpin.io/pool': 'web' }, { 'netpin.io/egress-rate': '10M' }] as Array<
        Record<string, string>
      >) {
        const body = labelled({ app: 'mine', [EGRESS]: value }, annotations);
        expect(denial(await h.mutate(body))).toBe(refusal);
        // The validating webhook sees the pod as the mutating one would have left it, and the label.
        const mutated = patched(
          podCreate({ name: 'mine', annotations }),
          (await h.mutate(podCreate({ name: 'mine', annotations }))).response,
        );
        const again = labelled({ app: 'mine', [EGRESS]: value }, mutated.metadata?.annotations ?? {});
        expect(denial(await h.validate(again))).toBe(refusal);
        await h.mutate({ ...again, request: { ...again.request!, operation: 'DELETE', oldObject: mutated } });
      }
      expect(h.held()).toEqual(held);
      // With an egress intent of its own, a hand-written value that is not the pod's is refused, and its claim given back.
      const own = labelled({ [EGRESS]: value }, { 'netpin.io/egress-pool': 'out' });
      expect(denial(await h.mutate(own))).toContain('netpin.io/egress (CNI ');
      expect(h.held()).toEqual(held);
    },
  );

  it('takes the label netpin set when the pod comes back to the validating webhook', async () => {
    const h = await harness({ cni: 'antrea' });
    const body = podCreate({ name: 'a', annotations: { 'netpin.io/egress-pool': 'out' } });
    const pod = patched(body, (await h.mutate(body)).response);
    expect(pod.metadata!.labels).toEqual({ [EGRESS]: '203.0.113.1' });
    const again = podCreate({ name: 'a', labels: pod.metadata!.labels, annotations: pod.metadata!.annotations });
    expect((await h.validate(again)).response.allowed).toBe(true);
    // Reinvoked, the mutating webhook finds its own label.
    expect((await h.mutate(again)).response.allowed).toBe(true);
  });

  it('refuses netpin.io/pinned on a pod netpin pins nothing for, on both webhooks', async () => {
    const h = await harness({ cni: 'kube-ovn' });
    const body = labelled({ 'netpin.io/pinned': 'true' }, { 'netpin.io/egress-rate': '10M' });
    const mutated = await created(h, { 'netpin.io/egress-rate': '10M' }, 'mine');
    const again = labelled({ 'netpin.io/pinned': 'true' }, mutated.metadata!.annotations!);
    for (const answer of [await h.mutate(body), await h.validate(again)])
      expect(denial(answer)).toBe(
        `netpin.io/pinned (CNI Kube-OVN): is netpin's label, set here by hand to "true": netpin sets it on the pods it pins an address for. ` +
          'Fix: remove the label netpin.io/pinned: netpin sets it',
      );
  });

  it('refuses the egress label added to a running pod', async () => {
    const h = await harness({ cni: 'cilium' });
    const pod = await created(h, { 'netpin.io/egress-rate': '10M' });
    const joined = structuredClone(pod);
    joined.metadata!.labels = { ...joined.metadata!.labels, [EGRESS]: '203.0.113.1' };
    for (const answer of await bothOnUpdate(h, pod, joined))
      expect(denial(answer)).toContain(
        'netpin.io/egress (CNI Cilium): is a label netpin set on this pod and cannot change',
      );
  });
});
