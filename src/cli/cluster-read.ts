// Read-only access to the cluster for the operator's commands (status, doctor).
import {
  AdmissionregistrationV1Api,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type ConfigurationOptions,
  type V1Pod,
} from '@kubernetes/client-node';
import { describeApiError, GROUP, makeApiClientWith, OFF_ADMISSION, VERSION } from '../cluster/kube.js';
import { podPages } from '../cluster/pod-tracker.js';
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
