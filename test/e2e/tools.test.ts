// The operator's commands, `netpin status` and `netpin doctor`, run as the built binary against a
// real kube-apiserver, once as a kubectl plugin through the test node's kubectl. The CNIs' own
// configuration objects are written here: their CRDs from cni-crds.ts, their ConfigMaps by hand.
import { chmodSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  applyAntreaIPPoolCrd,
  applyCalicoIPPoolCrd,
  applyCiliumPodIPPoolCrd,
  applyKubeOvnSubnetCrd,
  createCalicoPool,
} from '../../harness/cni-crds.js';
import { issueClientKubeconfig, repoPath, type ControlPlane } from '../../harness/controlplane.js';
import { createNamespace, podsWithPrefix, waitFor, type Clients } from '../../harness/cluster.js';
import { nodeBinaries } from '../../harness/node.js';
import { startFixture, type Fixture } from '../../harness/fixture.js';
import { runCommand, type Run } from '../../harness/process.js';

const MAIN = repoPath('dist/src/cli/main.js');
const NS = 'shop';
const spec = { containers: [{ name: 'app', image: 'registry.example/app:1' }], terminationGracePeriodSeconds: 0 };

let cp: ControlPlane;
let fixture: Fixture | undefined;
let c: Clients;
let home: string;

function run(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  // HOME is empty, so that the kubeconfig comes from KUBECONFIG or --kubeconfig only.
  return runCommand(command, args, { PATH: process.env.PATH, HOME: home, NO_PROXY: '127.0.0.1,localhost', ...env });
}

/** The built binary, with the admin kubeconfig in KUBECONFIG as an operator's shell has it. */
const netpinCli = (args: string[], kubeconfig = cp.kubeconfigPath) =>
  run(process.execPath, [MAIN, ...args], { KUBECONFIG: kubeconfig });
const lines = (text: string) => text.trimEnd().split('\n');
/** A table's rows as cells: columns are two or more spaces apart. */
const cells = (text: string) => lines(text).map((line) => line.split(/ {2,}/));

type Spec = Record<string, unknown>;
const object = (group: string, version: string, plural: string, kind: string) => ({
  create: (name: string, body: Spec) =>
    c.custom.createClusterCustomObject({
      group,
      version,
      plural,
      body: { apiVersion: `${group}/${version}`, kind, metadata: { name }, ...body },
    }),
  delete: (name: string) => c.custom.deleteClusterCustomObject({ group, version, plural, name }),
  patchSpec: (name: string, spec: Spec) =>
    c.custom.patchClusterCustomObject({
      group,
      version,
      plural,
      name,
      body: [{ op: 'replace', path: '/spec', value: spec }],
    }),
});
const calicoPools = object('crd.projectcalico.org', 'v1', 'ippools', 'IPPool');
const subnets = object('kubeovn.io', 'v1', 'subnets', 'Subnet');
const antreaPools = object('crd.antrea.io', 'v1beta1', 'ippools', 'IPPool');
const ciliumPools = object('cilium.io', 'v2alpha1', 'ciliumpodippools', 'CiliumPodIPPool');

async function putConfigMap(name: string, data: Record<string, string>): Promise<void> {
  const body = { metadata: { name, namespace: 'kube-system' }, data };
  await c.core
    .replaceNamespacedConfigMap({ name, namespace: 'kube-system', body })
    .catch(() => c.core.createNamespacedConfigMap({ namespace: 'kube-system', body }));
}

/** A pod as a kubelet would report it running with this address. */
async function showAddress(namespace: string, name: string, ip: string): Promise<void> {
  const pod = await c.core.readNamespacedPod({ namespace, name });
  pod.status = { phase: 'Running', podIP: ip, podIPs: [{ ip }] };
  await c.core.replaceNamespacedPodStatus({ namespace, name, body: pod });
}

async function poolStatus(name: string): Promise<{ capacity?: number; allocated?: number }> {
  const pool = await c.custom.getClusterCustomObject({
    group: 'netpin.io',
    version: 'v1alpha1',
    plural: 'ippools',
    name,
  });
  return (pool as { status?: object }).status ?? {};
}

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'netpin-tools-'));
  const names = (pool: string) => ({
    calico: { pool: `netpin-${pool}` },
    kubeOvn: { subnet: `${pool}-subnet` },
    antrea: { pool: `${pool}-pool` },
    cilium: { pool: `${pool}-pool` },
  });
  fixture = await startFixture({
    namespaces: {
      [NS]: { 'netpin.io/enabled': 'true', team: 'web' },
      plain: { team: 'web' },
      other: { 'netpin.io/enabled': 'true' },
    },
    pools: {
      web: { cidr: '10.50.0.0/24', namespaceSelector: { matchLabels: { team: 'web' } }, cni: names('web') },
      open: { ranges: ['10.60.0.1-10.60.0.8'], cni: names('open') },
      out: { ranges: ['10.90.0.1-10.90.0.4'], egress: { nodeSelector: { matchLabels: { egress: 'true' } } } },
    },
    // The CNIs' own resources that the tools read beside netpin's.
    beforeNetpin: async (c) => {
      await applyCalicoIPPoolCrd(c);
      await applyCiliumPodIPPoolCrd(c);
      await applyAntreaIPPoolCrd(c);
      await applyKubeOvnSubnetCrd(c);
      await createCalicoPool(c, 'netpin-web', { cidr: '10.50.0.0/24', nodeSelector: '!all()' });
      await createCalicoPool(c, 'netpin-open', { cidr: '10.60.0.0/28', nodeSelector: '!all()' });
    },
  });
  ({ cp, c } = fixture);
});

afterAll(async () => {
  await fixture?.stop();
  if (home) rmSync(home, { recursive: true, force: true });
});

describe('netpin status', () => {
  beforeAll(async () => {
    await c.apps.createNamespacedStatefulSet({
      namespace: NS,
      body: {
        metadata: { name: 'db' },
        spec: {
          replicas: 2,
          podManagementPolicy: 'Parallel',
          serviceName: 'db',
          selector: { matchLabels: { app: 'db' } },
          template: { metadata: { labels: { app: 'db' }, annotations: { 'netpin.io/pool': 'web' } }, spec },
        },
      },
    });
    await waitFor('2 pods of StatefulSet db', async () => (await podsWithPrefix(c, NS, 'db-')).length === 2);
    await showAddress(NS, 'db-0', '10.50.0.1');
    // Scaled down: ordinal 1 keeps its address, with no pod.
    await c.apps.patchNamespacedStatefulSet({
      namespace: NS,
      name: 'db',
      body: [{ op: 'replace', path: '/spec/replicas', value: 1 }],
    });
    await waitFor('db-1 gone', async () => (await podsWithPrefix(c, NS, 'db-', true)).length === 1);
    await c.core.createNamespacedPod({
      namespace: NS,
      body: { metadata: { name: 'solo', annotations: { 'netpin.io/ip': '10.50.0.20' } }, spec },
    });
    // A namespace that never opted in, with a pod using a pool address: held all the same.
    await c.core.createNamespacedPod({ namespace: 'plain', body: { metadata: { name: 'rogue' }, spec } });
    await showAddress('plain', 'rogue', '10.50.0.30');
  });

  it('prints each pool: size, held, free, largest free range and the opted-in namespaces it serves; then what each namespace holds', async () => {
    const r = await netpinCli(['status']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const [pools, namespaces] = r.stdout.trimEnd().split('\n\n') as [string, string];
    // The ordinal of db with no pod is a reservation without a pod; rogue's address is held, by no claim of a namespace.
    expect(cells(namespaces)).toEqual([
      ['NAMESPACE', 'POOL', 'FAMILY', 'HELD', 'WITHOUT POD', 'LIMIT', 'USE'],
      ['shop', 'web', 'IPv4', '3', '1', '-', '-'],
    ]);
    expect(cells(pools)).toEqual([
      ['POOL', 'USE', 'FAMILY', 'SIZE', 'HELD', 'FREE', 'LARGEST FREE RANGE', 'NAMESPACES'],
      ['open', 'pods', 'IPv4', '8', '0', '8', '10.60.0.1-10.60.0.8 (8)', 'all opted-in (2)'],
      ['out', 'egress', 'IPv4', '4', '0', '4', '10.90.0.1-10.90.0.4 (4)', 'all opted-in (2)'],
      ['web', 'pods', 'IPv4', '254', '4', '250', '10.50.0.31-10.50.0.254 (224)', 'shop'],
    ]);
  });

  it('lists who holds each address of a pool, and whether its pod exists', async () => {
    const r = await netpinCli(['status', '--pool', 'web', '--kubeconfig', cp.kubeconfigPath], '/nonexistent');
    expect(r.code).toBe(0);
    const [head, table] = r.stdout.trimEnd().split('\n\n') as [string, string];
    expect(lines(head)).toEqual([
      'IPPool web (pod addresses): 10.50.0.1-10.50.0.254',
      'Namespaces: shop',
      'IPv4: 254 addresses, 4 held, 250 free; largest free range 10.50.0.31-10.50.0.254 (224)',
    ]);
    const rows = cells(table);
    expect(rows[0]).toEqual(['ADDRESS', 'OWNER', 'ORDINAL', 'AGE', 'POD']);
    expect(rows.slice(1).map(([ip, owner, ordinal, , exists]) => [ip, owner, ordinal, exists])).toEqual([
      ['10.50.0.1', 'StatefulSet/shop/db', '0', 'yes'],
      ['10.50.0.2', 'StatefulSet/shop/db', '1', 'no'],
      ['10.50.0.20', 'Pod/shop/solo', '-', 'yes'],
      ['10.50.0.30', 'Pod/plain/rogue (no claim)', '-', 'yes'],
    ]);
    for (const row of rows.slice(1, 4)) expect(row[3]).toMatch(/^\d+s$/);

    const unknown = await netpinCli(['status', '--pool', 'nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('netpin: no IPPool named "nope"; the IPPools are: open, out, web\n');
  });

  it('runs as `kubectl netpin status`, kubectl finding kubectl-netpin on PATH', async () => {
    const kubectl = join(await nodeBinaries(), 'kubectl');
    const plugins = mkdtempSync(join(home, 'plugins-'));
    // What npm does for a bin on install: a link under the bin's name, to an executable file.
    chmodSync(MAIN, 0o755);
    symlinkSync(MAIN, join(plugins, 'kubectl-netpin'));
    const path = `${plugins}:${dirname(process.execPath)}:${process.env.PATH}`;
    const listed = await run(kubectl, ['plugin', 'list', '--name-only'], { PATH: path });
    expect(listed.stdout.split('\n')).toContain('kubectl-netpin');
    const r = await run(kubectl, ['netpin', 'status', '--pool', 'web'], { PATH: path, KUBECONFIG: cp.kubeconfigPath });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(lines(r.stdout).slice(0, 3)).toEqual([
      'IPPool web (pod addresses): 10.50.0.1-10.50.0.254',
      'Namespaces: shop',
      'IPv4: 254 addresses, 4 held, 250 free; largest free range 10.50.0.31-10.50.0.254 (224)',
    ]);
    expect(r.stdout).toMatch(/^10\.50\.0\.2 +StatefulSet\/shop\/db +1 +\d+s +no$/m);
  });

  it('keeps `kubectl get ippools.netpin.io` current within seconds of a claim', async () => {
    const kubectl = join(await nodeBinaries(), 'kubectl');
    await waitFor(
      'the reconciler to count 4 held addresses in IPPool web',
      async () => (await poolStatus('web')).allocated === 4,
      30_000,
    );
    const claimed = Date.now();
    await c.core.createNamespacedPod({
      namespace: NS,
      body: { metadata: { name: 'fresh', annotations: { 'netpin.io/pool': 'web' } }, spec },
    });
    await waitFor(
      'IPPool web status to count the new claim',
      async () => (await poolStatus('web')).allocated === 5,
      30_000,
      50,
    );
    const seconds = (Date.now() - claimed) / 1000;
    console.log(`netpin: IPPool status counted a new claim ${seconds.toFixed(2)} s after it was made`);
    expect(seconds).toBeLessThan(3);
    const r = await run(kubectl, ['get', 'ippools.netpin.io', 'web'], { KUBECONFIG: cp.kubeconfigPath });
    expect(cells(r.stdout)).toEqual([
      ['NAME', 'CIDR', 'CAPACITY', 'ALLOCATED', 'AGE'],
      ['web', '10.50.0.0/24', '254', '5', expect.stringMatching(/^\d+[sm]$/)],
    ]);
  });
});

describe('netpin doctor', () => {
  const doctor = (cni?: string, kubeconfig?: string) =>
    netpinCli(['doctor', ...(cni ? ['--cni', cni] : [])], kubeconfig);

  describe('on Calico', () => {
    it('fails a pod that uses a pool address netpin did not give it, naming the fix', async () => {
      const r = await doctor('calico');
      expect(r.code).toBe(1);
      expect(lines(r.stdout)).toEqual([
        'netpin doctor: CNI Calico, from --cni',
        expect.stringMatching(
          /^ok {4}IPPool open: 10\.60\.0\.1-10\.60\.0\.8 lies in Calico IPPools \(crd\.projectcalico\.org\/v1\)/,
        ),
        expect.stringMatching(/^ok {4}IPPool web: 10\.50\.0\.1-10\.50\.0\.254 lies in Calico IPPools/),
        expect.stringMatching(
          /^WARN {2}IPPool out: an egress pool, and Calico \(open source\) has no per-pod egress IP/,
        ),
        // db-0 shows the address netpin gave its ordinal, which is no finding.
        'FAIL  pod plain/rogue uses 10.50.0.30 (status.podIPs) of netpin IPPool web, and netpin holds no IPClaim on it: ' +
          'a pod netpin pins to it would find it taken. Fix: make the Calico IPPool over 10.50.0.1-10.50.0.254 never assign by itself ' +
          '(assignmentMode: Manual, or nodeSelector: "!all()"), then delete pod plain/rogue so that Calico gives it an address elsewhere',
        '1 failed, 1 warning, 2 ok',
      ]);
      await c.core.deleteNamespacedPod({ namespace: 'plain', name: 'rogue' });
      await waitFor('rogue gone', async () => (await podsWithPrefix(c, 'plain', 'rogue', true)).length === 0);
      const healthy = await doctor('calico');
      expect(healthy.stdout).toContain(
        'ok    no running pod uses an address of a netpin IPPool that netpin did not give it',
      );
      expect(healthy.code).toBe(0);
    });

    it('fails a netpin pool in a Calico IPPool that is disabled or assigns by itself, naming the setting', async () => {
      await calicoPools.patchSpec('netpin-web', { cidr: '10.50.0.0/24', nodeSelector: '!all()', disabled: true });
      await calicoPools.patchSpec('netpin-open', { cidr: '10.60.0.0/28' });
      const r = await doctor('calico');
      expect(r.code).toBe(1);
      expect(lines(r.stdout).filter((l) => l.startsWith('FAIL'))).toEqual([
        'FAIL  IPPool open (spec.cni.calico.pool): 10.60.0.1-10.60.0.8 lies in Calico IPPool netpin-open, ' +
          'which Calico assigns from by itself, so a pinned pod can find its address taken ("Address already assigned in block"). ' +
          'Fix: on Calico IPPool netpin-open, set assignmentMode: Manual (before Calico 3.30: nodeSelector: "!all()"); ' +
          "or back netpin's range with a Calico IPPool of its own",
        'FAIL  IPPool web (spec.cni.calico.pool): 10.50.0.1-10.50.0.254 lies in Calico IPPool netpin-web, which is disabled, ' +
          'and Calico refuses ipAddrs from a disabled pool. Fix: set disabled: false on Calico IPPool netpin-web ' +
          'and set assignmentMode: Manual (before Calico 3.30: nodeSelector: "!all()")',
      ]);
      await calicoPools.patchSpec('netpin-web', { cidr: '10.50.0.0/24', nodeSelector: '!all()' });
      await calicoPools.patchSpec('netpin-open', { cidr: '10.60.0.0/28', nodeSelector: '!all()' });
      expect((await doctor('calico')).code).toBe(0);
    });
  });

  describe('on Kube-OVN', () => {
    it('passes Subnets that hold the pools, and fails one that is missing or too small', async () => {
      await subnets.create('web-subnet', {
        spec: { protocol: 'IPv4', cidrBlock: '10.50.0.0/24', gateway: '10.50.0.254' },
      });
      await subnets.create('open-subnet', { spec: { protocol: 'Dual', cidrBlock: '10.60.0.0/24,fd00:60::/64' } });
      const healthy = await doctor('kube-ovn');
      expect(lines(healthy.stdout)).toEqual([
        'netpin doctor: CNI Kube-OVN, from --cni',
        'ok    IPPool open: Kube-OVN Subnet open-subnet exists and its spec.cidrBlock 10.60.0.0/24,fd00:60::/64 holds 10.60.0.1-10.60.0.8',
        'ok    IPPool web: Kube-OVN Subnet web-subnet exists and its spec.cidrBlock 10.50.0.0/24 holds 10.50.0.1-10.50.0.254',
        'ok    no running pod uses an address of a netpin IPPool that netpin did not give it ' +
          '(status.podIPs of every pod, against the IPClaims)',
        '0 failed, 0 warnings, 3 ok',
      ]);
      expect(healthy.code).toBe(0);

      await subnets.patchSpec('web-subnet', { protocol: 'IPv4', cidrBlock: '10.50.0.0/25' });
      await subnets.delete('open-subnet');
      const r = await doctor('kube-ovn');
      expect(r.code).toBe(1);
      expect(lines(r.stdout).filter((l) => l.startsWith('FAIL'))).toEqual([
        'FAIL  IPPool open names Kube-OVN Subnet open-subnet (spec.cni.kubeOvn.subnet), which does not exist. ' +
          'Fix: create Subnet open-subnet (kubeovn.io/v1) with a spec.cidrBlock that holds 10.60.0.1-10.60.0.8, or name an existing Subnet',
        'FAIL  IPPool web: 10.50.0.1-10.50.0.254 lies outside spec.cidrBlock 10.50.0.0/25 of Kube-OVN Subnet web-subnet, ' +
          'where Kube-OVN looks for the pinned address. Fix: name a Subnet whose spec.cidrBlock holds 10.50.0.1-10.50.0.254 ' +
          'in spec.cni.kubeOvn.subnet, or move IPPool web into 10.50.0.0/25',
      ]);
    });
  });

  describe('on Antrea', () => {
    const AGENT =
      'featureGates:\n  AntreaIPAM: true\nenableBridgingMode: true\ntrafficEncapMode: "noEncap"\nnoSNAT: true\n';
    const CONTROLLER = 'featureGates:\n  AntreaIPAM: true\n';
    const subnetInfo = (gateway: string) => ({ gateway, prefixLength: 24 });

    it('passes the feature gate, bridging mode and Antrea IPPools, and fails each one off or missing', async () => {
      await putConfigMap('antrea-config', { 'antrea-agent.conf': AGENT, 'antrea-controller.conf': CONTROLLER });
      await antreaPools.create('web-pool', {
        spec: { ipRanges: [{ cidr: '10.50.0.0/24' }], subnetInfo: subnetInfo('10.50.0.254') },
      });
      await antreaPools.create('open-pool', {
        spec: { ipRanges: [{ start: '10.60.0.1', end: '10.60.0.8' }], subnetInfo: subnetInfo('10.60.0.254') },
      });
      const healthy = await doctor('antrea');
      expect(lines(healthy.stdout)).toEqual([
        'netpin doctor: CNI Antrea, from --cni',
        'ok    antrea-controller.conf in ConfigMap kube-system/antrea-config turns on the AntreaIPAM feature gate ' +
          '(featureGates.AntreaIPAM)',
        'ok    antrea-agent.conf in ConfigMap kube-system/antrea-config turns on the AntreaIPAM feature gate (featureGates.AntreaIPAM)',
        'ok    antrea-agent.conf in ConfigMap kube-system/antrea-config turns on bridging mode ' +
          '(enableBridgingMode: true, trafficEncapMode: noEncap, noSNAT: true)',
        'ok    IPPool open: Antrea IPPool open-pool exists and its spec.ipRanges hold 10.60.0.1-10.60.0.8',
        'ok    IPPool web: Antrea IPPool web-pool exists and its spec.ipRanges hold 10.50.0.1-10.50.0.254',
        '0 failed, 0 warnings, 5 ok',
      ]);
      expect(healthy.code).toBe(0);

      // As Antrea's chart writes a gate left at its default: commented out.
      await putConfigMap('antrea-config', {
        'antrea-agent.conf': 'featureGates:\n#  AntreaIPAM: false\nenableBridgingMode: false\n',
        'antrea-controller.conf': CONTROLLER,
      });
      await antreaPools.delete('open-pool');
      const r = await doctor('antrea');
      expect(r.code).toBe(1);
      expect(lines(r.stdout).filter((l) => l.startsWith('FAIL'))).toEqual([
        'FAIL  antrea-agent.conf in ConfigMap kube-system/antrea-config leaves the AntreaIPAM feature gate off ' +
          "(featureGates.AntreaIPAM), and Antrea's IPPools need it on in both antrea-controller and antrea-agent. " +
          'Fix: set featureGates: {AntreaIPAM: true} in antrea-agent.conf (Helm: --set featureGates.AntreaIPAM=true) ' +
          'and restart antrea-agent',
        'FAIL  antrea-agent.conf in ConfigMap kube-system/antrea-config leaves enableBridgingMode off, ' +
          'so Antrea gives primary-network pods addresses of its own and ignores ipam.antrea.io/ippools and pod-ips. ' +
          'Fix: set enableBridgingMode: true, trafficEncapMode: noEncap and noSNAT: true in antrea-agent.conf ' +
          '(Helm: --set enableBridgingMode=true,trafficEncapMode=noEncap,noSNAT=true) and restart antrea-agent',
        'FAIL  IPPool open names Antrea IPPool open-pool (spec.cni.antrea.pool), which does not exist, so Antrea fails its pods ' +
          '("no valid IPPool found"). Fix: create Antrea IPPool open-pool (crd.antrea.io) ' +
          'with spec.ipRanges that hold 10.60.0.1-10.60.0.8, or name an existing one',
      ]);
    });

    it('warns, without failing, when it may not read antrea-config', async () => {
      await putConfigMap('antrea-config', { 'antrea-agent.conf': AGENT, 'antrea-controller.conf': CONTROLLER });
      await antreaPools.create('open-pool', {
        spec: { ipRanges: [{ cidr: '10.60.0.0/28' }], subnetInfo: subnetInfo('10.60.0.14') },
      });
      // Everything doctor reads but ConfigMaps.
      const rbac = c.kc.makeApiClient(RbacAuthorizationV1Api);
      await rbac.createClusterRole({
        body: {
          metadata: { name: 'netpin-viewer' },
          rules: [
            { apiGroups: ['netpin.io'], resources: ['ippools', 'ipclaims'], verbs: ['list'] },
            { apiGroups: ['crd.antrea.io'], resources: ['ippools'], verbs: ['list'] },
            { apiGroups: ['submariner.io'], resources: ['submariners'], verbs: ['list'] },
            { apiGroups: [''], resources: ['pods'], verbs: ['list'] },
          ],
        },
      });
      await rbac.createClusterRoleBinding({
        body: {
          metadata: { name: 'netpin-viewer' },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'netpin-viewer' },
          subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'viewer' }],
        },
      });
      const viewer = await issueClientKubeconfig(cp, 'viewer', { cn: 'viewer' });
      const r = await waitFor("the viewer's role to apply", async () => {
        const out = await doctor('antrea', viewer);
        return out.stdout.includes('IPPool web: Antrea IPPool') ? out : undefined;
      });
      expect(r.stderr).toBe('');
      expect(lines(r.stdout)).toEqual([
        'netpin doctor: CNI Antrea, from --cni',
        'WARN  could not read ConfigMap kube-system/antrea-config (HTTP 403: configmaps "antrea-config" is forbidden: ' +
          'User "viewer" cannot get resource "configmaps" in API group "" in the namespace "kube-system"): ' +
          'not checked the AntreaIPAM feature gate and enableBridgingMode',
        'ok    IPPool open: Antrea IPPool open-pool exists and its spec.ipRanges hold 10.60.0.1-10.60.0.8',
        'ok    IPPool web: Antrea IPPool web-pool exists and its spec.ipRanges hold 10.50.0.1-10.50.0.254',
        // The interconnects' ConfigMaps too; the cluster serves no Submariners.
        ...[
          ['cilium-config', 'Cilium ClusterMesh (cluster-id, cluster-name, routing-mode)'],
          ['antrea-mc-controller-config', 'Antrea Multi-cluster (podCIDRs)'],
          ['ovn-ic-config', 'Kube-OVN OVN-IC (enable-ic, az-name)'],
        ].map(
          ([name, unchecked]) =>
            `WARN  could not read ConfigMap kube-system/${name} (HTTP 403: configmaps "${name}" is forbidden: ` +
            `User "viewer" cannot get resource "configmaps" in API group "" in the namespace "kube-system"): ` +
            `not checked ${unchecked}`,
        ),
        '0 failed, 4 warnings, 2 ok',
      ]);
      expect(r.code).toBe(0);
    });
  });

  describe('on Cilium', () => {
    it("asks for --cni until netpin's Deployment says it", async () => {
      const without = await doctor();
      expect(without.code).toBe(2);
      expect(without.stderr).toBe(
        'netpin: --cni is required: no netpin Deployment (label app.kubernetes.io/name=netpin) was found to take it from\n',
      );
      await createNamespace(c, 'netpin-system');
      await c.apps.createNamespacedDeployment({
        namespace: 'netpin-system',
        body: {
          metadata: { name: 'netpin', labels: { 'app.kubernetes.io/name': 'netpin' } },
          spec: {
            selector: { matchLabels: { app: 'netpin' } },
            template: {
              metadata: { labels: { app: 'netpin' } },
              spec: {
                containers: [
                  {
                    name: 'netpin',
                    image: 'registry.example/netpin:1',
                    args: ['serve', '--cni', 'cilium', '--ledger=kube'],
                  },
                ],
              },
            },
          },
        },
      });
      const found = await doctor();
      expect(lines(found.stdout)[0]).toBe(
        'netpin doctor: CNI Cilium, from the --cni of Deployment netpin-system/netpin',
      );
    });

    it('passes multi-pool IPAM, the egress gateway and the CiliumPodIPPools, and fails each one off or missing', async () => {
      await putConfigMap('cilium-config', { ipam: 'multi-pool', 'enable-egress-gateway': 'true' });
      for (const [name, cidr] of [
        ['web-pool', '10.50.0.0/24'],
        ['open-pool', '10.60.0.0/28'],
      ] as const) {
        await ciliumPools.create(name, { spec: { ipv4: { cidrs: [cidr], maskSize: 28 } } });
      }
      const healthy = await doctor();
      expect(lines(healthy.stdout)).toEqual([
        'netpin doctor: CNI Cilium, from the --cni of Deployment netpin-system/netpin',
        'ok    ConfigMap kube-system/cilium-config sets ipam: multi-pool, the mode in which Cilium reads ipam.cilium.io/ip-pool (ipv4-pool, ipv6-pool)',
        'ok    ConfigMap kube-system/cilium-config sets enable-egress-gateway: "true", ' +
          'so Cilium applies the CiliumEgressGatewayPolicies netpin keeps',
        'ok    IPPool open: CiliumPodIPPool open-pool (cilium.io/v2alpha1) exists',
        'ok    IPPool web: CiliumPodIPPool web-pool (cilium.io/v2alpha1) exists',
        '0 failed, 0 warnings, 4 ok',
      ]);
      expect(healthy.code).toBe(0);

      await putConfigMap('cilium-config', { ipam: 'cluster-pool', 'enable-ipv4-egress-gateway': 'true' });
      await ciliumPools.delete('web-pool');
      const r = await doctor('cilium');
      expect(r.code).toBe(1);
      expect(lines(r.stdout).slice(1)).toEqual([
        'FAIL  ConfigMap kube-system/cilium-config sets ipam: cluster-pool, ' +
          'and Cilium reads ipam.cilium.io/ip-pool (ipv4-pool, ipv6-pool) only with ipam: multi-pool. ' +
          'Fix: install Cilium with ipam.mode=multi-pool (ipam: multi-pool in cilium-config); ' +
          "Cilium's documentation warns against changing the IPAM mode of a running cluster outside a documented migration",
        'WARN  ConfigMap kube-system/cilium-config sets enable-ipv4-egress-gateway: "true", a name Cilium reads only before 1.19 ' +
          "(1.18 renamed it enable-egress-gateway). Fix: set egressGateway.enabled=true in Cilium's Helm values " +
          '(enable-egress-gateway: "true" in cilium-config) and restart cilium-agent and cilium-operator',
        'ok    IPPool open: CiliumPodIPPool open-pool (cilium.io/v2alpha1) exists',
        'FAIL  IPPool web names CiliumPodIPPool web-pool (spec.cni.cilium.pool), which does not exist, ' +
          'so its pods wait in ContainerCreating ("pool not (yet) available"). ' +
          'Fix: create CiliumPodIPPool web-pool (cilium.io/v2alpha1), or name an existing one',
        '2 failed, 1 warning, 1 ok',
      ]);
    });

    it('reads ClusterMesh from cilium-config and the Deployments: clustermesh-apiserver beside cluster-id 0 fails', async () => {
      const mesh = (r: { stdout: string }) => lines(r.stdout).filter((l) => l.includes('Cilium ClusterMesh'));
      await putConfigMap('cilium-config', { ipam: 'multi-pool', 'enable-egress-gateway': 'true' });
      expect(mesh(await doctor('cilium'))).toEqual([]);
      await c.apps.createNamespacedDeployment({
        namespace: 'kube-system',
        body: {
          metadata: { name: 'clustermesh-apiserver' },
          spec: {
            selector: { matchLabels: { app: 'clustermesh-apiserver' } },
            template: {
              metadata: { labels: { app: 'clustermesh-apiserver' } },
              spec: { containers: [{ name: 'apiserver', image: 'registry.example/clustermesh-apiserver:1' }] },
            },
          },
        },
      });
      const unset = await doctor('cilium');
      expect(unset.code).toBe(1);
      expect(mesh(unset)).toEqual([
        expect.stringMatching(
          /^FAIL {2}Cilium ClusterMesh: Deployment kube-system\/clustermesh-apiserver is installed, but ConfigMap kube-system\/cilium-config sets cluster-id: 0 \(or none\)/,
        ),
      ]);
      await putConfigMap('cilium-config', {
        ipam: 'multi-pool',
        'enable-egress-gateway': 'true',
        'cluster-id': '7',
        'cluster-name': 'shop-a',
      });
      expect(mesh(await doctor('cilium'))).toEqual([
        expect.stringMatching(/^ok {4}Cilium ClusterMesh: .* sets cluster-id: 7 and cluster-name: shop-a;/),
        expect.stringMatching(/^ok {4}Cilium ClusterMesh: .* sets routing-mode: tunnel \(the default\)/),
      ]);
      await c.apps.deleteNamespacedDeployment({ namespace: 'kube-system', name: 'clustermesh-apiserver' });
    });
  });
});
