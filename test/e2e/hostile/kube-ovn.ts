// Attack 4 of issue 20, on Kube-OVN: a tenant of one opted-in namespace names addresses of netpin's
// pools, or another team's egress address, through Kube-OVN's own annotations, which netpin's ledger
// would not know of. Kube-OVN's controller writes back the addresses it allocated
// (ovn.kubernetes.io/ip_address, once, after IPAM); netpin takes that write only as what it gave the
// pod, plus at most one address of another family that lies in no netpin pool (Kube-OVN's own IPAM
// on a dual-stack Subnet). snat, eip and the per-attachment keys choose addresses like ip_address,
// so only netpin writes them; and an egress address must lie in an egress pool the namespace may use.
import type { V1Pod } from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { apiMessage, createPool } from '../../../harness/cluster.js';
import { OPT_IN, type HostileEnv } from './env.js';

const OVN = 'ovn.kubernetes.io';
const IP_ADDRESS = `${OVN}/ip_address`;
/** Team a's namespace, and team b's, whose egress address team a tries to take. */
const A = 'ovn-a';
const B = 'ovn-b';
const SPEC = { containers: [{ name: 'app', image: 'registry.example/app:1' }], terminationGracePeriodSeconds: 0 };

export function kubeOvnGaps(env: HostileEnv): void {
  const create = (namespace: string, name: string, annotations: Record<string, string>): Promise<V1Pod> =>
    env.c.core.createNamespacedPod({ namespace, body: { metadata: { name, annotations }, spec: SPEC } });

  /** The API server's refusal of a pod CREATE, naming netpin's words; '' when the pod was created. */
  const refusal = (namespace: string, name: string, annotations: Record<string, string>): Promise<string> =>
    create(namespace, name, annotations).then(
      () => '',
      (e: unknown) => apiMessage(e),
    );

  /** The API server's refusal of a JSON patch of a pod's annotations; '' when it was applied. */
  const patchRefusal = (namespace: string, name: string, annotations: Record<string, string>): Promise<string> =>
    env.c.core
      .patchNamespacedPod({
        namespace,
        name,
        body: Object.entries(annotations).map(([k, value]) => ({
          op: 'add',
          path: `/metadata/annotations/${k.replaceAll('~', '~0').replaceAll('/', '~1')}`,
          value,
        })),
      })
      .then(
        () => '',
        (e: unknown) => apiMessage(e),
      );

  const annotationsOf = async (namespace: string, name: string) =>
    (await env.c.core.readNamespacedPod({ namespace, name })).metadata?.annotations ?? {};

  beforeAll(async () => {
    await env.use({ cni: 'kube-ovn' });
    await env.namespace(A, { ...OPT_IN, team: 'ovn-a' });
    await env.namespace(B, { ...OPT_IN, team: 'ovn-b' });
    await createPool(env.c, 'ovn-web', {
      cidr: '10.204.0.0/24',
      exclude: ['10.204.0.1'],
      cni: { kubeOvn: { subnet: 'ovn-web-subnet' } },
    });
    await createPool(env.c, 'ovn-web-v6', { cidr: 'fd00:204::/120', cni: { kubeOvn: { subnet: 'ovn-web-subnet' } } });
    // Team b's egress pool, whose gateway 198.18.204.1 is excluded; and one for team a.
    await createPool(env.c, 'ovn-out-b', {
      cidr: '198.18.204.0/28',
      exclude: ['198.18.204.1'],
      namespaceSelector: { matchLabels: { team: 'ovn-b' } },
      egress: {},
    });
    await createPool(env.c, 'ovn-out-a', {
      cidr: '198.18.204.16/28',
      namespaceSelector: { matchLabels: { team: 'ovn-a' } },
      egress: {},
    });
  });

  describe('a write-back is what netpin gave the pod, and at most one address of no netpin pool', () => {
    it('refuses a pod UPDATE that adds a pool address, or another address of its family, to what netpin gave', async () => {
      const pod = await create(A, 'pinned', { 'netpin.io/pool': 'ovn-web' });
      const given = pod.metadata!.annotations![IP_ADDRESS]!;
      expect(given).toMatch(/^10\.204\.0\.\d+$/);
      expect(pod.metadata!.annotations!['netpin.io/allocated']).toBe(given);
      // fd00:204::9 is a free address of IPPool ovn-web-v6: named here, the pod would be counted as its user.
      expect(await patchRefusal(A, 'pinned', { [IP_ADDRESS]: `${given},fd00:204::9` })).toContain(
        `${IP_ADDRESS} (CNI Kube-OVN): names fd00:204::9, an address of IPPool ovn-web-v6 that netpin did not give this pod`,
      );
      for (const value of [`${given},10.204.0.200`, '10.204.0.200', `${given},10.16.0.9`])
        expect(await patchRefusal(A, 'pinned', { [IP_ADDRESS]: value })).toContain(
          `${IP_ADDRESS} (CNI Kube-OVN): cannot change on a running pod: Kube-OVN reads it only when the pod is created`,
        );
      expect((await annotationsOf(A, 'pinned'))[IP_ADDRESS]).toBe(given);
      // What Kube-OVN's controller writes after IPAM on a dual-stack Subnet: netpin's address, and one
      // of the other family from its own IPAM, with the Subnet it used.
      expect(
        await patchRefusal(A, 'pinned', {
          [IP_ADDRESS]: `${given},fd00:16::9`,
          [`${OVN}/logical_switch`]: 'ovn-web-subnet',
          [`${OVN}/allocated`]: 'true',
        }),
      ).toBe('');
    });

    it('refuses a pool address written on a pod netpin gave no address, and takes one address of no pool, once', async () => {
      await create(A, 'unpinned', { 'netpin.io/egress-rate': '10M' });
      expect(await patchRefusal(A, 'unpinned', { [IP_ADDRESS]: '10.204.0.77' })).toContain(
        `${IP_ADDRESS} (CNI Kube-OVN): names 10.204.0.77, an address of IPPool ovn-web that netpin did not give this pod`,
      );
      expect(await patchRefusal(A, 'unpinned', { [IP_ADDRESS]: '10.16.0.9,10.16.0.10' })).toContain(
        `${IP_ADDRESS} (CNI Kube-OVN): cannot change on a running pod`,
      );
      expect(await patchRefusal(A, 'unpinned', { [IP_ADDRESS]: '10.16.0.9' })).toBe('');
      expect(await patchRefusal(A, 'unpinned', { [IP_ADDRESS]: '10.16.0.10' })).toContain(
        `${IP_ADDRESS} (CNI Kube-OVN): cannot change on a running pod`,
      );
      // An attachment's address likewise.
      const attachment = `net1.${A}.${OVN}/ip_address`;
      expect(await patchRefusal(A, 'unpinned', { [attachment]: '10.204.0.78' })).toContain(
        `${attachment} (CNI Kube-OVN): names 10.204.0.78, an address of IPPool ovn-web that netpin did not give this pod`,
      );
      // 10.204.0.77 and .78 are still netpin's to give.
      const next = await create(A, 'takes-77', { 'netpin.io/ip': '10.204.0.77' });
      expect(next.metadata!.annotations![IP_ADDRESS]).toBe('10.204.0.77');
    });
  });

  describe("snat, eip and the per-attachment keys are netpin's to write", () => {
    it("refuses another team's egress address written as snat or eip, naming the annotation, the CNI and the fix", async () => {
      const theirs = await create(B, 'theirs', { 'netpin.io/egress-pool': 'ovn-out-b' });
      const egress = theirs.metadata!.annotations![`${OVN}/snat`]!;
      expect(egress).toBe('198.18.204.2');
      for (const key of [`${OVN}/snat`, `${OVN}/eip`]) {
        for (const annotations of [{ [key]: egress }, { 'netpin.io/pool': 'ovn-web', [key]: egress }]) {
          expect(await refusal(A, 'mine', annotations)).toContain(
            `${key} (CNI Kube-OVN): is written by hand, so netpin's ledger does not know the address and no IPPool namespaceSelector applies. ` +
              'Fix: write netpin.io/ip, netpin.io/ips or netpin.io/pool instead (netpin.io/egress-ip or netpin.io/egress-pool for an egress address), and netpin writes this annotation',
          );
        }
      }
      // Nor on a running pod, where Kube-OVN would apply them.
      await create(A, 'running', { 'netpin.io/pool': 'ovn-web' });
      expect(await patchRefusal(A, 'running', { [`${OVN}/eip`]: egress })).toContain(
        `${OVN}/eip (CNI Kube-OVN): cannot change on a running pod`,
      );
    });

    it('refuses the per-attachment address keys written by hand', async () => {
      for (const key of [`net1.${A}.${OVN}/ip_address`, `net1.${A}.${OVN}/ip_pool`, `net1.${A}.${OVN}/snat`])
        expect(await refusal(A, 'attached', { [key]: '10.204.0.90' })).toContain(
          `${key} (CNI Kube-OVN): is written by hand`,
        );
    });
  });

  describe('an egress address comes from an egress pool the namespace may use', () => {
    it.each([
      ['outside every pool', '203.0.113.77'],
      ['the excluded gateway of an egress pool', '198.18.204.1'],
      ["another team's egress pool", '198.18.204.5'],
    ])('refuses netpin.io/egress-ip %s, in snat and eip mode', async (_, ip) => {
      for (const mode of ['snat', 'eip'])
        expect(await refusal(A, 'egress', { 'netpin.io/egress-ip': ip, 'netpin.io/egress-mode': mode })).toContain(
          `netpin.io/egress-ip (CNI Kube-OVN): ${ip} is no address of an egress pool this namespace may use, and Kube-OVN would send the pod's outbound traffic from it`,
        );
    });

    it("gives one of the team's own egress pool, and holds it against the other team", async () => {
      const mine = await create(A, 'egress-own', { 'netpin.io/egress-ip': '198.18.204.20' });
      expect(mine.metadata!.annotations![`${OVN}/snat`]).toBe('198.18.204.20');
      expect(await refusal(B, 'egress-other', { 'netpin.io/egress-ip': '198.18.204.20' })).toContain(
        'netpin.io/egress-ip (CNI Kube-OVN): 198.18.204.20 is no address of an egress pool this namespace may use',
      );
    });
  });
}
