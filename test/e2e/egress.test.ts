// Egress addresses on Antrea and Cilium, managed: egress pools, and the Egress, ExternalIPPool and
// CiliumEgressGatewayPolicy objects netpin keeps in the API server, with the CNIs' real CRDs
// (Cilium's from its Go module; Antrea's written from its API types). Nothing runs the pods or a
// CNI here: what is proven is what netpin keeps in the API server, and what the CRDs accept.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { V1Deployment } from '@kubernetes/client-node';
import { applyAntreaEgressCrds, applyCiliumEgressCrd } from '../../harness/cni-crds.js';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.js';
import {
  apiMessage,
  applyCrds,
  clients,
  createNamespace,
  createPool,
  listClaims,
  podsWithPrefix,
  registerWebhooks,
  waitFor,
  type Clients,
} from '../../harness/cluster.js';
import { startNetpin, type Netpin } from '../../harness/netpin.js';
import { clientFromKubeconfig, kube } from '../../harness/rest.js';
import { toObject } from '../../src/cluster/kube-ledger.js';
import { parseAddress } from '../../src/net/address.js';
import type { WireJson } from '../../harness/json.js';

const NS = 'shop';
const GRACE_SECONDS = 3;
// Longer than the claim grace: an egress claim made long ago is kept this long after its last pod.
const EGRESS_GRACE_SECONDS = 8;
const EXTRA_ARGS = ['--egress-excluded-cidrs', '10.0.0.0/8,fd00::/8', '--egress-grace', String(EGRESS_GRACE_SECONDS)];
// IPClaims of no pool, for a ledger whose list takes longer than a reconciler round at one claim a page.
const FILLERS = 6_000;
const GATEWAY = { matchLabels: { 'egress-gateway': 'yes' } };

let cp: ControlPlane;
let c: Clients;
let port = 0;
let certDir: string | undefined;

const spec = { containers: [{ name: 'app', image: 'registry.example/app:1' }], terminationGracePeriodSeconds: 0 };

function deployment(name: string, replicas: number, annotations: Record<string, string>): V1Deployment {
  return {
    metadata: { name },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name }, annotations }, spec },
    },
  };
}

interface Managed {
  metadata: { name: string; uid?: string; labels?: Record<string, string>; resourceVersion?: string };
  spec: Record<string, WireJson>;
}

beforeAll(async () => {
  cp = await startControlPlane();
  c = clients(cp.kubeconfigPath);
  await applyCrds(c);
  await applyAntreaEgressCrds(c);
  await applyCiliumEgressCrd(c);
  await createNamespace(c, NS, { 'netpin.io/enabled': 'true' });
  for (const ns of ['lease-antrea', 'lease-cilium']) await createNamespace(c, ns);
  // One pool for both families: each workload gets an IPv4 and an IPv6 egress address.
  await createPool(c, 'out', { ranges: ['203.0.113.0/28', '2001:db8::/124'], egress: { nodeSelector: GATEWAY } });
  await createPool(c, 'no-gateway', { cidr: '198.51.100.0/28', egress: {} });
});

afterAll(async () => {
  await cp?.stop();
});

describe.each([
  {
    cni: 'antrea',
    group: 'crd.antrea.io',
    version: 'v1beta1',
    plural: 'egresses',
    ip: (o: Managed) => o.spec.egressIP as string,
  },
  {
    cni: 'cilium',
    group: 'cilium.io',
    version: 'v2',
    plural: 'ciliumegressgatewaypolicies',
    ip: (o: Managed) => o.spec.egressGateway.egressIP as string,
  },
])('on $cni', ({ cni, group, version, plural, ip }) => {
  let netpin: Netpin;
  const managed = async (): Promise<Managed[]> =>
    (
      (await c.custom.listClusterCustomObject({
        group,
        version,
        plural,
        labelSelector: 'app.kubernetes.io/managed-by=netpin',
      })) as { items: Managed[] }
    ).items;
  const byAddress = async (address: string) => (await managed()).find((o) => ip(o) === address);
  const egressOf = async (prefix: string) => {
    const pods = await waitFor(`3 ${prefix} pods`, async () => {
      const p = await podsWithPrefix(c, NS, prefix);
      return p.length === 3 ? p : undefined;
    });
    return pods;
  };

  beforeAll(async () => {
    netpin = await startNetpin({
      kubeconfig: cp.kubeconfigPath,
      cni,
      port,
      certDir,
      claimGraceSeconds: GRACE_SECONDS,
      leaseNamespace: `lease-${cni}`,
      extraArgs: EXTRA_ARGS,
    });
    // Later runs reuse the port and certificate, so that the webhooks registered once stay right.
    if (port === 0) await registerWebhooks(c, netpin, cp.binDir);
    port = netpin.port;
    certDir = netpin.certDir;
  });

  afterAll(async () => {
    await netpin?.stop();
  });

  it('gives a Deployment of 3 one address per family, and keeps a resource per address selecting exactly its pods', async () => {
    await c.apps.createNamespacedDeployment({
      namespace: NS,
      body: deployment(`api-${cni}`, 3, { 'netpin.io/egress-pool': 'out' }),
    });
    const pods = await egressOf(`api-${cni}-`);
    const label = pods[0]!.metadata!.labels!['netpin.io/egress']!;
    // A valid label value for both families (the API server accepted the pods).
    expect(label).toMatch(/^203\.0\.113\.\d+_2001-db8--\w+$/);
    for (const p of pods) {
      expect(p.metadata!.labels!['netpin.io/egress']).toBe(label);
      expect(p.metadata!.annotations!['netpin.io/egress-allocated']).toBe(
        pods[0]!.metadata!.annotations!['netpin.io/egress-allocated'],
      );
    }
    const [v4, v6] = pods[0]!.metadata!.annotations!['netpin.io/egress-allocated']!.split(',') as [string, string];
    const resources = await waitFor(
      `the ${plural} of ${v4} and ${v6}`,
      async () => {
        const r = [await byAddress(v4), await byAddress(v6)];
        return r.every(Boolean) ? (r as Managed[]) : undefined;
      },
      30_000,
      500,
    );
    for (const r of resources) {
      // The selector, applied as the CNI applies it, selects exactly the Deployment's 3 pods.
      const selector =
        cni === 'antrea' ? r.spec.appliedTo.podSelector.matchLabels : r.spec.selectors[0].podSelector.matchLabels;
      const namespace =
        cni === 'antrea'
          ? r.spec.appliedTo.namespaceSelector.matchLabels['kubernetes.io/metadata.name']
          : selector['io.kubernetes.pod.namespace'];
      expect(namespace).toBe(NS);
      const podLabels = Object.entries(selector)
        .filter(([k]) => k !== 'io.kubernetes.pod.namespace')
        .map(([k, v]) => `${k}=${v}`)
        .join(',');
      const selected = (await c.core.listNamespacedPod({ namespace: NS, labelSelector: podLabels })).items.filter(
        (p) => !p.metadata?.deletionTimestamp,
      );
      expect(selected.map((p) => p.metadata!.name).sort()).toEqual(pods.map((p) => p.metadata!.name).sort());
    }
    if (cni === 'antrea') {
      expect(resources[0]!.spec.externalIPPool).toBe('netpin-out');
      const pool = (await c.custom.getClusterCustomObject({
        group,
        version,
        plural: 'externalippools',
        name: 'netpin-out',
      })) as Managed;
      expect(pool.spec).toEqual({
        ipRanges: [
          { start: '203.0.113.1', end: '203.0.113.14' },
          { start: '2001:db8::1', end: '2001:db8::f' },
        ],
        nodeSelector: GATEWAY,
      });
    } else {
      expect(resources[0]!.spec).toMatchObject({
        destinationCIDRs: ['0.0.0.0/0'],
        excludedCIDRs: ['10.0.0.0/8'],
        egressGateway: { nodeSelector: GATEWAY },
      });
      expect(resources[1]!.spec).toMatchObject({ destinationCIDRs: ['::/0'], excludedCIDRs: ['fd00::/8'] });
    }
  });

  it('gives a second workload another address', async () => {
    await c.apps.createNamespacedDeployment({
      namespace: NS,
      body: deployment(`web-${cni}`, 3, { 'netpin.io/egress-pool': 'out' }),
    });
    const [api, web] = [await egressOf(`api-${cni}-`), await egressOf(`web-${cni}-`)];
    expect(web[0]!.metadata!.annotations!['netpin.io/egress-allocated']).not.toBe(
      api[0]!.metadata!.annotations!['netpin.io/egress-allocated'],
    );
  });

  if (cni === 'antrea') {
    it('a new leader whose ledger is still listing deletes no managed resource', async () => {
      // Both workloads' resources, one per address and family, as the leader has written them.
      const before = await waitFor('4 managed Egresses', async () => {
        const all = await managed();
        return all.length === 4 ? new Map(all.map((o) => [o.metadata.name, o.metadata.uid])) : undefined;
      });
      // Claims named by address list before the egress ones (10... sorts before 2...), so the new
      // leader's index lacks the egress claims for most of its list, one claim a page.
      const fillers = Array.from({ length: FILLERS }, (_, i) =>
        toObject({
          pool: 'filler',
          ip: parseAddress(`10.200.${i >> 8}.${i & 255}`)!,
          owner: { kind: 'StatefulSet', namespace: 'filler', name: 'f', ordinal: i },
          createdAt: Date.now(),
        }),
      );
      // Their StatefulSet exists, so that they are reserved, not stale: the sweep has nothing to release
      // and the round goes on to the egress resources at once.
      await createNamespace(c, 'filler');
      await c.apps.createNamespacedStatefulSet({
        namespace: 'filler',
        body: {
          metadata: { name: 'f' },
          spec: {
            replicas: 0,
            serviceName: 'f',
            selector: { matchLabels: { app: 'f' } },
            template: { metadata: { labels: { app: 'f' } }, spec },
          },
        },
      });
      const rest = clientFromKubeconfig(cp.kubeconfigPath);
      for (let i = 0; i < fillers.length; i += 25)
        await Promise.all(
          fillers.slice(i, i + 25).map(async (body) => {
            const r = await kube(rest, 'POST', '/apis/netpin.io/v1alpha1/ipclaims', body);
            if (r.status !== 201) throw new Error(`creating a filler claim: ${r.status}`);
          }),
        );
      await netpin.stop();
      const started = Date.now();
      netpin = await startNetpin({
        kubeconfig: cp.kubeconfigPath,
        cni,
        port,
        certDir,
        claimGraceSeconds: GRACE_SECONDS,
        leaseNamespace: `lease-${cni}`,
        extraArgs: [...EXTRA_ARGS, '--claims-page', '1'],
      });
      // The list outlasted a reconciler round, so the leader had its chance to act on a partial view.
      expect(Date.now() - started).toBeGreaterThan(6_000);
      // A few rounds on the complete view, then the same objects: none deleted and created again.
      await new Promise((r) => setTimeout(r, 11_000));
      const after = new Map((await managed()).map((o) => [o.metadata.name, o.metadata.uid]));
      expect(after).toEqual(before);
      const gone = await kube(
        rest,
        'DELETE',
        '/apis/netpin.io/v1alpha1/ipclaims?labelSelector=netpin.io%2Fpool%3Dfiller',
      );
      expect(gone.status).toBe(200);
    });
  }

  it('refuses an egress-ip another workload holds, naming it', async () => {
    const [held] = (await egressOf(`api-${cni}-`))[0]!.metadata!.annotations!['netpin.io/egress-allocated']!.split(',');
    const err = await c.core
      .createNamespacedPod({
        namespace: NS,
        body: { metadata: { name: `thief-${cni}`, annotations: { 'netpin.io/egress-ip': held! } }, spec },
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(apiMessage(err)).toContain(`${held} is held by the egress of Deployment ${NS}/api-${cni}`);
  });

  it('puts back a resource edited by hand', async () => {
    const [v4] = (await egressOf(`api-${cni}-`))[0]!.metadata!.annotations!['netpin.io/egress-allocated']!.split(',');
    const before = (await byAddress(v4!))!;
    const edited = structuredClone(before);
    if (cni === 'antrea') edited.spec.appliedTo.podSelector = { matchLabels: { anything: 'else' } };
    else edited.spec.egressGateway.interface = 'eth1';
    await c.custom.replaceClusterCustomObject({ group, version, plural, name: before.metadata.name, body: edited });
    await waitFor(
      'the resource put back',
      async () => {
        const now = await byAddress(v4!);
        return now && JSON.stringify(now.spec) === JSON.stringify(before.spec) ? true : undefined;
      },
      30_000,
      500,
    );
  });

  it('keeps a workload its egress address across a scale to 0 and back within the egress grace period', async () => {
    const scale = (replicas: number) =>
      c.apps.patchNamespacedDeploymentScale({
        name: `web-${cni}`,
        namespace: NS,
        body: [{ op: 'replace', path: '/spec/replicas', value: replicas }],
      });
    const before = (await egressOf(`web-${cni}-`))[0]!.metadata!.annotations!['netpin.io/egress-allocated'];
    await scale(0);
    await waitFor('web scaled to 0', async () => (await podsWithPrefix(c, NS, `web-${cni}-`)).length === 0);
    // Past the claim grace, which the egress claim, made long ago, is well beyond: only the time since its
    // last pod may count.
    await new Promise((r) => setTimeout(r, (GRACE_SECONDS + 2) * 1000));
    await scale(3);
    const after = (await egressOf(`web-${cni}-`))[0]!.metadata!.annotations!['netpin.io/egress-allocated'];
    expect(after).toBe(before);
  });

  it('deletes the resources once the Deployment is scaled to 0 and deleted, after the grace period', async () => {
    const addresses = (await egressOf(`api-${cni}-`))[0]!.metadata!.annotations!['netpin.io/egress-allocated']!.split(
      ',',
    );
    await c.apps.patchNamespacedDeploymentScale({
      name: `api-${cni}`,
      namespace: NS,
      body: [{ op: 'replace', path: '/spec/replicas', value: 0 }],
    });
    await c.apps.deleteNamespacedDeployment({ name: `api-${cni}`, namespace: NS });
    await waitFor(
      'the claims and resources gone',
      async () => {
        const claims = (await listClaims(c, 'out')).map((x) => x.ip);
        const left = await Promise.all(addresses.map(byAddress));
        return addresses.every((a) => !claims.includes(a)) && left.every((r) => r === undefined) ? true : undefined;
      },
      60_000,
      500,
    );
    // The other workload keeps its own.
    const web = (await egressOf(`web-${cni}-`))[0]!.metadata!.annotations!['netpin.io/egress-allocated']!.split(',');
    for (const a of web) expect(await byAddress(a)).toBeDefined();
    await c.apps.deleteNamespacedDeployment({ name: `web-${cni}`, namespace: NS });
  });

  if (cni === 'cilium') {
    it('refuses an egress pool that names no gateway nodes, naming spec.egress.nodeSelector', async () => {
      const err = await c.apps
        .createNamespacedDeployment({
          namespace: NS,
          body: deployment('lost', 1, { 'netpin.io/egress-pool': 'no-gateway' }),
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(apiMessage(err)).toContain('set spec.egress.nodeSelector on IPPool no-gateway');
    });
  }
});
