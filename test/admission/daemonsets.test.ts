import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import type { Address } from '../../src/net/address.js';
import {
  admittedAnnotations,
  daemonSet,
  daemonSetPodCreate,
  denial,
  harness,
  podCreate,
  type Harness,
} from '../../harness/reviews.js';

const POOL = { 'netpin.io/pool': 'web' };
const ipOf = (s: string) => ipaddr.parse(s) as Address;

/** A harness whose cluster view knows DaemonSet agent of namespace shop by uid `live`. */
async function watching(live: string | undefined): Promise<Harness> {
  const h = await harness();
  const isLiveDaemonSet = async (namespace: string, name: string, uid: string) =>
    namespace === 'shop' && name === 'agent' && uid === live;
  Object.assign(h.cluster, { isLiveDaemonSet });
  return h;
}

/** Pod of DaemonSet agent for `node`, its ownerReference naming `uid`. */
function agentPod(node: string, uid = 'uid-agent') {
  const body = daemonSetPodCreate('agent', node, { annotations: POOL });
  body.request!.object!.metadata!.ownerReferences![0]!.uid = uid;
  return body;
}

const allocated = async (h: Harness, body: ReturnType<typeof agentPod>) =>
  admittedAnnotations(body, await h.mutate(body))['netpin.io/allocated'];

describe("a DaemonSet's pods", () => {
  it("give each node an address of the pool, kept for the node's next pod", async () => {
    const h = await watching('uid-agent');
    expect(await allocated(h, agentPod('n1'))).toBe('10.20.0.2');
    // The pod for n1 is deleted and replaced: a new name, the same node, the same address.
    expect(await allocated(h, agentPod('n1'))).toBe('10.20.0.2');
    expect(await allocated(h, agentPod('n2'))).toBe('10.20.0.3');
    expect(h.held()).toEqual({
      '10.20.0.2': 'DaemonSet/shop/agent/n1',
      '10.20.0.3': 'DaemonSet/shop/agent/n2',
    });
  });

  it("refuses a node's new pod while the pod it replaces still uses the node's address, and admits it once that pod is gone", async () => {
    const h = await watching('uid-agent');
    const first = agentPod('n1');
    expect(await allocated(h, first)).toBe('10.20.0.2');
    // The first pod runs under its generated name; the DaemonSet controller makes the next one while it terminates.
    const index = h.deps.allocator.ledger.index;
    index.observe('shop/agent-abcde', [ipOf('10.20.0.2')]);
    const refusal = denial(await h.mutate(agentPod('n1')));
    expect(refusal).toContain(
      '10.20.0.2, the address DaemonSet agent keeps for node n1, is still used by pod shop/agent-abcde, which has not ended yet',
    );
    expect(h.held()).toEqual({ '10.20.0.2': 'DaemonSet/shop/agent/n1' });
    index.observe('shop/agent-abcde', []);
    expect(await allocated(h, agentPod('n1'))).toBe('10.20.0.2');
  });

  it('refuses a pod whose ownerReference names the DaemonSet with a forged uid, claiming nothing', async () => {
    const h = await watching('uid-agent');
    expect(await allocated(h, agentPod('n1'))).toBe('10.20.0.2');
    const forged = agentPod('n1', 'uid-forged');
    const refusal = denial(await h.mutate(forged));
    expect(refusal).toContain(
      'metadata.ownerReferences (CNI Calico): names DaemonSet "agent" with uid "uid-forged" as the controller of pod "", and no live DaemonSet of namespace shop has that name and uid',
    );
    expect(refusal).toContain('Fix: let DaemonSet "agent" create its pods');
    // The validating webhook refuses it too (and the records the mutating one would have written).
    expect(denial(await h.validate(forged))).toContain(refusal);
    expect(h.held()).toEqual({ '10.20.0.2': 'DaemonSet/shop/agent/n1' });
  });

  it('admits a pod of the DaemonSet pinned to no single node as a bare pod, with an address of its own', async () => {
    const h = await watching('uid-agent');
    const body = podCreate({ name: 'agent-x', owner: { kind: 'DaemonSet', name: 'agent' }, annotations: POOL });
    expect(admittedAnnotations(body, await h.mutate(body))['netpin.io/allocated']).toBe('10.20.0.2');
    expect(h.held()).toEqual({ '10.20.0.2': 'Pod/shop/agent-x' });
  });
});

describe('DaemonSet admission', () => {
  it('allows netpin.io/pool on the template, claiming nothing', async () => {
    const h = await harness();
    for (const endpoint of ['mutate', 'validate'] as const) {
      const answer = await h[endpoint](daemonSet('CREATE', { name: 'agent', annotations: POOL }));
      expect(answer.response).toMatchObject({ allowed: true });
      expect(answer.response.patch).toBeUndefined();
    }
    expect(h.held()).toEqual({});
  });

  it.each([
    ['netpin.io/ip', '10.20.0.7'],
    ['netpin.io/ips', '10.20.0.7;10.20.0.8'],
  ])('refuses %s on the template, naming netpin.io/pool as the fix', async (key, value) => {
    const h = await harness();
    const refusal = denial(await h.mutate(daemonSet('CREATE', { name: 'agent', annotations: { [key]: value } })));
    expect(refusal).toBe(
      `${key} (CNI Calico): DaemonSet agent runs one pod on every node it fits, and how many that is is not known at apply: fixed addresses cannot be given out one per node. ` +
        "Fix: use netpin.io/pool: each node gets an address of the pool, kept for that node across its pod's restarts and rollouts",
    );
  });

  /** A DaemonSet of the web pool with this update strategy. */
  function withStrategy(operation: 'CREATE' | 'UPDATE', updateStrategy: object) {
    const body = daemonSet(operation, { name: 'agent', annotations: POOL });
    body.request!.object!.spec!.updateStrategy = updateStrategy;
    return body;
  }

  it.each([1, '10%'])(
    'refuses a rolling update with maxSurge %s: the new pod would wait for the old one forever',
    async (maxSurge) => {
      const h = await harness();
      const refusal = denial(await h.mutate(withStrategy('CREATE', { rollingUpdate: { maxSurge } })));
      expect(refusal).toContain(
        `netpin.io/pool (CNI Calico): DaemonSet agent sets updateStrategy.rollingUpdate.maxSurge "${maxSurge}"`,
      );
      expect(refusal).toContain('Fix: set spec.updateStrategy.rollingUpdate.maxSurge to 0');
      // Set by an UPDATE alone too, the template unchanged.
      const update = withStrategy('UPDATE', { rollingUpdate: { maxSurge } });
      update.request!.oldObject = daemonSet('CREATE', { name: 'agent', annotations: POOL }).request!.object;
      expect(denial(await h.mutate(update))).toContain('maxSurge');
    },
  );

  it.each([
    ['maxSurge 0%', { rollingUpdate: { maxSurge: '0%', maxUnavailable: 1 } }],
    ['OnDelete', { type: 'OnDelete', rollingUpdate: { maxSurge: 1 } }],
    ['the default', {}],
  ])('allows %s', async (_, strategy) => {
    const h = await harness();
    expect((await h.mutate(withStrategy('CREATE', strategy))).response.allowed).toBe(true);
  });

  it('refuses a template naming a pool the namespace may not use', async () => {
    const h = await harness();
    const answer = await h.validate(daemonSet('CREATE', { name: 'agent', annotations: { 'netpin.io/pool': 'db' } }));
    expect(answer.response.allowed).toBe(false);
  });
});
