// `netpin doctor`: whether the cluster's CNI can honour what netpin writes, read from the CNI's own
// configuration objects, one line per check. Read-only; exits 1 when a check fails.
import { parseArgs } from 'node:util';
import type { AppsV1Api } from '@kubernetes/client-node';
import type { CniName } from '../cni/dialect.js';
import { formatCheck, Unread, warn, type Check, type ClusterSource, type DoctorInputs } from '../cni/doctor.js';
import { dialectFor, doctorFor } from '../cni/index.js';
import { interconnectChecks } from '../cni/interconnect-doctor.js';
import { describeApiError, statusOf } from '../cluster/kube.js';
import { isLive } from '../cluster/pod-tracker.js';
import { ALLOCATED_KEY } from '../intent/keys.js';
import { asCni, parseFlags, UsageError } from './args.js';
import {
  clusterClients,
  operatorKubeConfig,
  readClaims,
  readPods,
  readPools,
  type ClusterClients,
} from './cluster-read.js';

const FLAGS = ['kubeconfig', 'cni'] as const;
/** The chart's label on netpin's Deployment (app.kubernetes.io/name, the chart name unless nameOverride is set). */
const RELEASE_SELECTOR = 'app.kubernetes.io/name=netpin';

/** The --cni in a container's args: the last one, as `netpin serve` reads them; other flags are skipped. */
function cniIn(args: string[]): string | undefined {
  const { values } = parseArgs({ args, options: { cni: { type: 'string' } }, strict: false });
  return typeof values.cni === 'string' ? values.cni : undefined;
}

/** The --cni netpin's Helm release runs with, from its Deployment; without one (or several that differ), --cni is required. */
async function releaseCni(apps: AppsV1Api): Promise<{ cni: CniName; from: string }> {
  let found: Array<{ cni: string; deployment: string }>;
  try {
    const list = await apps.listDeploymentForAllNamespaces({ labelSelector: RELEASE_SELECTOR });
    found = list.items.flatMap((d) => {
      const cni = (d.spec?.template.spec?.containers ?? [])
        .map((c) => cniIn(c.args ?? []))
        .find((v) => v !== undefined);
      return cni === undefined ? [] : [{ cni, deployment: `${d.metadata?.namespace}/${d.metadata?.name}` }];
    });
  } catch (e) {
    throw new UsageError(
      `--cni is required: netpin's Deployment could not be read to find it (${describeApiError(e)})`,
    );
  }
  const distinct = [...new Set(found.map((f) => f.cni))];
  if (distinct.length === 0) {
    throw new UsageError(
      `--cni is required: no netpin Deployment (label ${RELEASE_SELECTOR}) was found to take it from`,
    );
  }
  if (distinct.length > 1) {
    const each = found.map((f) => `${f.deployment}: ${f.cni}`).join(', ');
    throw new UsageError(`--cni is required: netpin's Deployments run with different CNIs (${each})`);
  }
  const from = `the --cni of Deployment ${found[0]!.deployment}`;
  return { cni: asCni(distinct[0]!, from), from };
}

/**
 * Every check for the CNI, in order, then the interconnects' whatever the CNI: those run without an IPPool
 * too, since a ClusterSet member may serve only the broker's shared pools, which doctor does not read.
 */
export async function diagnose(cni: CniName, inputs: DoctorInputs): Promise<Check[]> {
  const checks =
    inputs.pools.length === 0
      ? [warn('no netpin IPPool (netpin.io/v1alpha1) exists, so there is nothing to check against the CNI')]
      : await doctorFor(cni)(inputs);
  return [...checks, ...(await interconnectChecks(inputs))];
}

/** Reads for the checks: a 404 is something missing; any other failure (RBAC first) leaves a check unchecked. */
function apiSource(c: ClusterClients): ClusterSource {
  const unread = (e: unknown, missing: string) =>
    statusOf(e) === 404 ? new Unread(true, missing) : new Unread(false, describeApiError(e));
  return {
    async list(r) {
      try {
        return ((await c.custom.listClusterCustomObject(r)) as { items?: unknown[] }).items ?? [];
      } catch (e) {
        return unread(e, `the cluster serves no ${r.plural}.${r.group} at ${r.version}`);
      }
    },
    async configMap(namespace, name) {
      try {
        return (await c.core.readNamespacedConfigMap({ namespace, name })).data ?? {};
      } catch (e) {
        return unread(e, `ConfigMap ${namespace}/${name} does not exist`);
      }
    },
    async runningPods() {
      return (await readPods(c.core)).filter(isLive).map((p) => ({
        namespace: p.metadata?.namespace ?? '',
        name: p.metadata?.name ?? '',
        podIPs: (p.status?.podIPs ?? []).map((x) => x.ip),
        allocated: p.metadata?.annotations?.[ALLOCATED_KEY],
      }));
    },
    async daemonSets(labelSelector) {
      try {
        const list = await c.apps.listDaemonSetForAllNamespaces({ labelSelector });
        return list.items.map((d) => ({
          namespace: d.metadata?.namespace ?? '',
          name: d.metadata?.name ?? '',
          desired: d.status?.desiredNumberScheduled ?? 0,
          ready: d.status?.numberReady ?? 0,
        }));
      } catch (e) {
        return unread(e, 'the cluster serves no DaemonSets');
      }
    },
    async nodeCount() {
      try {
        return (await c.core.listNode()).items.length;
      } catch (e) {
        return unread(e, 'the cluster serves no Nodes');
      }
    },
  };
}

export async function runDoctor(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, FLAGS);
  const given = flags.get('cni');
  const chosen = given === undefined ? undefined : asCni(given, '--cni');
  const c = clusterClients(operatorKubeConfig(flags.get('kubeconfig')));
  const { cni, from } = chosen === undefined ? await releaseCni(c.apps) : { cni: chosen, from: '--cni' };
  const [pools, claims] = await Promise.all([readPools(c.custom), readClaims(c.custom)]);
  const checks: Check[] = [
    ...pools.malformed.map((text): Check => ({ outcome: 'WARN', text })),
    ...(await diagnose(cni, { pools: pools.pools, claims, source: apiSource(c) })),
  ];
  console.log(`netpin doctor: CNI ${dialectFor(cni).title}, from ${from}`);
  for (const check of checks) console.log(formatCheck(check));
  const count = (o: Check['outcome']) => checks.filter((x) => x.outcome === o).length;
  const failed = count('FAIL');
  const warnings = count('WARN');
  console.log(`${failed} failed, ${warnings} ${warnings === 1 ? 'warning' : 'warnings'}, ${count('ok')} ok`);
  return failed > 0 ? 1 : 0;
}
