// netpin as the chart installs it, as far as the API server can tell: the chart's ServiceAccount with
// its ClusterRole, lease Role and admission policies, rendered by `helm template` and applied alone (no
// Deployment, no webhook configuration), and a kubeconfig with a token of that ServiceAccount. A test
// that runs netpin with it proves the chart grants every call netpin makes, and no policy stops it.
import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import * as https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNamespace, waitFor, type Clients } from './cluster.js';
import type { ControlPlane } from './controlplane.js';
import { Helm, type Manifest } from './helm.js';
import { kube } from './rest.js';

const PLURALS: Record<string, string> = {
  ServiceAccount: 'serviceaccounts',
  ClusterRole: 'clusterroles',
  ClusterRoleBinding: 'clusterrolebindings',
  Role: 'roles',
  RoleBinding: 'rolebindings',
  ValidatingAdmissionPolicy: 'validatingadmissionpolicies',
  ValidatingAdmissionPolicyBinding: 'validatingadmissionpolicybindings',
};

export interface ChartIdentity {
  /** A kubeconfig with a token of the chart's ServiceAccount, valid for an hour. */
  kubeconfigPath: string;
  /** The release namespace: the lease Role's, so pass it to netpin as --lease-namespace. */
  namespace: string;
}

/**
 * Applies the chart's ServiceAccount, RBAC and ValidatingAdmissionPolicies for `cni` (release netpin in
 * namespace netpin-system), and returns a kubeconfig as that ServiceAccount once its role is in force.
 * `probe` is an API path the role must allow (GET), which says when it is.
 */
export async function chartIdentity(cp: ControlPlane, c: Clients, cni: string, probe: string): Promise<ChartIdentity> {
  const namespace = 'netpin-system';
  const home = mkdtempSync(join(tmpdir(), 'netpin-helm-'));
  let objs: Manifest[];
  try {
    objs = await new Helm(cp.binDir, home).template({ cni }, [], 'netpin', namespace);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
  await createNamespace(c, namespace);
  let serviceAccount = '';
  for (const o of objs.filter((x) => PLURALS[x.kind])) {
    const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
    const base = group ? `/apis/${group}/${version}` : `/api/${version}`;
    const ns = o.metadata.namespace ? `/namespaces/${o.metadata.namespace}` : '';
    const path = `${base}${ns}/${PLURALS[o.kind]}`;
    const r = await kube(c.rest, 'POST', path, o);
    if (r.status >= 300) throw new Error(`POST ${path}: HTTP ${r.status}: ${JSON.stringify(r.json).slice(0, 500)}`);
    if (o.kind === 'ServiceAccount') serviceAccount = o.metadata.name;
  }
  if (!serviceAccount) throw new Error('the chart rendered no ServiceAccount');
  const tokenRequest = await kube(
    c.rest,
    'POST',
    `/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccount}/token`,
    {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { expirationSeconds: 3600 },
    },
  );
  if (tokenRequest.status !== 201) throw new Error(`TokenRequest: HTTP ${tokenRequest.status}`);
  const token = (tokenRequest.json as { status: { token: string } }).status.token;
  const kubeconfigPath = join(cp.dir, `${serviceAccount}-sa.kubeconfig`);
  await writeFile(
    kubeconfigPath,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: netpin-test',
      '  cluster:',
      `    server: ${cp.url}`,
      `    certificate-authority-data: ${Buffer.from(cp.caPem).toString('base64')}`,
      'users:',
      `- name: ${serviceAccount}`,
      '  user:',
      `    token: ${token}`,
      'contexts:',
      '- name: netpin-test',
      '  context:',
      '    cluster: netpin-test',
      `    user: ${serviceAccount}`,
      'current-context: netpin-test',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  // RBAC takes effect once the API server's authorizer has seen the bindings.
  await waitFor(
    `the chart's role to allow GET ${probe}`,
    async () => (await get(cp, token, probe)) === 200,
    30_000,
    250,
  );
  return { kubeconfigPath, namespace };
}

/** The status of a GET with a bearer token (and no client certificate). */
function get(cp: ControlPlane, token: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    https
      .get(new URL(path, cp.url), { ca: cp.caPem, headers: { authorization: `Bearer ${token}` } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
      .on('error', reject);
  });
}
