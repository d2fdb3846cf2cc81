// Which cluster this netpin installation serves, as the members of a ClusterSet tell each other apart.
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { describeApiError, OFF_ADMISSION, statusOf } from '../kube.js';

/** The About API's id property (sig-multicluster KEP-2149): the cluster's id within its ClusterSet. */
const ID_PROPERTY = 'cluster.clusterset.k8s.io';

export interface ClusterIdentity {
  /** The cluster's id in the set: what its claims in the broker name. */
  id: string;
  /** Where the id came from, for messages and `netpin status`. */
  source: 'ClusterProperty' | 'configured' | 'kube-system';
  /** The uid of the cluster's kube-system namespace: tells two installations that claim one id apart. */
  installation: string;
}

/** A DNS label, as the id appears in label values and Lease names. */
const ID = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * The id, in the order an operator expects: the About API's ClusterProperty where the cluster has one,
 * else the id configured for netpin (chart value clusterSet.clusterId), else the kube-system namespace's
 * uid. An id that cannot be read is an error, never a guess.
 */
export async function clusterIdentity(kc: KubeConfig, configured: string | undefined): Promise<ClusterIdentity> {
  const core = kc.makeApiClient(CoreV1Api);
  let installation: string;
  try {
    installation = (await core.readNamespace({ name: 'kube-system' }, OFF_ADMISSION)).metadata?.uid ?? '';
  } catch (e) {
    throw new Error(`reading namespace kube-system, whose uid identifies this cluster: ${describeApiError(e)}`, {
      cause: e,
    });
  }
  if (!installation) throw new Error('namespace kube-system has no uid');
  const property = await readIdProperty(kc);
  const [id, source]: [string, ClusterIdentity['source']] =
    property !== undefined
      ? [property, 'ClusterProperty']
      : configured !== undefined
        ? [configured, 'configured']
        : [installation, 'kube-system'];
  if (!ID.test(id)) {
    throw new Error(
      `the cluster id ${JSON.stringify(id.slice(0, 80))} (from ${source === 'ClusterProperty' ? `ClusterProperty ${ID_PROPERTY}` : source === 'configured' ? '--cluster-id' : 'the uid of kube-system'}) is not a DNS label of at most 63 characters`,
    );
  }
  return { id, source, installation };
}

/** The ClusterProperty's value; undefined where the About API or the property is absent. */
async function readIdProperty(kc: KubeConfig): Promise<string | undefined> {
  try {
    const obj = (await kc
      .makeApiClient(CustomObjectsApi)
      .getClusterCustomObject(
        { group: 'about.k8s.io', version: 'v1alpha1', plural: 'clusterproperties', name: ID_PROPERTY },
        OFF_ADMISSION,
      )) as { spec?: { value?: unknown } };
    const value = obj.spec?.value;
    if (typeof value !== 'string' || value === '') throw new Error(`ClusterProperty ${ID_PROPERTY} has no spec.value`);
    return value;
  } catch (e) {
    if (statusOf(e) === 404) return undefined;
    throw new Error(`reading ClusterProperty ${ID_PROPERTY}: ${describeApiError(e)}`, { cause: e });
  }
}
