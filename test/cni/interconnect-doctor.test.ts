import { describe, expect, it } from 'vitest';
import { formatCheck } from '../../src/cni/doctor.js';
import { interconnectChecks } from '../../src/cni/interconnect-doctor.js';
import { FORBIDDEN, outcomes, source, web, type FakeCluster } from './doctor-fixtures.js';

const run = (fake: FakeCluster) => interconnectChecks({ pools: [web], claims: [], source: source(fake) });
const lines = async (fake: FakeCluster) => (await run(fake)).map(formatCheck);

const CILIUM = 'ConfigMap kube-system/cilium-config';
const cilium = (data: Record<string, string>, deployments?: object[]) => ({
  configMaps: { 'kube-system/cilium-config': data },
  ...(deployments && { lists: { 'deployments.apps/v1': deployments } }),
});
const deployment = (namespace: string, name: string) => ({ metadata: { namespace, name } });

it('says nothing of interconnects a cluster does not have', async () => {
  expect(await run({})).toEqual([]);
  // Cilium without ClusterMesh: no cluster-id and no clustermesh-apiserver.
  expect(await run(cilium({ ipam: 'multi-pool' }, [deployment('kube-system', 'cilium-operator')]))).toEqual([]);
  expect(await run(cilium({ 'cluster-id': '0', 'cluster-name': 'default' }))).toEqual([]);
});

describe('Cilium ClusterMesh', () => {
  it('passes a cluster id and name Cilium accepts, and tunnel mode, its default', async () => {
    expect(await lines(cilium({ 'cluster-id': '3', 'cluster-name': 'shop-a' }))).toEqual([
      `ok    Cilium ClusterMesh: ${CILIUM} sets cluster-id: 3 and cluster-name: shop-a; ` +
        'every cluster of the mesh needs an id and a name of its own (the others are not read)',
      `ok    Cilium ClusterMesh: ${CILIUM} sets routing-mode: tunnel (the default), ` +
        'so Cilium tunnels to a pod of another cluster by its own address (ipcache), in whatever range it lies',
    ]);
  });

  it('warns that native routing leaves a shared range to the network between the clusters', async () => {
    const checks = await lines(cilium({ 'cluster-id': '3', 'cluster-name': 'a', 'routing-mode': 'native' }));
    expect(checks[1]).toBe(
      `WARN  Cilium ClusterMesh: ${CILIUM} sets routing-mode: native, so the network between the clusters carries pod traffic, ` +
        "commonly routing each cluster's PodCIDRs: an address of a shared pool (or of any range not in this cluster's PodCIDRs) " +
        'reaches a pod here from another cluster only if that network routes it to its node address by address. ' +
        'Fix: advertise each pod address of a shared pool to the network (BGP per pod address, for example), ' +
        'or use routingMode: tunnel (routing-mode: tunnel in cilium-config)',
    );
    const tunnel = await run(cilium({ 'cluster-id': '3', 'cluster-name': 'a', 'routing-mode': 'tunnel' }));
    expect(outcomes(tunnel)).toEqual(['ok', 'ok']);
  });

  it('fails clustermesh-apiserver beside cluster-id 0, set or by default, naming its namespace', async () => {
    for (const data of [{}, { 'cluster-id': '0' }] as Record<string, string>[]) {
      const checks = await lines(cilium(data, [deployment('cilium', 'clustermesh-apiserver')]));
      expect(checks).toEqual([
        'FAIL  Cilium ClusterMesh: Deployment cilium/clustermesh-apiserver is installed, ' +
          `but ${CILIUM} sets cluster-id: 0 (or none), with which Cilium agents join no mesh and clustermesh-apiserver refuses to start. ` +
          'Fix: give this cluster an id no other cluster of the mesh has (Helm cluster.id, 1-255) and a name other than default ' +
          '(cluster.name), then restart cilium-agent, cilium-operator and clustermesh-apiserver',
      ]);
    }
  });

  it.each([
    ['256', {}, 'sets cluster-id: 256, and Cilium accepts 1-255 (with max-connected-clusters: 255;'],
    ['512', { 'max-connected-clusters': '511' }, 'sets cluster-id: 512, and Cilium accepts 1-511'],
    ['three', {}, 'sets cluster-id: three, and Cilium accepts 1-255'],
    ['3', { 'max-connected-clusters': '300' }, 'sets max-connected-clusters: 300, and Cilium accepts only 255 or 511'],
  ])('fails cluster-id %s where Cilium does not accept it', async (id, more, said) => {
    const checks = await run(cilium({ 'cluster-id': id, 'cluster-name': 'a', ...more }));
    expect(outcomes(checks)).toEqual(['FAIL', 'ok']);
    expect(checks[0]!.text).toContain(said);
  });

  it('passes a cluster id up to 511 with max-connected-clusters 511', async () => {
    const checks = await run(cilium({ 'cluster-id': '400', 'cluster-name': 'a', 'max-connected-clusters': '511' }));
    expect(outcomes(checks)).toEqual(['ok', 'ok']);
  });

  it.each([
    [
      'absent, so default',
      undefined,
      'cluster-name: default, the default name, which Cilium refuses beside a cluster-id',
    ],
    ['default', 'default', 'cluster-name: default, the default name'],
    ['upper case', 'Shop', 'cluster-name: Shop, not a name Cilium accepts'],
    ['ending in -', 'shop-', 'cluster-name: shop-, not a name Cilium accepts'],
    ['33 characters', 'a'.repeat(33), 'not a name Cilium accepts: at most 32'],
  ])('fails a cluster name %s beside a cluster-id', async (_, name, said) => {
    const checks = await run(cilium({ 'cluster-id': '3', ...(name !== undefined && { 'cluster-name': name }) }));
    expect(outcomes(checks)).toEqual(['FAIL', 'ok']);
    expect(checks[0]!.text).toContain(said);
    expect(checks[0]!.fix).toBe(
      'set cluster.name to a name no other cluster of the mesh has, ' +
        'and restart cilium-agent, cilium-operator and clustermesh-apiserver',
    );
  });

  it('passes a name of 32 characters', async () => {
    expect(outcomes(await run(cilium({ 'cluster-id': '3', 'cluster-name': 'a'.repeat(32) })))).toEqual(['ok', 'ok']);
  });

  it('warns what went unchecked when cilium-config or the Deployments cannot be read', async () => {
    expect(await lines({ configMaps: { 'kube-system/cilium-config': FORBIDDEN } })).toEqual([
      `WARN  could not read ${CILIUM} (HTTP 403: configmaps "x" is forbidden): ` +
        'not checked Cilium ClusterMesh (cluster-id, cluster-name, routing-mode)',
    ]);
    expect(
      await lines({ configMaps: { 'kube-system/cilium-config': {} }, lists: { 'deployments.apps/v1': FORBIDDEN } }),
    ).toEqual([
      'WARN  could not read Deployments (apps/v1) (HTTP 403: configmaps "x" is forbidden): ' +
        `not checked whether clustermesh-apiserver runs while ${CILIUM} sets no cluster-id`,
    ]);
  });
});

describe('Submariner', () => {
  const submariners = (...items: object[]) => ({ lists: { 'submariners.submariner.io/v1alpha1': items } });
  const submariner = (spec: object, status: object = {}) => ({
    metadata: { namespace: 'submariner-operator', name: 'submariner' },
    spec,
    status,
  });

  it('warns that Globalnet hides pod addresses from other clusters', async () => {
    expect(await lines(submariners(submariner({ globalCIDR: '242.0.0.0/16', clusterCIDR: '10.0.0.0/16' })))).toEqual([
      'WARN  Submariner: Submariner submariner-operator/submariner runs Globalnet (spec.globalCIDR: 242.0.0.0/16): ' +
        "other clusters reach this cluster's pods through global IPs, never by the pods' own addresses, " +
        "so the addresses netpin pins here (a ClusterSet's shared ones too) are of use inside this cluster only. " +
        'Fix: reach these pods from other clusters through Services exported with Submariner, or join the clusters ' +
        "without Globalnet (their pod CIDRs must then not overlap), listing a shared pool's range in the cluster CIDR " +
        'of the cluster that uses it',
    ]);
  });

  it('reports the cluster CIDR without Globalnet: the one in use, else the one asked for', async () => {
    const checks = await lines(
      submariners(
        submariner({ globalCIDR: '', clusterCIDR: '10.0.0.0/16' }, { clusterCIDR: '10.0.0.0/16,10.99.0.0/24' }),
        submariner({ clusterCIDR: '10.1.0.0/16' }),
        submariner({}),
      ),
    );
    const tail =
      " to this cluster: other clusters reach a pod here by its own address only inside that CIDR, a shared pool's addresses included";
    expect(checks).toEqual([
      'ok    Submariner: Submariner submariner-operator/submariner runs without Globalnet and routes ' +
        `cluster CIDR 10.0.0.0/16,10.99.0.0/24${tail}`,
      `ok    Submariner: Submariner submariner-operator/submariner runs without Globalnet and routes cluster CIDR 10.1.0.0/16${tail}`,
      'ok    Submariner: Submariner submariner-operator/submariner runs without Globalnet and routes ' +
        `its cluster CIDR (none discovered yet: status.clusterCIDR is empty)${tail}`,
    ]);
  });

  it('warns what went unchecked when Submariners cannot be listed', async () => {
    expect(await lines({ lists: { 'submariners.submariner.io/v1alpha1': FORBIDDEN } })).toEqual([
      'WARN  could not read Submariners (submariner.io/v1alpha1) (HTTP 403: configmaps "x" is forbidden): ' +
        'not checked whether Submariner runs Globalnet (spec.globalCIDR)',
    ]);
  });
});

describe('Antrea Multi-cluster', () => {
  const MC = 'controller_manager_config.yaml in ConfigMap kube-system/antrea-mc-controller-config';
  const mc = (file: string) => ({
    configMaps: { 'kube-system/antrea-mc-controller-config': { 'controller_manager_config.yaml': file } },
  });
  const HEAD = 'apiVersion: multicluster.crd.antrea.io/v1alpha1\nkind: MultiClusterConfig\n';

  it("warns that Antrea routes by each member's podCIDRs", async () => {
    expect(await lines(mc(`${HEAD}podCIDRs:\n  - "10.10.0.0/16"\n  - ""\n  - "10.99.0.0/24"\n`))).toEqual([
      `WARN  Antrea Multi-cluster: ${MC} has Antrea route podCIDRs 10.10.0.0/16, 10.99.0.0/24 to this cluster, ` +
        "and Antrea asks that no two members' podCIDRs overlap: a shared pool's address reaches a pod from other members " +
        'only in the one member whose podCIDRs hold it. ' +
        "Fix: keep each shared pool's addresses in the member whose podCIDRs hold its range, " +
        'or give each member pools of its own inside its podCIDRs',
    ]);
  });

  it('warns that without podCIDRs no pod address is routed between members, as Antrea ships it', async () => {
    for (const file of [`${HEAD}podCIDRs:\n  - ""\n`, HEAD, '']) {
      const checks = await run(mc(file));
      expect(outcomes(checks)).toEqual(['WARN']);
      expect(checks[0]!.text).toBe(
        `Antrea Multi-cluster: ${MC} lists no podCIDRs, so Antrea routes no pod address between the members ` +
          "(Pod-to-Pod connectivity is off): other clusters reach this cluster's pods, netpin's addresses included, " +
          'only through multi-cluster Services',
      );
      expect(checks[0]!.fix).toContain('set multicluster.enablePodToPodConnectivity: true in antrea-agent.conf');
    }
  });

  it('warns what went unchecked when the configuration cannot be read or parsed', async () => {
    expect(await lines(mc('podCIDRs: [10.0.0.0/16'))).toEqual([
      expect.stringMatching(/^WARN {2}Antrea Multi-cluster: .* is not YAML \(.+\): not checked its podCIDRs$/),
    ]);
    expect(await lines({ configMaps: { 'kube-system/antrea-mc-controller-config': FORBIDDEN } })).toEqual([
      'WARN  could not read ConfigMap kube-system/antrea-mc-controller-config (HTTP 403: configmaps "x" is forbidden): ' +
        'not checked Antrea Multi-cluster (podCIDRs)',
    ]);
  });
});

describe('Kube-OVN OVN-IC', () => {
  const ic = (data: Record<string, string>) => ({ configMaps: { 'kube-system/ovn-ic-config': data } });

  it('warns that OVN-IC does not refuse a CIDR used in two clusters', async () => {
    for (const enable of [{ 'enable-ic': 'true' }, {}] as Record<string, string>[]) {
      expect(await lines(ic({ ...enable, 'az-name': 'az1', 'auto-route': 'true' }))).toEqual([
        'WARN  Kube-OVN OVN-IC: ConfigMap kube-system/ovn-ic-config interconnects this cluster as availability zone az1 ' +
          '(auto-route: true), and OVN-IC routes by Subnet CIDR and does not refuse a CIDR that two clusters both use ' +
          '(kube-ovn#7264): a shared range with a Subnet in two clusters is not routed to the cluster that holds each address, ' +
          'and nothing in OVN-IC says so. ' +
          'Fix: route each address of a shared pool to the cluster that holds it, or keep a shared pool in one cluster at a time; ' +
          'from kube-ovn#7265, auto-route drops a learned route that overlaps a local Subnet, so such a range is routed between neither',
      ]);
    }
    const bare = await run(ic({ 'enable-ic': 'true' }));
    expect(bare[0]!.text).toContain('as availability zone (no az-name) (auto-route: false)');
  });

  it('passes OVN-IC turned off', async () => {
    expect(await lines(ic({ 'enable-ic': 'false', 'az-name': 'az1' }))).toEqual([
      'ok    Kube-OVN OVN-IC: ConfigMap kube-system/ovn-ic-config sets enable-ic: "false", so this cluster is not interconnected',
    ]);
  });

  it('warns what went unchecked when ovn-ic-config cannot be read', async () => {
    expect(await lines({ configMaps: { 'kube-system/ovn-ic-config': FORBIDDEN } })).toEqual([
      'WARN  could not read ConfigMap kube-system/ovn-ic-config (HTTP 403: configmaps "x" is forbidden): ' +
        'not checked Kube-OVN OVN-IC (enable-ic, az-name)',
    ]);
  });
});

it('reports each interconnect it finds, in order', async () => {
  const checks = await run({
    configMaps: {
      'kube-system/cilium-config': { 'cluster-id': '1', 'cluster-name': 'a' },
      'kube-system/antrea-mc-controller-config': {},
      'kube-system/ovn-ic-config': { 'enable-ic': 'false' },
    },
    lists: { 'submariners.submariner.io/v1alpha1': [{ metadata: { namespace: 's', name: 's' }, spec: {} }] },
  });
  expect(checks.map((c) => c.text.split(':')[0])).toEqual([
    'Cilium ClusterMesh',
    'Cilium ClusterMesh',
    'Submariner',
    'Antrea Multi-cluster',
    'Kube-OVN OVN-IC',
  ]);
});
