// What happens to a pod after its CREATE: UPDATEs by people, GitOps tools and the CNI itself,
// and the scale subresource of its Deployment.
import { describe, expect, it } from 'vitest';
import type { KubeObject } from '../../src/admission/review.js';
import type { CniName } from '../../src/cni/dialect.js';
import {
  denial,
  deployment,
  harness,
  ippoolReview,
  patched,
  podCreate,
  podUpdate,
  scaleUpdate,
  type Harness,
} from '../../harness/reviews.js';

/** Creates a pod through both webhooks and returns it as stored. */
async function created(h: Harness, annotations: Record<string, string>, name = 'fixed'): Promise<KubeObject> {
  const body = podCreate({ name, annotations });
  const answer = await h.mutate(body);
  expect(answer.response.allowed).toBe(true);
  const stored = patched(body, answer.response);
  expect(
    (await h.validate(podCreate({ ...{ name }, annotations: stored.metadata!.annotations }))).response.allowed,
  ).toBe(true);
  return stored;
}

function edit(
  pod: KubeObject,
  f: (meta: { annotations: Record<string, string>; labels: Record<string, string> }) => void,
): KubeObject {
  const copy = structuredClone(pod);
  copy.metadata!.annotations ??= {};
  copy.metadata!.labels ??= {};
  f(copy.metadata as { annotations: Record<string, string>; labels: Record<string, string> });
  return copy;
}

/** Both webhooks' answers to one UPDATE, the validating one seeing what the mutating one made. */
async function update(h: Harness, before: KubeObject, after: KubeObject) {
  const body = podUpdate(before, after);
  const mutated = await h.mutate(body);
  if (!mutated.response.allowed) return { mutated, validated: undefined, result: undefined };
  const result = patched(body, mutated.response);
  const validated = await h.validate(podUpdate(before, result));
  return { mutated, validated, result };
}

describe('a running pod keeps what netpin gave it', () => {
  it.each<[string, (m: { annotations: Record<string, string>; labels: Record<string, string> }) => void, string]>([
    ['removing the pinned label', (m) => delete m.labels['netpin.io/pinned'], 'netpin.io/pinned'],
    ['changing netpin.io/ip', (m) => (m.annotations['netpin.io/ip'] = '10.20.0.8'), 'netpin.io/ip'],
    ['removing netpin.io/ip', (m) => delete m.annotations['netpin.io/ip'], 'netpin.io/ip'],
    ['adding netpin.io/pool', (m) => (m.annotations['netpin.io/pool'] = 'web'), 'netpin.io/pool'],
    [
      'changing netpin.io/allocated',
      (m) => (m.annotations['netpin.io/allocated'] = '10.20.0.8'),
      'netpin.io/allocated',
    ],
    [
      'changing the CNI address',
      (m) => (m.annotations['cni.projectcalico.org/ipAddrs'] = '["10.20.0.8"]'),
      'cni.projectcalico.org/ipAddrs',
    ],
    [
      'removing the CNI address',
      (m) => delete m.annotations['cni.projectcalico.org/ipAddrs'],
      'cni.projectcalico.org/ipAddrs',
    ],
    [
      'a new rate, which Calico reads at sandbox creation only',
      (m) => (m.annotations['netpin.io/egress-rate'] = '20M'),
      'netpin.io/egress-rate',
    ],
  ])('refuses %s, naming the key and saying to recreate the pod', async (_, change, key) => {
    const h = await harness();
    const pod = await created(h, { 'netpin.io/ip': '10.20.0.7', 'netpin.io/egress-rate': '10M' });
    for (const endpoint of ['mutate', 'validate'] as const) {
      const message = denial(await h[endpoint](podUpdate(pod, edit(pod, change))));
      expect(message).toContain(`${key} (CNI Calico): `);
      expect(message).toContain('Fix: ');
      expect(message).toContain('create it again');
    }
  });

  // netpin-ipam reads both at every sandbox it sets up: a node reboot or a crashed sandbox would give
  // the pod whatever they say then.
  it.each<[string, (m: { annotations: Record<string, string>; labels: Record<string, string> }) => void, string]>([
    [
      'changing netpin.io/ipam',
      (m) => (m.annotations['netpin.io/ipam'] = '[{"address":"10.20.0.8/24","gateway":"10.20.0.1"}]'),
      'netpin.io/ipam',
    ],
    ['removing netpin.io/ipam', (m) => delete m.annotations['netpin.io/ipam'], 'netpin.io/ipam'],
    [
      'changing netpin.io/allocated',
      (m) => (m.annotations['netpin.io/allocated'] = '10.20.0.8'),
      'netpin.io/allocated',
    ],
  ])('refuses %s on netpin-ipam', async (_, change, key) => {
    const h = await harness({ cni: 'netpin-ipam' });
    const pod = await created(h, { 'netpin.io/ip': '10.20.0.7' });
    expect(pod.metadata?.annotations?.['netpin.io/ipam']).toBe('[{"address":"10.20.0.7/24","gateway":"10.20.0.1"}]');
    for (const endpoint of ['mutate', 'validate'] as const) {
      const message = denial(await h[endpoint](podUpdate(pod, edit(pod, change))));
      expect(message).toContain(`${key} (CNI netpin-ipam): cannot change on a running pod`);
    }
  });

  it("allows what controllers and people change that is not netpin's", async () => {
    const h = await harness();
    const pod = await created(h, { 'netpin.io/pool': 'web' });
    const after = edit(pod, (m) => {
      m.labels.app = 'other';
      m.annotations['example.com/owner'] = 'team-a';
    });
    const { mutated, validated } = await update(h, pod, after);
    expect(mutated.response).toMatchObject({ allowed: true });
    expect(mutated.response.patch).toBeUndefined();
    expect(validated?.response.allowed).toBe(true);
  });

  it('refuses a hand-written bandwidth value containerd would refuse at the next sandbox, on any pod', async () => {
    const h = await harness();
    const plain = await created(h, { 'example.com/x': 'y' }, 'plain');
    const message = denial(
      await h.validate(
        podUpdate(
          plain,
          edit(plain, (m) => (m.annotations['kubernetes.io/egress-bandwidth'] = '10Mbps')),
        ),
      ),
    );
    expect(message).toContain('kubernetes.io/egress-bandwidth (CNI Calico): "10Mbps" is not a Kubernetes quantity');
    expect(
      (
        await h.validate(
          podUpdate(
            plain,
            edit(plain, (m) => (m.annotations['kubernetes.io/egress-bandwidth'] = '10M')),
          ),
        )
      ).response.allowed,
    ).toBe(true);
  });

  it.each<[CniName, Record<string, string>, Record<string, string>]>([
    [
      'kube-ovn',
      { 'netpin.io/egress-rate': '20M', 'netpin.io/latency': '5' },
      { 'ovn.kubernetes.io/egress_rate': '20', 'ovn.kubernetes.io/latency': '5' },
    ],
    ['cilium', { 'netpin.io/egress-rate': '20M' }, { 'kubernetes.io/egress-bandwidth': '20M' }],
  ])('applies a changed rate where %s applies it live', async (cni, change, rendered) => {
    const h = await harness({ cni });
    const pod = await created(h, { 'netpin.io/pool': 'web', 'netpin.io/egress-rate': '10M' });
    const { mutated, validated, result } = await update(
      h,
      pod,
      edit(pod, (m) => Object.assign(m.annotations, change)),
    );
    expect(mutated.response.allowed).toBe(true);
    expect(result!.metadata!.annotations).toMatchObject(rendered);
    expect(validated?.response.allowed).toBe(true);
    // Removing the rate removes what netpin rendered for it.
    const { result: without } = await update(
      h,
      result!,
      edit(result!, (m) => delete m.annotations['netpin.io/egress-rate']),
    );
    for (const key of Object.keys(rendered).filter((k) => k.includes('egress')))
      expect(without!.metadata!.annotations![key]).toBeUndefined();
  });

  it('refuses a live rate the CNI cannot take', async () => {
    const h = await harness({ cni: 'kube-ovn' });
    const pod = await created(h, { 'netpin.io/egress-rate': '10M' });
    expect(
      denial(
        await h.mutate(
          podUpdate(
            pod,
            edit(pod, (m) => (m.annotations['netpin.io/egress-rate'] = '1500k')),
          ),
        ),
      ),
    ).toContain('Kube-OVN takes rates in whole Mbps only');
  });

  it('lets Kube-OVN write back the addresses it used, not others', async () => {
    const h = await harness({ cni: 'kube-ovn' });
    const pod = await created(h, { 'netpin.io/ip': '10.20.0.7' });
    // The other family from Kube-OVN's own IPAM: an address of no netpin pool (pods-writeback.test.ts).
    const dual = edit(pod, (m) => {
      m.annotations['ovn.kubernetes.io/ip_address'] = '10.20.0.7,fd00:99::9';
      m.annotations['ovn.kubernetes.io/mac_address'] = '00:00:00:aa:bb:cc';
      m.annotations['ovn.kubernetes.io/allocated'] = 'true';
    });
    expect((await update(h, pod, dual)).validated?.response.allowed).toBe(true);
    const other = edit(pod, (m) => (m.annotations['ovn.kubernetes.io/ip_address'] = '10.20.0.8'));
    expect(denial(await h.validate(podUpdate(pod, other)))).toContain(
      'ovn.kubernetes.io/ip_address (CNI Kube-OVN): cannot change on a running pod',
    );
    // A pod netpin did not pin: Kube-OVN records what it picked, once.
    const plain = await created(h, { 'example.com/x': 'y' }, 'plain');
    const recorded = edit(plain, (m) =>
      Object.assign(m.annotations, {
        'ovn.kubernetes.io/ip_address': '10.16.0.9',
        'ovn.kubernetes.io/logical_switch': 'ovn-default',
      }),
    );
    expect((await h.validate(podUpdate(plain, recorded))).response.allowed).toBe(true);
  });
});

describe('the words of a refused change to a running pod', () => {
  const RECREATE_FIX =
    'Fix: delete the pod and create it again with the new value; for a Deployment or StatefulSet, change its pod template and let it roll out';

  it.each<[string, (m: { annotations: Record<string, string>; labels: Record<string, string> }) => void, string]>([
    [
      'netpin.io/allocated',
      (m) => (m.annotations['netpin.io/allocated'] = '10.20.0.8'),
      "netpin.io/allocated (CNI Calico): cannot change on a running pod: it records the addresses netpin's ledger holds for this pod",
    ],
    [
      'netpin.io/ip',
      (m) => (m.annotations['netpin.io/ip'] = '10.20.0.8'),
      'netpin.io/ip (CNI Calico): cannot change on a running pod: Calico reads it only when the pod is created',
    ],
    [
      'the CNI address',
      (m) => (m.annotations['cni.projectcalico.org/ipAddrs'] = '["10.20.0.8"]'),
      'cni.projectcalico.org/ipAddrs (CNI Calico): cannot change on a running pod: Calico reads it only when the pod is created',
    ],
    [
      'a bandwidth annotation netpin wrote',
      (m) => (m.annotations['kubernetes.io/egress-bandwidth'] = '20M'),
      'kubernetes.io/egress-bandwidth (CNI Calico): cannot change on a running pod: netpin wrote it from the netpin.io/ annotations',
    ],
    [
      'the pinned label',
      (m) => delete m.labels['netpin.io/pinned'],
      'netpin.io/pinned (CNI Calico): is a label netpin set on this pod and cannot change on a running pod. Fix: restore netpin.io/pinned=true, or delete the pod',
    ],
    [
      'an egress label netpin did not set',
      (m) => (m.labels['netpin.io/egress'] = '203.0.113.1'),
      'netpin.io/egress (CNI Calico): is a label netpin set on this pod and cannot change on a running pod. Fix: restore netpin.io/egress=(absent), or delete the pod',
    ],
  ])('names what changing %s would break', async (_, change, words) => {
    const h = await harness();
    const pod = await created(h, { 'netpin.io/ip': '10.20.0.7', 'netpin.io/egress-rate': '10M' });
    for (const endpoint of ['mutate', 'validate'] as const) {
      const message = denial(await h[endpoint](podUpdate(pod, edit(pod, change))));
      expect(message.startsWith(words)).toBe(true);
      if (!words.includes('Fix: ')) expect(message).toBe(`${words}. ${RECREATE_FIX}`);
    }
  });

  it('allows removing a hand-written bandwidth annotation', async () => {
    const h = await harness();
    const plain = await created(h, { 'kubernetes.io/egress-bandwidth': '10M' }, 'plain');
    const removed = edit(plain, (m) => delete m.annotations['kubernetes.io/egress-bandwidth']);
    for (const endpoint of ['mutate', 'validate'] as const)
      expect((await h[endpoint](podUpdate(plain, removed))).response.allowed).toBe(true);
  });

  it('does not hold a pod to netpin.io/ annotations that never parsed (it was created before netpin looked)', async () => {
    const h = await harness();
    const before = podCreate({
      name: 'old',
      annotations: {
        'netpin.io/egress-rate': '10M',
        'netpin.io/pol': 'web',
        'kubernetes.io/egress-bandwidth': '10M',
      },
    }).request!.object!;
    const after = edit(before, (m) => (m.annotations['kubernetes.io/egress-bandwidth'] = '20M'));
    for (const endpoint of ['mutate', 'validate'] as const)
      expect((await h[endpoint](podUpdate(before, after))).response.allowed).toBe(true);
  });

  it('refuses a live rate change together with a change that is not live', async () => {
    const h = await harness({ cni: 'kube-ovn' });
    const pod = await created(h, { 'netpin.io/pool': 'web', 'netpin.io/egress-rate': '10M' });
    const both = edit(pod, (m) => {
      m.annotations['netpin.io/egress-rate'] = '20M';
      m.annotations['netpin.io/ip'] = '10.20.0.9';
    });
    expect(denial(await h.mutate(podUpdate(pod, both)))).toBe(
      `netpin.io/ip (CNI Kube-OVN): cannot change on a running pod: Kube-OVN reads it only when the pod is created. ${RECREATE_FIX}`,
    );
  });

  it("passes on the CNI's warnings for a live change, prefixed", async () => {
    const h = await harness({ cni: 'cilium' });
    const pod = await created(h, { 'netpin.io/pool': 'web', 'netpin.io/egress-rate': '10M' });
    const answer = await h.mutate(
      podUpdate(
        pod,
        edit(pod, (m) => (m.annotations['netpin.io/egress-rate'] = '20M')),
      ),
    );
    expect(answer.response.warnings).toEqual([
      'netpin: Cilium enforces kubernetes.io/*-bandwidth only with the bandwidth manager (bandwidthManager.enabled=true), and never on traffic between pods of the same node.',
      'netpin: Cilium does not keep a pod IP across restarts, StatefulSet pods included: pool addresses come in node-local blocks. Addresses that stay come from an IPPool with spec.cni.cilium.pinned: true.',
    ]);
  });

  it('applies a live rate to a Cilium pod whose IPPool was deleted since, keeping its pool annotation', async () => {
    const h = await harness({ cni: 'cilium' });
    const pod = await created(h, { 'netpin.io/pool': 'web', 'netpin.io/egress-rate': '10M' });
    // Cilium's pods hold no claim in netpin's ledger, so nothing keeps the pool from going.
    expect(
      (await h.validate(ippoolReview('DELETE', 'web', undefined, { cidr: '10.20.0.0/24' }))).response.allowed,
    ).toBe(true);
    h.ledger.index.removePool('web');
    const { mutated, validated, result } = await update(
      h,
      pod,
      edit(pod, (m) => (m.annotations['netpin.io/egress-rate'] = '20M')),
    );
    expect(mutated.response.allowed).toBe(true);
    expect(result!.metadata!.annotations).toMatchObject({
      'kubernetes.io/egress-bandwidth': '20M',
      'ipam.cilium.io/ip-pool': 'web-pool',
    });
    expect(validated?.response.allowed).toBe(true);
  });

  it('refuses a netpin.io/allocated that is not an address on a running pod, with a live change beside it', async () => {
    const h = await harness({ cni: 'cilium' });
    const pod = await created(h, { 'netpin.io/pool': 'web', 'netpin.io/egress-rate': '10M' });
    const garbled = edit(pod, (m) => {
      m.annotations['netpin.io/egress-rate'] = '20M';
      m.annotations['netpin.io/allocated'] = 'garbage';
    });
    for (const endpoint of ['mutate', 'validate'] as const)
      expect(denial(await h[endpoint](podUpdate(pod, garbled)))).toContain(
        "netpin.io/allocated (CNI Cilium): cannot change on a running pod: it records the addresses netpin's ledger holds for this pod",
      );
  });
});

describe('the Deployment scale subresource', () => {
  it('refuses replicas a fixed address cannot serve, as `kubectl scale` and the HPA send them', async () => {
    const h = await harness();
    const created = await h.mutate(
      deployment('CREATE', {
        name: 'api',
        replicas: 1,
        strategy: { type: 'Recreate' },
        annotations: { 'netpin.io/ip': '10.20.0.7' },
      }),
    );
    expect(created.response.allowed).toBe(true);
    for (const endpoint of ['mutate', 'validate'] as const) {
      expect(denial(await h[endpoint](scaleUpdate('deployments', 'api', 3)))).toContain(
        'netpin.io/ip (CNI Calico): one fixed address cannot serve 3 replicas',
      );
    }
    expect((await h.mutate(scaleUpdate('deployments', 'api', 1))).response.allowed).toBe(true);
    expect((await h.mutate(scaleUpdate('deployments', 'api', 0))).response.allowed).toBe(true);
  });

  it('allows a Deployment it does not know, and one without an intent', async () => {
    const h = await harness();
    expect((await h.mutate(scaleUpdate('deployments', 'unknown', 9))).response.allowed).toBe(true);
    await h.mutate(deployment('CREATE', { name: 'plain', replicas: 1 }));
    expect((await h.mutate(scaleUpdate('deployments', 'plain', 9))).response.allowed).toBe(true);
  });
});
