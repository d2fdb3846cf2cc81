// `netpin clusterset`: a ClusterSet's members and who holds what of its shared pools, read from the broker;
// and `leave`, which takes a cluster out of the set.
import { CoordinationV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { CLUSTER_LABEL, listClaims, CLAIMS_PAGE, type IPClaimObject } from '../cluster/kube-ledger.js';
import { MEMBERS_NAMESPACE } from '../cluster/clusterset/membership.js';
import { GROUP, OFF_ADMISSION, statusOf, VERSION } from '../cluster/kube.js';
import { describeRanges } from '../ipam/pool.js';
import { CLUSTERSET_USAGE, parseFlags, UsageError } from './args.js';
import { operatorKubeConfig, readPools, reading } from './cluster-read.js';

export async function runClusterSet(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  const now = rest.includes('--now');
  const flags = parseFlags(
    rest.filter((a) => a !== '--now'),
    ['broker-kubeconfig', 'cluster'] as const,
  );
  const path = flags.get('broker-kubeconfig');
  if (!path) throw new UsageError(`--broker-kubeconfig is required\n${CLUSTERSET_USAGE}`);
  const kc = operatorKubeConfig(path);
  if (verb === 'status') {
    console.log(await clusterSetStatus(kc.makeApiClient(CustomObjectsApi), kc.makeApiClient(CoordinationV1Api)));
    return 0;
  }
  if (verb === 'leave') {
    const cluster = flags.get('cluster');
    if (!cluster) throw new UsageError(`--cluster is required\n${CLUSTERSET_USAGE}`);
    console.log(await leave(kc.makeApiClient(CustomObjectsApi), kc.makeApiClient(CoordinationV1Api), cluster, now));
    return 0;
  }
  throw new UsageError(CLUSTERSET_USAGE);
}

/** The members, and per shared pool how many addresses each member cluster holds. */
async function clusterSetStatus(custom: CustomObjectsApi, coordination: CoordinationV1Api): Promise<string> {
  const leases = await reading('the members (Leases in netpin-clusterset)', () =>
    coordination.listNamespacedLease({ namespace: MEMBERS_NAMESPACE }, OFF_ADMISSION),
  );
  const { pools } = await readPools(custom);
  const claims = await reading('IPClaims', () => listClaims(custom, CLAIMS_PAGE));
  const members = new Set(leases.items.map((l) => l.metadata?.name ?? ''));
  const lines = ['MEMBER  INSTALLATION'];
  for (const l of leases.items) lines.push(`${l.metadata?.name ?? ''}  ${l.spec?.holderIdentity ?? ''}`);
  lines.push('', 'POOL  RANGES  CLUSTER  HELD');
  for (const pool of pools) {
    const held = new Map<string, number>();
    for (const c of claims.filter((o) => o.spec.pool === pool.name))
      held.set(clusterOf(c), (held.get(clusterOf(c)) ?? 0) + 1);
    if (held.size === 0) lines.push(`${pool.name}  ${describeRanges(pool)}  -  0`);
    for (const [cluster, n] of [...held].sort()) {
      lines.push(`${pool.name}  ${describeRanges(pool)}  ${cluster}${members.has(cluster) ? '' : ' (left)'}  ${n}`);
    }
  }
  return lines.join('\n');
}

function clusterOf(c: IPClaimObject): string {
  return c.spec.cluster ?? '(none)';
}

/**
 * Takes a cluster out of the set: its Lease goes, and the other members release its claims after their
 * leave grace period; with --now, its claims go at once. Only for a cluster whose netpin no longer runs
 * as a member (it would join again), and whose pods no longer use the addresses.
 */
async function leave(
  custom: CustomObjectsApi,
  coordination: CoordinationV1Api,
  cluster: string,
  now: boolean,
): Promise<string> {
  try {
    await coordination.deleteNamespacedLease({ name: cluster, namespace: MEMBERS_NAMESPACE }, OFF_ADMISSION);
  } catch (e) {
    if (statusOf(e) !== 404) throw e;
  }
  if (!now)
    return `cluster ${cluster} left the ClusterSet; the members release its claims after their leave grace period`;
  const claims = (await custom.listClusterCustomObject(
    { group: GROUP, version: VERSION, plural: 'ipclaims', labelSelector: `${CLUSTER_LABEL}=${cluster}` },
    OFF_ADMISSION,
  )) as { items: IPClaimObject[] };
  let released = 0;
  for (const c of claims.items) {
    try {
      // That very claim: one handed over or claimed again since stays.
      await custom.deleteClusterCustomObject(
        {
          group: GROUP,
          version: VERSION,
          plural: 'ipclaims',
          name: c.metadata?.name ?? '',
          body: { preconditions: { uid: c.metadata?.uid, resourceVersion: c.metadata?.resourceVersion } },
        },
        OFF_ADMISSION,
      );
      released++;
    } catch (e) {
      if (statusOf(e) !== 404 && statusOf(e) !== 409) throw e;
    }
  }
  return `cluster ${cluster} left the ClusterSet; ${released} of its claims released`;
}
