// Typed clients for the test API server, and the few waits the scenarios need.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AdmissionregistrationV1Api,
  ApiextensionsV1Api,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type V1CustomResourceDefinition,
  type V1Pod,
} from '@kubernetes/client-node';
import { parse } from 'yaml';
import { repoPath } from './controlplane.js';
import { Helm } from './helm.js';
import { clientFromKubeconfig, kube, type Client } from './rest.js';

/** A kubeconfig for an API server at `server` with no credentials, for tests of what clients do when it misbehaves or is gone. */
export function kubeConfigAt(server: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'test', server, skipTLSVerify: true }],
    users: [{ name: 'test' }],
    contexts: [{ name: 'test', cluster: 'test', user: 'test' }],
    currentContext: 'test',
  });
  return kc;
}

// From the repository root, so that the compiled copy under dist/ (npm run chaos) finds it too.
const CRD_DIR = repoPath('charts/netpin/crds') + '/';

export interface Clients {
  kc: KubeConfig;
  core: CoreV1Api;
  apps: AppsV1Api;
  custom: CustomObjectsApi;
  ext: ApiextensionsV1Api;
  admission: AdmissionregistrationV1Api;
  /** Raw REST over the same kubeconfig, for what client-node's serializer would change. */
  rest: Client;
}

export function clients(kubeconfigPath: string): Clients {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  return {
    kc,
    core: kc.makeApiClient(CoreV1Api),
    apps: kc.makeApiClient(AppsV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    ext: kc.makeApiClient(ApiextensionsV1Api),
    admission: kc.makeApiClient(AdmissionregistrationV1Api),
    rest: clientFromKubeconfig(kubeconfigPath),
  };
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
  everyMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Applies the chart's CRDs, as the chart would, and waits until the API serves them. They are
 * sent as written: the typed client's serializer drops fields it spells differently
 * (x-kubernetes-validations, enum), which would leave the CRDs' own rules untested.
 */
export async function applyCrds(c: Clients): Promise<void> {
  for (const file of readdirSync(CRD_DIR).filter((f) => f.endsWith('.yaml'))) await applyCrdFile(c, CRD_DIR + file);
}

/** Applies one CRD file as written and waits until the API serves it. */
export async function applyCrdFile(c: Clients, file: string): Promise<void> {
  const crd = parse(readFileSync(file, 'utf8')) as V1CustomResourceDefinition;
  // As written: client-node's serializer would drop what its model does not know.
  const path = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';
  const r = await kube(c.rest, 'POST', path, crd);
  if (r.status >= 300) throw new Error(`POST ${path}: HTTP ${r.status}: ${JSON.stringify(r.json).slice(0, 500)}`);
  await waitFor(`CRD ${crd.metadata!.name} established`, async () => {
    const got = await c.ext.readCustomResourceDefinition({ name: crd.metadata!.name! });
    return got.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True');
  });
}

export interface WebhookTarget {
  url: string;
  caPem: string;
}

/**
 * Registers netpin with the chart's own webhook configurations, rendered by `helm template`,
 * so that the tests cannot drift from the chart; only the client config becomes a URL, since
 * the webhook runs on this machine, not in a pod.
 */
export async function registerWebhooks(
  c: Clients,
  target: WebhookTarget,
  binDir: string,
  /**
   * Another set of the same webhooks beside netpin's (the benchmarks' webhook that only allows): its
   * configurations' name, and the namespace label that selects it in place of netpin's opt-in label.
   */
  as?: { name: string; optInLabel: Record<string, string> },
): Promise<void> {
  const home = mkdtempSync(join(tmpdir(), 'netpin-helm-'));
  try {
    const objs = await new Helm(binDir, home).template({ cni: 'calico' });
    const caBundle = Buffer.from(target.caPem).toString('base64');
    for (const config of objs.filter(
      (o) => o.kind === 'MutatingWebhookConfiguration' || o.kind === 'ValidatingWebhookConfiguration',
    )) {
      type Webhook = { clientConfig: { service: { path: string } }; namespaceSelector?: unknown };
      const webhooks = (config.webhooks as Webhook[])
        // Cluster-scoped IPPools have no namespace to select by: netpin's alone check them.
        .filter((w) => !as || w.namespaceSelector)
        .map((w) => ({
          ...w,
          ...(as ? { namespaceSelector: { matchLabels: as.optInLabel } } : {}),
          clientConfig: { url: `${target.url}${w.clientConfig.service.path}`, caBundle },
        }));
      const body = { metadata: { name: as?.name ?? 'netpin' }, webhooks } as never;
      if (config.kind === 'MutatingWebhookConfiguration')
        await c.admission.createMutatingWebhookConfiguration({ body });
      else await c.admission.createValidatingWebhookConfiguration({ body });
    }
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

export async function createNamespace(c: Clients, name: string, labels: Record<string, string> = {}): Promise<void> {
  await c.core.createNamespace({ body: { metadata: { name, labels } } });
}

export async function createPool(c: Clients, name: string, spec: Record<string, unknown>): Promise<void> {
  await c.custom.createClusterCustomObject({
    group: 'netpin.io',
    version: 'v1alpha1',
    plural: 'ippools',
    body: { apiVersion: 'netpin.io/v1alpha1', kind: 'IPPool', metadata: { name }, spec },
  });
}

export interface ClaimView {
  name: string;
  pool: string;
  ip: string;
  owner: { kind: string; namespace: string; name?: string; ordinal?: number; uid?: string };
}

export async function listClaims(c: Clients, pool?: string): Promise<ClaimView[]> {
  const list = (await c.custom.listClusterCustomObject({
    group: 'netpin.io',
    version: 'v1alpha1',
    plural: 'ipclaims',
  })) as { items: Array<{ metadata: { name: string }; spec: Omit<ClaimView, 'name'> }> };
  return list.items
    .map((i) => ({ name: i.metadata.name, ...i.spec }))
    .filter((x) => pool === undefined || x.pool === pool);
}

/** The address Calico would give the pod: netpin's ipAddrs annotation. */
export function calicoIps(pod: V1Pod): string[] {
  const v = pod.metadata?.annotations?.['cni.projectcalico.org/ipAddrs'];
  return v ? (JSON.parse(v) as string[]) : [];
}

/** The pods whose name starts with `prefix`; terminating ones only when asked for. */
export async function podsWithPrefix(
  c: Clients,
  namespace: string,
  prefix: string,
  withTerminating = false,
): Promise<V1Pod[]> {
  const list = await c.core.listNamespacedPod({ namespace });
  return list.items.filter(
    (p) => p.metadata?.name?.startsWith(prefix) && (withTerminating || !p.metadata.deletionTimestamp),
  );
}

/** The denial text of an API call that must be refused; throws when the API server admitted it. */
export async function refusal(p: Promise<unknown>): Promise<string> {
  const outcome = await p.then(
    () => ({ admitted: true as const }),
    (e: unknown) => ({ admitted: false as const, e }),
  );
  if (outcome.admitted) throw new Error('the API server admitted what netpin should refuse');
  return apiMessage(outcome.e);
}

/** The denial text of a failed API call, as kubectl would print it. */
export function apiMessage(e: unknown): string {
  const body = (e as { body?: unknown }).body;
  const parsed = typeof body === 'string' ? safeParse(body) : body;
  return (parsed as { message?: string } | undefined)?.message ?? String(e);
}

function safeParse(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return { message: s };
  }
}
