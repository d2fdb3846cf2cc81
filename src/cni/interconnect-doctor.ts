// `netpin doctor`, whatever the CNI: the interconnects that join this cluster to others (Cilium ClusterMesh,
// Submariner, Antrea Multi-cluster, Kube-OVN OVN-IC), read from their configuration in this cluster, and
// what each does with pod addresses, the ones netpin pins included (docs/clusterset.md, "Set up", step 4).
// A ClusterSet's shared pools live in its broker, which doctor does not read; nor does it read the other
// clusters. An interconnect that is not installed (its ConfigMap or resource is not found) prints nothing.
import { parse as parseYaml } from 'yaml';
import {
  fail,
  nameOf,
  ok,
  Unread,
  unreadable,
  warn,
  type Check,
  type ClusterSource,
  type DoctorInputs,
  type Resource,
} from './doctor.js';

export async function interconnectChecks(inputs: DoctorInputs): Promise<Check[]> {
  const { source } = inputs;
  const found = await Promise.all([
    clusterMeshChecks(source),
    submarinerChecks(source),
    antreaMulticlusterChecks(source),
    ovnIcChecks(source),
  ]);
  return found.flat();
}

// Cilium ClusterMesh: cilium-config's keys as cilium-agent reads them (pkg/clustermesh/types/option.go,
// pkg/option/config.go of Cilium 1.20).

const CILIUM_CONFIG = 'ConfigMap kube-system/cilium-config';
const MESH = 'Cilium ClusterMesh';
// The Deployment Cilium's chart installs with clustermesh.useAPIServer, in Cilium's namespace
// (install/kubernetes/cilium/templates/clustermesh-apiserver/deployment.yaml).
const CLUSTERMESH_APISERVER = 'clustermesh-apiserver';
const DEPLOYMENTS: Resource = { group: 'apps', version: 'v1', plural: 'deployments' };
// pkg/clustermesh/types/types.go: at most 32 characters, lower case alphanumerics and '-' between.
const CLUSTER_NAME = /^([a-z0-9][-a-z0-9]*)?[a-z0-9]$/;

/**
 * With cluster-id 0 (its default) Cilium joins no mesh: the agent starts no ClusterMesh
 * (pkg/clustermesh/clustermesh.go, NewClusterMesh) and clustermesh-apiserver refuses to start
 * (ValidateStrict). A mesh whose agents read the peers' etcd directly, with no clustermesh-apiserver,
 * is known only from the Secret cilium-clustermesh, and doctor asks for no right to read Secrets: that case
 * goes unseen.
 */
async function clusterMeshChecks(source: ClusterSource): Promise<Check[]> {
  const config = await source.configMap('kube-system', 'cilium-config');
  if (config instanceof Unread) {
    return config.missing
      ? []
      : [unreadable(config, CILIUM_CONFIG, `${MESH} (cluster-id, cluster-name, routing-mode)`)];
  }
  const id = (config['cluster-id'] ?? '').trim();
  if (id === '' || id === '0') return unsetMeshChecks(source);
  return [clusterIdCheck(config, id), routingModeCheck(config)];
}

async function unsetMeshChecks(source: ClusterSource): Promise<Check[]> {
  const deployments = await source.list(DEPLOYMENTS);
  if (deployments instanceof Unread) {
    return deployments.missing
      ? []
      : [
          unreadable(
            deployments,
            'Deployments (apps/v1)',
            `whether ${CLUSTERMESH_APISERVER} runs while ${CILIUM_CONFIG} sets no cluster-id`,
          ),
        ];
  }
  const apiserver = deployments.find((d) => nameOf(d) === CLUSTERMESH_APISERVER);
  if (!apiserver) return [];
  const namespace = (apiserver as { metadata?: { namespace?: string } }).metadata?.namespace ?? '';
  return [
    fail(
      `${MESH}: Deployment ${namespace}/${CLUSTERMESH_APISERVER} is installed, but ${CILIUM_CONFIG} sets cluster-id: 0 ` +
        '(or none), with which Cilium agents join no mesh and clustermesh-apiserver refuses to start',
      'give this cluster an id no other cluster of the mesh has (Helm cluster.id, 1-255) and a name other than default ' +
        '(cluster.name), then restart cilium-agent, cilium-operator and clustermesh-apiserver',
    ),
  ];
}

/** cluster-id, cluster-name and max-connected-clusters as cilium-agent validates them at start (ClusterInfo.Validate). */
function clusterIdCheck(config: Record<string, string>, id: string): Check {
  const name = config['cluster-name'] ?? 'default';
  const max = (config['max-connected-clusters'] ?? '').trim() || '255';
  const restart = 'and restart cilium-agent, cilium-operator and clustermesh-apiserver';
  if (max !== '255' && max !== '511') {
    return fail(
      `${MESH}: ${CILIUM_CONFIG} sets max-connected-clusters: ${max}, and Cilium accepts only 255 or 511 (its agents do not start)`,
      `set clustermesh.maxConnectedClusters to 255 or 511, the same in every cluster of the mesh, ${restart}`,
    );
  }
  if (!/^\d+$/.test(id) || Number(id) > Number(max)) {
    return fail(
      `${MESH}: ${CILIUM_CONFIG} sets cluster-id: ${id}, and Cilium accepts 1-${max} ` +
        `(with max-connected-clusters: ${max}; its agents do not start)`,
      `set cluster.id to a number in 1-${max} that no other cluster of the mesh has, ${restart}`,
    );
  }
  if (name === 'default' || name.length > 32 || !CLUSTER_NAME.test(name)) {
    const why =
      name === 'default'
        ? 'the default name, which Cilium refuses beside a cluster-id'
        : "not a name Cilium accepts: at most 32 lower case letters, digits and '-', beginning and ending with a letter or digit";
    return fail(
      `${MESH}: ${CILIUM_CONFIG} sets cluster-id: ${id} with cluster-name: ${name}, ${why} (its agents do not start)`,
      `set cluster.name to a name no other cluster of the mesh has, ${restart}`,
    );
  }
  return ok(
    `${MESH}: ${CILIUM_CONFIG} sets cluster-id: ${id} and cluster-name: ${name}; ` +
      'every cluster of the mesh needs an id and a name of its own (the others are not read)',
  );
}

/**
 * ClusterMesh puts every remote pod address in the ipcache with its node (pkg/clustermesh/remote_cluster.go,
 * pkg/ipcache/kvstore.go): in tunnel mode, Cilium's default (pkg/defaults RoutingMode), a packet goes to that
 * node whatever range the address lies in. In native routing, the network between the clusters routes it,
 * commonly by each cluster's PodCIDRs, which a shared range cuts across.
 */
function routingModeCheck(config: Record<string, string>): Check {
  if (config['routing-mode'] === 'native') {
    return warn(
      `${MESH}: ${CILIUM_CONFIG} sets routing-mode: native, so the network between the clusters carries pod traffic, ` +
        "commonly routing each cluster's PodCIDRs: an address of a shared pool (or of any range not in this cluster's PodCIDRs) " +
        'reaches a pod here from another cluster only if that network routes it to its node address by address',
      'advertise each pod address of a shared pool to the network (BGP per pod address, for example), ' +
        'or use routingMode: tunnel (routing-mode: tunnel in cilium-config)',
    );
  }
  return ok(
    `${MESH}: ${CILIUM_CONFIG} sets routing-mode: ${config['routing-mode'] ?? 'tunnel (the default)'}, ` +
      'so Cilium tunnels to a pod of another cluster by its own address (ipcache), in whatever range it lies',
  );
}

// Submariner: the Submariner resource the operator reconciles (submariner-operator api/v1alpha1/submariner_types.go;
// Globalnet runs when spec.globalCIDR is set, internal/controllers/submariner/submariner_controller.go). Read from
// the operator's source on GitHub, not a pinned module: the Go module proxy does not serve it here.

const SUBMARINERS: Resource = { group: 'submariner.io', version: 'v1alpha1', plural: 'submariners' };

async function submarinerChecks(source: ClusterSource): Promise<Check[]> {
  const listed = await source.list(SUBMARINERS);
  if (listed instanceof Unread) {
    return listed.missing
      ? []
      : [
          unreadable(
            listed,
            'Submariners (submariner.io/v1alpha1)',
            'whether Submariner runs Globalnet (spec.globalCIDR)',
          ),
        ];
  }
  return listed.map(submarinerCheck);
}

interface SubmarinerObject {
  metadata?: { namespace?: string; name?: string };
  spec?: { globalCIDR?: string; clusterCIDR?: string };
  status?: { clusterCIDR?: string };
}

function submarinerCheck(obj: unknown): Check {
  const { metadata, spec, status } = obj as SubmarinerObject;
  const what = `Submariner: Submariner ${metadata?.namespace ?? ''}/${metadata?.name ?? ''}`;
  const globalCidr = spec?.globalCIDR?.trim();
  if (globalCidr) {
    return warn(
      `${what} runs Globalnet (spec.globalCIDR: ${globalCidr}): other clusters reach this cluster's pods through ` +
        "global IPs, never by the pods' own addresses, so the addresses netpin pins here (a ClusterSet's shared ones too) " +
        'are of use inside this cluster only',
      'reach these pods from other clusters through Services exported with Submariner, or join the clusters without ' +
        "Globalnet (their pod CIDRs must then not overlap), listing a shared pool's range in the cluster CIDR of the cluster that uses it",
    );
  }
  // The operator writes the CIDR it uses to status.clusterCIDR: spec.clusterCIDR, else the one it discovered.
  const cidr = status?.clusterCIDR?.trim() || spec?.clusterCIDR?.trim();
  return ok(
    `${what} runs without Globalnet and routes ` +
      (cidr ? `cluster CIDR ${cidr}` : 'its cluster CIDR (none discovered yet: status.clusterCIDR is empty)') +
      " to this cluster: other clusters reach a pod here by its own address only inside that CIDR, a shared pool's addresses included",
  );
}

// Antrea Multi-cluster: the member's Multi-cluster Controller configuration (antrea multicluster/apis/multicluster/
// v1alpha1/multiclusterconfig_types.go, multicluster/cmd/multicluster-controller/options.go) in the ConfigMap
// of Antrea's member manifest (multicluster/build/yamls/antrea-multicluster-member.yml; docs/multicluster/user-guide.md,
// "Multi-cluster Pod-to-Pod Connectivity"), read from Antrea's main branch on GitHub, not a pinned module: the Go
// module proxy does not serve it here. A member installed elsewhere than kube-system is not found.

const MC_CONFIG = 'ConfigMap kube-system/antrea-mc-controller-config';
const MC_FILE = 'controller_manager_config.yaml';
const ANTREA_MC = 'Antrea Multi-cluster';

async function antreaMulticlusterChecks(source: ClusterSource): Promise<Check[]> {
  const config = await source.configMap('kube-system', 'antrea-mc-controller-config');
  if (config instanceof Unread) {
    return config.missing ? [] : [unreadable(config, MC_CONFIG, `${ANTREA_MC} (podCIDRs)`)];
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(config[MC_FILE] ?? '');
  } catch (e) {
    const reason = (e as Error).message.split('\n')[0];
    return [warn(`${ANTREA_MC}: ${MC_FILE} in ${MC_CONFIG} is not YAML (${reason}): not checked its podCIDRs`)];
  }
  const listed = (parsed as { podCIDRs?: unknown } | null)?.podCIDRs;
  // The controller skips empty entries, as the manifest's default `- ""`.
  const podCidrs = (Array.isArray(listed) ? listed : []).filter((c): c is string => typeof c === 'string' && c !== '');
  if (podCidrs.length === 0) {
    return [
      warn(
        `${ANTREA_MC}: ${MC_FILE} in ${MC_CONFIG} lists no podCIDRs, so Antrea routes no pod address between the members ` +
          "(Pod-to-Pod connectivity is off): other clusters reach this cluster's pods, netpin's addresses included, " +
          'only through multi-cluster Services',
        `list the cluster's pod CIDRs in podCIDRs of ${MC_FILE} and set multicluster.enablePodToPodConnectivity: true ` +
          'in antrea-agent.conf, then restart antrea-mc-controller and antrea-agent',
      ),
    ];
  }
  return [
    warn(
      `${ANTREA_MC}: ${MC_FILE} in ${MC_CONFIG} has Antrea route podCIDRs ${podCidrs.join(', ')} to this cluster, ` +
        "and Antrea asks that no two members' podCIDRs overlap: a shared pool's address reaches a pod from other members " +
        'only in the one member whose podCIDRs hold it',
      "keep each shared pool's addresses in the member whose podCIDRs hold its range, or give each member pools of its own inside its podCIDRs",
    ),
  ];
}

// Kube-OVN OVN-IC: ConfigMap ovn-ic-config in kube-ovn-controller's namespace, kube-system as Kube-OVN installs it
// (pkg/util/const.go InterconnectionConfig; pkg/ovn_ic_controller/ovn_ic_controller.go, resyncInterConnection:
// any enable-ic but "false" interconnects). Kube-OVN's master on GitHub, not a module the proxy serves here.

const IC_CONFIG = 'ConfigMap kube-system/ovn-ic-config';
const OVN_IC = 'Kube-OVN OVN-IC';

async function ovnIcChecks(source: ClusterSource): Promise<Check[]> {
  const config = await source.configMap('kube-system', 'ovn-ic-config');
  if (config instanceof Unread) {
    return config.missing ? [] : [unreadable(config, IC_CONFIG, `${OVN_IC} (enable-ic, az-name)`)];
  }
  if (config['enable-ic'] === 'false') {
    return [ok(`${OVN_IC}: ${IC_CONFIG} sets enable-ic: "false", so this cluster is not interconnected`)];
  }
  return [
    warn(
      `${OVN_IC}: ${IC_CONFIG} interconnects this cluster as availability zone ${config['az-name'] || '(no az-name)'} ` +
        `(auto-route: ${config['auto-route'] === 'true'}), and OVN-IC routes by Subnet CIDR and does not refuse a CIDR ` +
        'that two clusters both use (kube-ovn#7264): a shared range with a Subnet in two clusters is not routed to the cluster ' +
        'that holds each address, and nothing in OVN-IC says so',
      'route each address of a shared pool to the cluster that holds it, or keep a shared pool in one cluster at a time; ' +
        'from kube-ovn#7265, auto-route drops a learned route that overlaps a local Subnet, so such a range is routed between neither',
    ),
  ];
}
