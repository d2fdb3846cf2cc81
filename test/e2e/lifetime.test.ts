// A pod's whole life on a real API server: what people, GitOps tools and controllers do to pods
// and workloads after they were admitted, and what the cluster already runs when netpin starts.
// The controllers create the pods; nothing schedules or runs them, so they stay Pending.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import { applyCalicoIPPoolCrd, createCalicoPool } from '../../harness/cni-crds.js';
import {
  calicoIps,
  createPool,
  listClaims,
  podsWithPrefix,
  refusal,
  waitFor,
  type Clients,
} from '../../harness/cluster.js';
import { startFixture, type Fixture } from '../../harness/fixture.js';

const NS = 'shop';
const LEGACY = 'legacy';
// Short, so that the reconciler has had every chance to release what it should not.
const GRACE_SECONDS = 3;
const SWEEP_MS = 5_000;

let fixture: Fixture | undefined;
let c: Clients;

const spec = { containers: [{ name: 'app', image: 'registry.example/app:1' }], terminationGracePeriodSeconds: 0 };

function deploymentBody(
  name: string,
  annotations: Record<string, string>,
  extra: Partial<NonNullable<V1Deployment['spec']>> = {},
): V1Deployment {
  return {
    metadata: { name },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name }, annotations }, spec },
      ...extra,
    },
  };
}

const patchPod = (name: string, body: object[], namespace = NS) => c.core.patchNamespacedPod({ name, namespace, body });
const optIn = (value: string) =>
  c.core.patchNamespace({ name: NS, body: [{ op: 'replace', path: '/metadata/labels/netpin.io~1enabled', value }] });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function onlyPod(prefix: string): Promise<V1Pod> {
  return waitFor(`one pod ${prefix}*`, async () => {
    const pods = await podsWithPrefix(c, NS, prefix);
    return pods.length === 1 ? pods[0] : undefined;
  });
}

beforeAll(async () => {
  fixture = await startFixture({
    namespaces: { [NS]: { 'netpin.io/enabled': 'true' }, [LEGACY]: {} },
    pools: { life: { cidr: '10.80.0.0/24' }, tight: { ranges: ['10.81.0.1-10.81.0.2'] } },
    // Pods from before netpin, in a namespace that never opted in, already using pool addresses.
    beforeNetpin: async (c) => {
      for (const [name, ip] of [
        ['old-timer', '10.80.0.21'],
        ['old-timer-2', '10.81.0.1'],
      ] as const) {
        const old = await c.core.createNamespacedPod({ namespace: LEGACY, body: { metadata: { name }, spec } });
        old.status = { phase: 'Running', podIP: ip, podIPs: [{ ip }] };
        await c.core.replaceNamespacedPodStatus({ name, namespace: LEGACY, body: old });
      }
    },
    netpin: { claimGraceSeconds: GRACE_SECONDS },
  });
  c = fixture.c;
});

afterAll(async () => {
  await fixture?.stop();
});

describe('a running pod', () => {
  it('refuses at apply a change to what netpin gave it, saying to recreate the pod', async () => {
    await c.core.createNamespacedPod({
      namespace: NS,
      body: { metadata: { name: 'fixed', annotations: { 'netpin.io/ip': '10.80.0.10' } }, spec },
    });
    const label = await refusal(patchPod('fixed', [{ op: 'remove', path: '/metadata/labels/netpin.io~1pinned' }]));
    expect(label).toContain('netpin.io/pinned (CNI Calico): is a label netpin set on this pod');
    const ip = await refusal(
      patchPod('fixed', [{ op: 'replace', path: '/metadata/annotations/netpin.io~1ip', value: '10.80.0.11' }]),
    );
    expect(ip).toContain('netpin.io/ip (CNI Calico): cannot change on a running pod');
    expect(ip).toContain('Fix: delete the pod and create it again');
    const cni = await refusal(
      patchPod('fixed', [
        { op: 'replace', path: '/metadata/annotations/cni.projectcalico.org~1ipAddrs', value: '["10.80.0.11"]' },
      ]),
    );
    expect(cni).toContain('cni.projectcalico.org/ipAddrs (CNI Calico): cannot change on a running pod');
    // What is not netpin's still changes.
    await patchPod('fixed', [{ op: 'add', path: '/metadata/labels/tier', value: 'front' }]);
    const pod = await c.core.readNamespacedPod({ name: 'fixed', namespace: NS });
    expect(pod.metadata?.labels).toMatchObject({ tier: 'front', 'netpin.io/pinned': 'true' });
    expect(calicoIps(pod)).toEqual(['10.80.0.10']);
  });

  it('keeps its address held whatever is done to its metadata where netpin cannot refuse it', async () => {
    await c.apps.createNamespacedDeployment({
      namespace: NS,
      body: deploymentBody('api', { 'netpin.io/pool': 'life' }),
    });
    const pod = await onlyPod('api-');
    const ip = calicoIps(pod)[0]!;
    // The reconciler names the pod in the claim the webhook made before the pod had a name.
    await waitFor(
      'the claim bound to the pod',
      async () => (await listClaims(c, 'life')).find((x) => x.ip === ip && x.owner.name === pod.metadata!.name),
      30_000,
      500,
    );

    // Out of netpin's sight (the namespace opted out for a moment), a tool strips everything netpin wrote.
    await optIn('false');
    try {
      await patchPod(pod.metadata!.name!, [
        { op: 'remove', path: '/metadata/labels/netpin.io~1pinned' },
        { op: 'remove', path: '/metadata/annotations/netpin.io~1allocated' },
        { op: 'remove', path: '/metadata/annotations/cni.projectcalico.org~1ipAddrs' },
      ]);
    } finally {
      await optIn('true');
    }
    await sleep(GRACE_SECONDS * 1000 + 3 * SWEEP_MS);
    expect((await listClaims(c, 'life')).some((x) => x.ip === ip)).toBe(true);
    const taken = await refusal(
      c.core.createNamespacedPod({
        namespace: NS,
        body: { metadata: { name: 'thief', annotations: { 'netpin.io/ip': ip } }, spec },
      }),
    );
    expect(taken).toContain(`${ip} is held by pod ${NS}/${pod.metadata!.name}`);

    // Gone with its pod.
    await c.apps.deleteNamespacedDeployment({ name: 'api', namespace: NS });
    await waitFor(
      'the address to be released',
      async () => !(await listClaims(c, 'life')).some((x) => x.ip === ip),
      60_000,
      500,
    );
  });
});

describe('addresses netpin did not give', () => {
  it('are never handed out: pods from before netpin, and pods outside opted-in namespaces', async () => {
    // Seen at start, from status.podIPs.
    const message = await refusal(
      c.core.createNamespacedPod({
        namespace: NS,
        body: { metadata: { name: 'late', annotations: { 'netpin.io/ip': '10.80.0.21' } }, spec },
      }),
    );
    expect(message).toContain('10.80.0.21 is held by pod legacy/old-timer, which uses it without a netpin claim');
    const tight = await c.core.createNamespacedPod({
      namespace: NS,
      body: { metadata: { name: 'tight-1', annotations: { 'netpin.io/pool': 'tight' } }, spec },
    });
    expect(calicoIps(tight)).toEqual(['10.81.0.2']);
    // Seen through the watch: a pod created later by hand in a namespace netpin does not admit, and
    // scheduled (outside opted-in namespaces, the CNI's annotation counts only on a pod a node runs).
    await c.core.createNamespacedPod({
      namespace: LEGACY,
      body: {
        metadata: { name: 'hand-made', annotations: { 'cni.projectcalico.org/ipAddrs': '["10.80.0.22"]' } },
        spec: { ...spec, nodeName: 'node-1' },
      },
    });
    const second = await waitFor(
      'netpin to see the hand-made pod',
      async () => {
        const m = await refusal(
          c.core.createNamespacedPod({
            namespace: NS,
            body: { metadata: { name: 'late-2', annotations: { 'netpin.io/ip': '10.80.0.22' } }, spec },
          }),
        );
        return m.includes('held by pod legacy/hand-made') ? m : undefined;
      },
      15_000,
      500,
    );
    expect(second).toContain('Fix: choose a free address such as 10.80.0.1');
  });
});

describe('a pool created a moment ago', () => {
  it('serves the pods that name it at once, though the watch has not brought it yet', async () => {
    for (let i = 0; i < 3; i++) {
      await createPool(c, `fresh-${i}`, { cidr: `10.82.${i}.0/24` });
      const pod = await c.core.createNamespacedPod({
        namespace: NS,
        body: { metadata: { name: `fresh-${i}`, annotations: { 'netpin.io/pool': `fresh-${i}` } }, spec },
      });
      expect(calicoIps(pod)).toEqual([`10.82.${i}.1`]);
      const fixed = await c.core.createNamespacedPod({
        namespace: NS,
        body: { metadata: { name: `fresh-fixed-${i}`, annotations: { 'netpin.io/ip': `10.82.${i}.9` } }, spec },
      });
      expect(calicoIps(fixed)).toEqual([`10.82.${i}.9`]);
    }
  });
});

describe('workloads', () => {
  it.each<[string, V1Deployment, string[]]>([
    [
      'a bad hand-written bandwidth value in the template',
      deploymentBody('bw', { 'kubernetes.io/egress-bandwidth': '10Mbps' }),
      ['kubernetes.io/egress-bandwidth (CNI Calico)', 'containerd would refuse the pod sandbox'],
    ],
    [
      'a hand-written CNI address in the template',
      deploymentBody('hand', { 'cni.projectcalico.org/ipAddrs': '["10.80.0.40"]' }),
      ['cni.projectcalico.org/ipAddrs (CNI Calico): is written by hand'],
    ],
    [
      'a fixed address on a Deployment that can surge',
      deploymentBody('surge', { 'netpin.io/ip': '10.80.0.41' }),
      ['a rolling update (maxSurge 25%)', 'Fix: set spec.strategy.type: Recreate'],
    ],
  ])('refuses %s at apply', async (_, body, parts) => {
    const message = await refusal(c.apps.createNamespacedDeployment({ namespace: NS, body }));
    for (const part of parts) expect(message).toContain(part);
  });

  it('refuses `kubectl scale` through the subresource past what a fixed address serves', async () => {
    await c.apps.createNamespacedDeployment({
      namespace: NS,
      body: deploymentBody('one', { 'netpin.io/ip': '10.80.0.30' }, { strategy: { type: 'Recreate' } }),
    });
    const message = await refusal(
      c.apps.replaceNamespacedDeploymentScale({
        name: 'one',
        namespace: NS,
        body: { metadata: { name: 'one', namespace: NS }, spec: { replicas: 3 } },
      }),
    );
    expect(message).toContain('netpin.io/ip (CNI Calico): one fixed address cannot serve 3 replicas');
    expect((await c.apps.readNamespacedDeployment({ name: 'one', namespace: NS })).spec?.replicas).toBe(1);
  });

  it('rolls out a Recreate Deployment with a fixed address, which passes from the old pod to the new', async () => {
    const before = await onlyPod('one-');
    expect(calicoIps(before)).toEqual(['10.80.0.30']);
    const started = Date.now();
    await c.apps.patchNamespacedDeployment({
      name: 'one',
      namespace: NS,
      body: [{ op: 'replace', path: '/spec/template/spec/containers/0/image', value: 'registry.example/app:2' }],
    });
    const after = await waitFor(
      'the new pod with the same address',
      async () => {
        const pods = await podsWithPrefix(c, NS, 'one-');
        return pods.length === 1 && pods[0]!.metadata!.uid !== before.metadata!.uid ? pods[0] : undefined;
      },
      120_000,
      250,
    );
    expect(calicoIps(after)).toEqual(['10.80.0.30']);
    console.log(
      `netpin: 10.80.0.30 passed from the old pod to the new in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  });
});

// Last: once Calico's IPPool CRD is served, every netpin IPPool must lie in a Calico IPPool.
describe('on Calico', () => {
  it('refuses a netpin IPPool over an auto-assigning or disabled Calico IPPool, and accepts one over a manual one', async () => {
    await applyCalicoIPPoolCrd(c);
    await createCalicoPool(c, 'default-ipv4', { cidr: '10.90.0.0/16' });
    await createCalicoPool(c, 'off', { cidr: '10.92.0.0/24', disabled: true, nodeSelector: '!all()' });
    await createCalicoPool(c, 'pinned', { cidr: '10.91.0.0/24', nodeSelector: '!all()' });
    const auto = await refusal(createPool(c, 'on-auto', { cidr: '10.90.1.0/24' }));
    expect(auto).toContain(
      'IPPool on-auto: spec.cidr (CNI Calico): 10.90.1.1-10.90.1.254 lies in Calico IPPool default-ipv4, which Calico assigns from by itself',
    );
    expect(auto).toContain('set assignmentMode: Manual (before Calico 3.30: nodeSelector: "!all()")');
    expect(await refusal(createPool(c, 'on-off', { cidr: '10.92.0.0/25' }))).toContain('which is disabled');
    expect(await refusal(createPool(c, 'nowhere', { cidr: '10.93.0.0/25' }))).toContain('lies in no Calico IPPool');
    await createPool(c, 'on-pinned', { cidr: '10.91.0.0/25', cni: { calico: { pool: 'pinned' } } });
    const pod = await c.core.createNamespacedPod({
      namespace: NS,
      body: { metadata: { name: 'on-calico', annotations: { 'netpin.io/pool': 'on-pinned' } }, spec },
    });
    expect(calicoIps(pod)).toEqual(['10.91.0.1']);
  });
});
