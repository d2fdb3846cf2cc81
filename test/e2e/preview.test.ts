// `netpin preview --kubeconfig` against a real etcd, kube-apiserver and kube-controller-manager, with
// `netpin serve --ledger kube` as the cluster's webhook: preview holds what the cluster holds, writes
// nothing, and the pods it prints are the pods the controllers then create and the webhook admits.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import type { KubeObject } from '../../src/admission/review.js';
import { repoPath, type ControlPlane } from '../../harness/controlplane.js';
import { listClaims, podsWithPrefix, waitFor, type Clients } from '../../harness/cluster.js';
import { startFixture, type Fixture } from '../../harness/fixture.js';

const MAIN = repoPath('dist/src/cli/main.js');
const NS = 'shop';

let cp: ControlPlane;
let fixture: Fixture | undefined;
let c: Clients;
let tmp: string;

const container = { containers: [{ name: 'app', image: 'registry.example/app:1' }], terminationGracePeriodSeconds: 0 };

const statefulSet = {
  apiVersion: 'apps/v1',
  kind: 'StatefulSet',
  metadata: { name: 'cache', namespace: NS },
  spec: {
    replicas: 3,
    serviceName: 'cache',
    podManagementPolicy: 'Parallel',
    selector: { matchLabels: { app: 'cache' } },
    template: { metadata: { labels: { app: 'cache' }, annotations: { 'netpin.io/pool': 'web' } }, spec: container },
  },
};

const deployment = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'api', namespace: NS },
  spec: {
    replicas: 2,
    selector: { matchLabels: { app: 'api' } },
    template: {
      metadata: { labels: { app: 'api' }, annotations: { 'netpin.io/pool': 'web', 'netpin.io/egress-rate': '10M' } },
      spec: container,
    },
  },
};

const fixedPod = (name: string, ip: string) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: NS, annotations: { 'netpin.io/ip': ip } },
  spec: container,
});

/** Runs the built `netpin preview` on these objects against the test cluster. */
function preview(...objects: object[]): Promise<{ code: number | null; pods: KubeObject[]; stderr: string[] }> {
  const manifest = join(tmp, `manifest-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(manifest, objects.map((o) => stringify(o)).join('---\n'));
  const child = spawn(
    process.execPath,
    [MAIN, 'preview', '-f', manifest, '--cni', 'calico', '--kubeconfig', cp.kubeconfigPath],
    {
      env: { ...process.env, NO_PROXY: '127.0.0.1,localhost' },
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((res) =>
    child.on('close', (code) =>
      res({
        code,
        pods: parseAllDocuments(stdout).map((d) => d.toJS() as KubeObject),
        stderr: stderr.split('\n').filter(Boolean),
      }),
    ),
  );
}

/** Everything the cluster holds that preview could have written to. */
async function snapshot() {
  const claims = (await listClaims(c)).map((x) => `${x.name} ${JSON.stringify(x.owner)}`).sort();
  const pods = (await c.core.listPodForAllNamespaces()).items
    .map((p) => `${p.metadata!.namespace}/${p.metadata!.name} ${p.metadata!.resourceVersion}`)
    .sort();
  const workloads = [
    ...(await c.apps.listStatefulSetForAllNamespaces()).items,
    ...(await c.apps.listDeploymentForAllNamespaces()).items,
  ].map((w) => w.metadata!.name);
  return { claims, pods, workloads };
}

/**
 * What netpin and the controllers decide about a pod, with the controllers' real template hash read
 * as preview's placeholder. Not the name of a Deployment's pod, whose suffix is random.
 */
function decided(pod: KubeObject | V1Pod, named: boolean): object {
  const m = pod.metadata!;
  const hash =
    m.labels?.['pod-template-hash'] ??
    m.labels?.['controller-revision-hash']?.slice(`${m.ownerReferences?.[0]?.name}-`.length);
  const owners = (m.ownerReferences ?? []).map(({ apiVersion, kind, name, controller, blockOwnerDeletion }) => ({
    apiVersion,
    kind,
    name,
    controller,
    blockOwnerDeletion,
  }));
  const spec = pod.spec as { hostname?: string; subdomain?: string };
  const facts = {
    ...(named && { name: m.name }),
    generateName: m.generateName,
    labels: m.labels,
    annotations: m.annotations,
    owners,
    hostname: spec.hostname,
    subdomain: spec.subdomain,
  };
  return JSON.parse(hash ? JSON.stringify(facts).replaceAll(hash, 'preview') : JSON.stringify(facts)) as object;
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'netpin-preview-e2e-'));
  fixture = await startFixture({
    namespaces: { [NS]: { 'netpin.io/enabled': 'true', team: 'web' }, plain: { team: 'web' } },
    pools: { web: { cidr: '10.50.0.0/24', namespaceSelector: { matchLabels: { team: 'web' } } } },
  });
  ({ cp, c } = fixture);
  // Held two ways: a netpin claim, and a pod netpin never admitted (its namespace did not opt in) that uses an
  // address: scheduled, since outside opted-in namespaces a CNI annotation counts only on a pod a node runs.
  await c.core.createNamespacedPod({
    namespace: NS,
    body: { metadata: { name: 'holder', annotations: { 'netpin.io/pool': 'web' } }, spec: container },
  });
  await c.core.createNamespacedPod({
    namespace: 'plain',
    body: {
      metadata: { name: 'legacy', annotations: { 'cni.projectcalico.org/ipAddrs': '["10.50.0.2"]' } },
      spec: { ...container, nodeName: 'node-1' },
    },
  });
});

afterAll(async () => {
  await fixture?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('netpin preview --kubeconfig', () => {
  it('never offers what the cluster holds, and writes nothing', async () => {
    const [holderClaim] = await listClaims(c, 'web');
    expect(holderClaim).toMatchObject({ ip: '10.50.0.1', owner: { kind: 'Pod', namespace: NS, name: 'holder' } });
    const before = await snapshot();

    const refused = await preview(fixedPod('thief', '10.50.0.1'), fixedPod('squatter', '10.50.0.2'), statefulSet);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toEqual([
      expect.stringMatching(
        /^Pod\/shop\/thief: denied: netpin\.io\/ip \(CNI Calico\): 10\.50\.0\.1 is held by pod shop\/holder \(IPPool web\)/,
      ),
      expect.stringMatching(
        /^Pod\/shop\/squatter: denied: netpin\.io\/ip \(CNI Calico\): 10\.50\.0\.2 is held by pod plain\/legacy, which uses it without/,
      ),
      'StatefulSet/shop/cache: warning: netpin: reserved cache-0=10.50.0.3 cache-1=10.50.0.4 cache-2=10.50.0.5',
    ]);
    expect(refused.pods.map((p) => p.metadata?.name)).toEqual(['cache-0', 'cache-1', 'cache-2']);

    expect(await snapshot()).toEqual(before);
    expect(before.claims).toHaveLength(1);
    expect(before.workloads).toEqual([]);
  });

  it('prints the pods that the controllers then create and the webhook admits', async () => {
    const predicted = await preview(statefulSet, deployment);
    expect(predicted.code).toBe(0);
    expect(predicted.pods.map((p) => p.metadata?.annotations?.['netpin.io/allocated'])).toEqual([
      '10.50.0.3',
      '10.50.0.4',
      '10.50.0.5',
      '10.50.0.6',
      '10.50.0.7',
    ]);

    await c.apps.createNamespacedStatefulSet({ namespace: NS, body: statefulSet });
    await c.apps.createNamespacedDeployment({ namespace: NS, body: deployment });
    const real = await waitFor('3 cache pods and 2 api pods', async () => {
      const pods = [...(await podsWithPrefix(c, NS, 'cache-')), ...(await podsWithPrefix(c, NS, 'api-'))];
      return pods.length === 5 ? pods : undefined;
    });

    // StatefulSet pods to the name; a Deployment's pods by address, since its replicas are created at once.
    const facts = (pods: Array<KubeObject | V1Pod>, prefix: string, sortKey: (p: KubeObject | V1Pod) => string) =>
      pods
        .filter((p) => p.metadata!.name!.startsWith(prefix))
        .sort((a, b) => sortKey(a).localeCompare(sortKey(b)))
        .map((p) => decided(p, prefix === 'cache-'));
    const byName = (p: KubeObject | V1Pod) => p.metadata!.name!;
    const byAddress = (p: KubeObject | V1Pod) => p.metadata!.annotations!['netpin.io/allocated']!;
    expect(facts(real, 'cache-', byName)).toEqual(facts(predicted.pods, 'cache-', byName));
    expect(facts(real, 'api-', byAddress)).toEqual(facts(predicted.pods, 'api-', byAddress));
    expect(facts(real, 'api-', byAddress)).toHaveLength(2);
  });
});
