// Read-only access to the cluster for the operator's commands (status, doctor).
import {
  AdmissionregistrationV1Api,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type ConfigurationOptions,
  type V1MutatingWebhookConfiguration,
  type V1Namespace,
  type V1Pod,
} from '@kubernetes/client-node';
import { describeApiError, GROUP, makeApiClientWith, OFF_ADMISSION, VERSION } from '../cluster/kube.js';
import { namespaceLabels, OptIn } from '../cluster/kube-view.js';
import { podPages, podRecord, type PodRecord } from '../cluster/pod-tracker.js';
import { pages } from '../cluster/reflector.js';
import { CLAIMS_PAGE, listClaims, toClaim } from '../cluster/kube-ledger.js';
import type { Claim } from '../ipam/claim.js';
import { compilePool, PoolSpecError, type IPPoolObject, type Pool } from '../ipam/pool.js';

/**
 * The cluster as kubectl finds it: --kubeconfig, else $KUBECONFIG, else ~/.kube/config, else the
 * pod's service account. (serve prefers the service account inside a pod; an operator's
 * $KUBECONFIG wins here, as it does for kubectl.)
 */
export function operatorKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  return kc;
}

export interface ClusterClients {
  custom: CustomObjectsApi;
  core: CoreV1Api;
  apps: AppsV1Api;
  admission: AdmissionregistrationV1Api;
}

/** Every call gives up after OFF_ADMISSION: an operator is told the API server does not answer, not kept waiting. */
export function clusterClients(kc: KubeConfig, options: ConfigurationOptions = OFF_ADMISSION): ClusterClients {
  return {
    custom: makeApiClientWith(kc, CustomObjectsApi, options),
    core: makeApiClientWith(kc, CoreV1Api, options),
    apps: makeApiClientWith(kc, AppsV1Api, options),
    admission: makeApiClientWith(kc, AdmissionregistrationV1Api, options),
  };
}

/** One read whose failure says what was being read. */
export async function reading<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    throw new Error(`reading ${what}: ${describeApiError(e)}`, { cause: e });
  }
}

export interface PoolList {
  pools: Pool[];
  /** Why each IPPool that netpin leaves out is malformed. */
  malformed: string[];
}

/** netpin's IPPools, compiled as the webhook compiles them. */
export async function readPools(custom: CustomObjectsApi): Promise<PoolList> {
  const list = await reading('IPPools', () =>
    custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: 'ippools' }),
  );
  const out: PoolList = { pools: [], malformed: [] };
  for (const obj of (list as { items: IPPoolObject[] }).items) {
    try {
      out.pools.push(compilePool(obj));
    } catch (e) {
      if (!(e instanceof PoolSpecError)) throw e;
      out.malformed.push(`${e.message}: netpin ignores it`);
    }
  }
  out.pools.sort((a, b) => a.name.localeCompare(b.name));
  return out;
}

/** Every IPClaim, a page at a time as the ledger lists them. */
export async function readClaims(custom: CustomObjectsApi): Promise<Claim[]> {
  const objects = await reading('IPClaims', () => listClaims(custom, CLAIMS_PAGE));
  return objects.flatMap((obj) => toClaim(obj) ?? []);
}

/** Every pod of the cluster, a page at a time as the pod tracker lists them. */
export async function readPods(core: CoreV1Api): Promise<V1Pod[]> {
  return reading('pods', async () => {
    const pods: V1Pod[] = [];
    for await (const page of pages(podPages(core))) pods.push(...page.items);
    return pods;
  });
}

/** netpin's MutatingWebhookConfigurations, or why they cannot be read. */
export async function readWebhooks(c: ClusterClients): Promise<V1MutatingWebhookConfiguration[] | string> {
  try {
    return (await c.admission.listMutatingWebhookConfiguration()).items;
  } catch (e) {
    return `reading MutatingWebhookConfigurations: ${describeApiError(e)}`;
  }
}

/**
 * The pods as the server's tracker records them: what a pod holds against other owners depends on
 * whether netpin admits its namespace, judged from netpin's mutating webhook as the server judges it
 * (OptIn), so that the commands count a squatter's forged annotations as the server does: not at all.
 * Unreadable configurations admit no namespace, as in the server.
 */
export function podRecords(
  pods: V1Pod[],
  namespaces: V1Namespace[],
  webhooks: V1MutatingWebhookConfiguration[] | string,
  addressKeys: readonly string[],
): PodRecord[] {
  const labels = new Map(namespaces.map((ns) => [ns.metadata?.name ?? '', namespaceLabels(ns)]));
  const optIn = new OptIn(
    (name) => labels.get(name),
    () => undefined,
  );
  if (typeof webhooks !== 'string') optIn.webhooksChanged(webhooks);
  return pods.map((p) => podRecord(p, addressKeys, optIn.has(p.metadata?.namespace ?? '')));
}
