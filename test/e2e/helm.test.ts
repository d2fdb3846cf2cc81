// The Helm chart: rendered offline for every certificate mode and CNI, then
// installed, upgraded and uninstalled on a real API server of its own. Its IPPool
// webhook has no namespaceSelector and no ready pod behind it, so no IPPool is
// created or changed while the chart is installed, except by an install itself
// (Helm creates IPPools before the webhook configurations).
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import * as https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyAntreaEgressCrds, applyCiliumPodIPPoolCrd } from '../../harness/cni-crds.js';
import { clients } from '../../harness/cluster.js';
import { binaries, startControlPlane, type ControlPlane } from '../../harness/controlplane.js';
import { CHART_DIR, Helm, KUBE_VERSION, only, parseManifests, restPath, type Manifest } from '../../harness/helm.js';
import { clientFromKubeconfig, kube, type Client } from '../../harness/rest.js';

const CNIS = ['calico', 'kube-ovn', 'antrea', 'cilium', 'netpin-ipam'] as const;
const MODES = ['self-signed', 'cert-manager', 'secret'] as const;
const NS = 'netpin-system';
const GENERATE = fileURLToPath(new URL('../../certs/generate.sh', import.meta.url));

// group/resource:verb for every permission the chart grants (derived from src/ipam/kube-ledger.ts and src/cluster/*.ts).
const CLUSTER_RULES = [
  'netpin.io/ipclaims:get',
  'netpin.io/ipclaims:list',
  'netpin.io/ipclaims:watch',
  'netpin.io/ipclaims:create',
  'netpin.io/ipclaims:patch',
  'netpin.io/ipclaims:delete',
  'netpin.io/ippools:list',
  'netpin.io/ippools:watch',
  'netpin.io/ippools/status:patch',
  '/namespaces:list',
  '/namespaces:watch',
  '/pods:list',
  '/pods:watch',
  '/resourcequotas:list',
  'apps/statefulsets:get',
  'apps/statefulsets:list',
  'apps/statefulsets:watch',
  'apps/daemonsets:get',
  'apps/daemonsets:list',
  'apps/daemonsets:watch',
  '/nodes:get',
  '/nodes:list',
  '/nodes:watch',
  'apps/deployments:get',
  'events.k8s.io/events:create',
  'events.k8s.io/events:patch',
  'admissionregistration.k8s.io/mutatingwebhookconfigurations:list',
  'admissionregistration.k8s.io/mutatingwebhookconfigurations:watch',
].sort();
const LEASE_RULES = [
  'coordination.k8s.io/leases:get',
  'coordination.k8s.io/leases:create',
  'coordination.k8s.io/leases:update',
].sort();

function flattenRules(role: Manifest): string[] {
  const out: string[] = [];
  for (const r of role.rules as Array<{
    apiGroups: string[];
    resources: string[];
    verbs: string[];
    resourceNames?: string[];
    nonResourceURLs?: string[];
  }>) {
    expect(r.resourceNames).toBeUndefined();
    expect(r.nonResourceURLs).toBeUndefined();
    for (const g of r.apiGroups) for (const res of r.resources) for (const v of r.verbs) out.push(`${g}/${res}:${v}`);
  }
  return out.sort();
}

interface Webhook {
  name: string;
  clientConfig: { caBundle?: string; service: { name: string; namespace: string; path: string; port: number } };
  rules: Array<{
    apiGroups: string[];
    apiVersions: string[];
    operations: string[];
    resources: string[];
    scope: string;
  }>;
  namespaceSelector?: { matchExpressions: Array<{ key: string; operator: string; values: string[] }> };
  [field: string]: unknown;
}

function webhooks(objs: Manifest[]): {
  mutate: Webhook;
  validate: Webhook;
  ippools: Webhook;
  all: Webhook[];
  configs: Manifest[];
} {
  const m = only(objs, 'MutatingWebhookConfiguration');
  const v = only(objs, 'ValidatingWebhookConfiguration');
  const byName = (list: Webhook[], name: string) => {
    const w = list.find((x) => x.name === name);
    if (!w) throw new Error(`no webhook ${name}`);
    return w;
  };
  expect(m.webhooks).toHaveLength(1);
  expect(v.webhooks).toHaveLength(2);
  return {
    mutate: byName(m.webhooks, 'mutate.netpin.io'),
    validate: byName(v.webhooks, 'validate.netpin.io'),
    ippools: byName(v.webhooks, 'ippools.validate.netpin.io'),
    all: [...m.webhooks, ...v.webhooks],
    configs: [m, v],
  };
}

const WORKLOAD_RULES = [
  { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['pods'], scope: 'Namespaced' },
  {
    apiGroups: ['apps'],
    apiVersions: ['v1'],
    operations: ['CREATE', 'UPDATE'],
    resources: ['deployments', 'statefulsets', 'daemonsets'],
    scope: 'Namespaced',
  },
  {
    apiGroups: ['batch'],
    apiVersions: ['v1'],
    operations: ['CREATE', 'UPDATE'],
    resources: ['jobs', 'cronjobs'],
    scope: 'Namespaced',
  },
  {
    apiGroups: ['apps'],
    apiVersions: ['v1'],
    operations: ['UPDATE'],
    resources: ['deployments/scale', 'statefulsets/scale'],
    scope: 'Namespaced',
  },
];

function expectArgs(deploy: Manifest, cni: string, grace = '15', level = 'info'): void {
  const c = deploy.spec.template.spec.containers[0];
  expect(c.args).toEqual([
    'serve',
    '--cni',
    cni,
    '--ledger',
    'kube',
    '--listen',
    '0.0.0.0:8443',
    '--metrics-listen',
    '0.0.0.0:9443',
    '--cert-dir',
    '/etc/netpin/tls',
    '--lease-namespace',
    '$(POD_NAMESPACE)',
    '--claim-grace',
    grace,
    '--egress-grace',
    '300',
    '--log-level',
    level,
  ]);
}

/** The certificates of a PEM bundle given as base64, in order. */
function bundleOf(b64: string): X509Certificate[] {
  const pem = Buffer.from(b64, 'base64').toString('utf8');
  return (pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []).map(
    (c) => new X509Certificate(c),
  );
}

const DAY_MS = 86_400_000;

/** Days from now to a certificate's NotAfter. */
function daysLeft(cert: X509Certificate): number {
  return (Date.parse(cert.validTo) - Date.now()) / DAY_MS;
}

function container(objs: Manifest[]) {
  return only(objs, 'Deployment').spec.template.spec.containers[0];
}

function volume(objs: Manifest[], name: string) {
  return only(objs, 'Deployment').spec.template.spec.volumes.find((v: { name: string }) => v.name === name);
}

function checksumOf(objs: Manifest[]): string {
  return only(objs, 'Deployment').spec.template.metadata.annotations['checksum/config'];
}

describe('helm chart, rendered offline', () => {
  let helm: Helm;
  let work: string;
  let caPem: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'netpin-helm-'));
    helm = new Helm(await binaries(), join(work, 'helm'));
    // A CA bundle for secret mode, from the development script.
    await promisify(execFile)('bash', [GENERATE, join(work, 'certs')]);
    caPem = await readFile(join(work, 'certs', 'ca.crt'), 'utf8');
  });
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  const sets = (mode: string, cni: string) => ({
    cni,
    'certificates.mode': mode,
    ...(mode === 'secret' ? { 'certificates.secret.name': 'my-netpin-tls' } : {}),
  });
  const extra = (mode: string) =>
    mode === 'secret' ? ['--set-file', `certificates.secret.caBundle=${join(work, 'certs', 'ca.crt')}`] : [];

  it('passes helm lint with a CNI set, and fails without one', async () => {
    const r = await helm.run(['lint', CHART_DIR, '--set', 'cni=calico']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect((await helm.run(['lint', CHART_DIR])).code).not.toBe(0);
  });

  describe.each(MODES.flatMap((mode) => CNIS.map((cni) => [mode, cni] as const)))(
    'certificates.mode=%s, cni=%s',
    (mode, cni) => {
      let objs: Manifest[];
      beforeAll(async () => {
        objs = await helm.template(sets(mode, cni), extra(mode));
      });

      it('renders webhooks scoped to opted-in namespaces, with the configured policy', () => {
        const w = webhooks(objs);
        for (const hook of w.all) {
          expect(hook.sideEffects).toBe('NoneOnDryRun');
          expect(hook.failurePolicy).toBe('Fail');
          expect(hook.timeoutSeconds).toBe(10);
          expect(hook.admissionReviewVersions).toEqual(['v1']);
          expect(hook.matchPolicy).toBe('Equivalent');
          expect(hook.clientConfig.service).toMatchObject({ name: 'netpin', namespace: NS, port: 443 });
        }
        expect(w.mutate.clientConfig.service.path).toBe('/mutate');
        expect(w.validate.clientConfig.service.path).toBe('/validate');
        expect(w.ippools.clientConfig.service.path).toBe('/validate');
        expect(w.mutate.rules).toEqual(WORKLOAD_RULES);
        expect(w.validate.rules).toEqual(WORKLOAD_RULES);
        expect(w.ippools.rules).toEqual([
          {
            apiGroups: ['netpin.io'],
            apiVersions: ['v1alpha1'],
            operations: ['CREATE', 'UPDATE', 'DELETE'],
            resources: ['ippools'],
            scope: 'Cluster',
          },
        ]);
        for (const hook of [w.mutate, w.validate]) {
          expect(hook.namespaceSelector).toEqual({
            matchExpressions: [
              { key: 'netpin.io/enabled', operator: 'In', values: ['true'] },
              { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', NS] },
            ],
          });
        }
        expect(w.ippools.namespaceSelector).toBeUndefined();
        expect(w.ippools.objectSelector).toBeUndefined();
      });

      it('wires the CA: caBundle for self-signed and secret, cert-manager injection otherwise', () => {
        const w = webhooks(objs);
        const injected = w.configs.map((c) => c.metadata.annotations?.['cert-manager.io/inject-ca-from']);
        const bundles = w.all.map((h) => h.clientConfig.caBundle);
        const secretName = only(objs, 'Deployment').spec.template.spec.volumes.find(
          (v: { name: string }) => v.name === 'tls',
        ).secret.secretName;
        if (mode === 'cert-manager') {
          expect(injected).toEqual([`${NS}/netpin`, `${NS}/netpin`]);
          expect(bundles).toEqual([undefined, undefined, undefined]);
          const serving = only(objs, 'Certificate', 'netpin');
          expect(serving.spec.secretName).toBe(secretName);
          expect(serving.spec.dnsNames).toEqual([
            'netpin',
            `netpin.${NS}`,
            `netpin.${NS}.svc`,
            `netpin.${NS}.svc.cluster.local`,
          ]);
          expect(serving.spec.issuerRef).toMatchObject({ kind: 'Issuer', name: 'netpin-ca' });
          expect(only(objs, 'Certificate', 'netpin-ca').spec).toMatchObject({
            isCA: true,
            secretName: 'netpin-ca',
            issuerRef: { name: 'netpin-selfsigned' },
          });
          expect(only(objs, 'Issuer', 'netpin-selfsigned').spec).toEqual({ selfSigned: {} });
          expect(only(objs, 'Issuer', 'netpin-ca').spec).toEqual({ ca: { secretName: 'netpin-ca' } });
          expect(objs.filter((o) => o.kind === 'Secret')).toEqual([]);
          return;
        }
        expect(injected).toEqual([undefined, undefined]);
        expect(objs.filter((o) => o.kind === 'Certificate' || o.kind === 'Issuer')).toEqual([]);
        expect(new Set(bundles).size).toBe(1);
        const bundle = Buffer.from(bundles[0]!, 'base64').toString('utf8');
        if (mode === 'secret') {
          expect(secretName).toBe('my-netpin-tls');
          expect(bundle).toBe(caPem.trim());
          expect(objs.filter((o) => o.kind === 'Secret')).toEqual([]);
          return;
        }
        const secret = only(objs, 'Secret', 'netpin-tls');
        expect(secret.metadata.name).toBe(secretName);
        expect(secret.type).toBe('kubernetes.io/tls');
        expect(secret.data['ca.crt']).toBe(bundles[0]);
        const ca = new X509Certificate(bundle);
        const cert = new X509Certificate(Buffer.from(secret.data['tls.crt'], 'base64'));
        expect(cert.verify(ca.publicKey)).toBe(true);
        for (const name of ['netpin', `netpin.${NS}`, `netpin.${NS}.svc`, `netpin.${NS}.svc.cluster.local`]) {
          expect(cert.subjectAltName).toContain(`DNS:${name}`);
        }
        // A serving certificate of a year, a CA of ten; each Secret notes its certificate's NotAfter,
        // which the next upgrade compares with the time. The CA's key is in a Secret the pods do not mount.
        expect(daysLeft(cert)).toBeGreaterThan(364.9);
        expect(daysLeft(cert)).toBeLessThan(365.1);
        expect(daysLeft(ca)).toBeGreaterThan(3649.9);
        expect(daysLeft(ca)).toBeLessThan(3650.1);
        const caSecret = only(objs, 'Secret', 'netpin-selfsigned-ca');
        expect(caSecret.type).toBe('kubernetes.io/tls');
        expect(bundleOf(caSecret.data['tls.crt'])[0]!.fingerprint256).toBe(ca.fingerprint256);
        expect(caSecret.data['previous.crt']).toBeUndefined();
        const noted = (s: Manifest) => Date.parse(s.metadata.annotations!['netpin.io/not-after']!);
        expect(Math.abs(noted(secret) - Date.parse(cert.validTo))).toBeLessThan(60_000);
        expect(Math.abs(noted(caSecret) - Date.parse(ca.validTo))).toBeLessThan(60_000);
        const mounted = JSON.stringify(only(objs, 'Deployment').spec.template.spec.volumes);
        expect(mounted).not.toContain('netpin-selfsigned-ca');
      });

      it('runs two hardened replicas with the expected arguments, probes and mounts', () => {
        const deploy = only(objs, 'Deployment');
        const pod = deploy.spec.template.spec;
        const c = pod.containers[0];
        expect(deploy.spec.replicas).toBe(2);
        expectArgs(deploy, cni);
        expect(c.env).toEqual([
          { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
        ]);
        expect(c.ports).toEqual([
          { name: 'https', containerPort: 8443, protocol: 'TCP' },
          { name: 'metrics', containerPort: 9443, protocol: 'TCP' },
        ]);
        // On the metrics port, which never asks for a client certificate: the kubelet has none.
        expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics', scheme: 'HTTPS' });
        expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics', scheme: 'HTTPS' });
        expect(c.resources.requests).toBeDefined();
        expect(c.securityContext).toMatchObject({
          runAsNonRoot: true,
          readOnlyRootFilesystem: true,
          allowPrivilegeEscalation: false,
          capabilities: { drop: ['ALL'] },
          seccompProfile: { type: 'RuntimeDefault' },
        });
        expect([65532, 1000]).toContain(c.securityContext.runAsUser);
        expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
        expect(pod.priorityClassName).toBe('system-cluster-critical');
        expect(c.volumeMounts).toEqual([
          { name: 'tls', mountPath: '/etc/netpin/tls', readOnly: true },
          { name: 'tmp', mountPath: '/tmp' },
        ]);
        expect(pod.volumes.find((v: { name: string }) => v.name === 'tmp')).toEqual({
          name: 'tmp',
          emptyDir: { sizeLimit: '64Mi' },
        });
        const anti = pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm;
        expect(anti.topologyKey).toBe('kubernetes.io/hostname');
        expect(anti.labelSelector.matchLabels).toEqual(deploy.spec.selector.matchLabels);
        expect(checksumOf(objs)).toMatch(/^[0-9a-f]{64}$/);

        const pdb = only(objs, 'PodDisruptionBudget');
        expect(pdb.spec).toEqual({ minAvailable: 1, selector: { matchLabels: deploy.spec.selector.matchLabels } });
        const svc = only(objs, 'Service');
        expect(svc.spec.ports).toEqual([
          { name: 'https', port: 443, targetPort: 'https', protocol: 'TCP' },
          { name: 'metrics', port: 9443, targetPort: 'metrics', protocol: 'TCP' },
        ]);
        // Off by default: no NetworkPolicy, no client CA.
        expect(objs.filter((o) => o.kind === 'NetworkPolicy' || o.kind === 'ConfigMap')).toEqual([]);
        expect(c.args).not.toContain('--client-ca');
        expect(svc.spec.selector).toEqual(deploy.spec.selector.matchLabels);
      });

      it('grants exactly the API calls netpin makes', () => {
        const sa = only(objs, 'ServiceAccount');
        expect(only(objs, 'Deployment').spec.template.spec.serviceAccountName).toBe(sa.metadata.name);
        // Calico's IPPools are read only where the cluster runs Calico.
        // Each CNI's own resources, only where the cluster runs that CNI.
        const verbs = (res: string) => ['list', 'create', 'update', 'delete'].map((v) => `${res}:${v}`);
        const own: Record<string, string[]> = {
          calico: ['crd.projectcalico.org/ippools:list'],
          antrea: [...verbs('crd.antrea.io/egresses'), ...verbs('crd.antrea.io/externalippools')],
          // The single-address pools of pinned IPPools: get after a 409 at a pod's admission
          // (src/cluster/resource-controller.ts ensure), list at an IPPool's too (src/admission/ippools.ts).
          cilium: [
            ...verbs('cilium.io/ciliumegressgatewaypolicies'),
            ...verbs('cilium.io/ciliumpodippools'),
            'cilium.io/ciliumpodippools:get',
          ],
        };
        expect(flattenRules(only(objs, 'ClusterRole'))).toEqual([...CLUSTER_RULES, ...(own[cni] ?? [])].sort());
        const role = only(objs, 'Role');
        expect(role.metadata.namespace).toBe(NS);
        expect(flattenRules(role)).toEqual(LEASE_RULES);
        for (const kind of ['ClusterRoleBinding', 'RoleBinding']) {
          const b = only(objs, kind);
          expect(b.roleRef).toEqual({
            apiGroup: 'rbac.authorization.k8s.io',
            kind: kind.replace('Binding', ''),
            name: 'netpin',
          });
          expect(b.subjects).toEqual([{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: NS }]);
        }
        const rbac = JSON.stringify(objs.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role'));
        expect(rbac).not.toContain('*');

        // What RBAC cannot narrow on Antrea and Cilium, an admission policy does: netpin's own objects only.
        const policies = objs.filter((o) => o.kind.startsWith('ValidatingAdmissionPolicy'));
        if (cni !== 'antrea' && cni !== 'cilium') {
          expect(policies).toEqual([]);
          return;
        }
        const policy = only(objs, 'ValidatingAdmissionPolicy', 'netpin-managed-objects');
        const group = cni === 'antrea' ? 'crd.antrea.io' : 'cilium.io';
        expect(policy.spec.matchConstraints.resourceRules).toEqual([
          {
            apiGroups: [group],
            apiVersions: ['*'],
            operations: ['CREATE', 'UPDATE', 'DELETE'],
            resources:
              cni === 'antrea' ? ['egresses', 'externalippools'] : ['ciliumegressgatewaypolicies', 'ciliumpodippools'],
          },
        ]);
        // Every kind of the CNI's that the ClusterRole lets netpin create, and so update and delete.
        const written = flattenRules(only(objs, 'ClusterRole'))
          .filter((r) => r.startsWith(`${group}/`) && r.endsWith(':create'))
          .map((r) => r.slice(group.length + 1, -':create'.length));
        expect([...policy.spec.matchConstraints.resourceRules[0].resources].sort()).toEqual(written);
        expect(policy.spec.matchConditions).toEqual([
          {
            name: 'netpin-service-account',
            expression: `request.userInfo.username == 'system:serviceaccount:${NS}:${sa.metadata.name}'`,
          },
        ]);
        expect(policy.spec.validations[0].expression).toContain(
          "object.metadata.labels['app.kubernetes.io/managed-by'] == 'netpin'",
        );
        expect(policy.spec.validations[0].expression).toContain('oldObject == null ||');
        expect(only(objs, 'ValidatingAdmissionPolicyBinding', 'netpin-managed-objects').spec).toEqual({
          policyName: 'netpin-managed-objects',
          validationActions: ['Deny'],
        });
      });
    },
  );

  it('takes the opt-in label, failurePolicy, timeout and extra exclusions from values', async () => {
    const objs = await helm.template(
      {
        cni: 'cilium',
        'webhook.optInLabel.key': 'example.com/ipam',
        'webhook.optInLabel.value': 'yes',
        'webhook.failurePolicy': 'Ignore',
        'webhook.timeoutSeconds': 5,
        'webhook.excludeNamespaces[0]': 'monitoring',
        claimGraceSeconds: 90,
        logLevel: 'debug',
        priorityClassName: '',
      },
      [],
      'edge',
      'ipam',
    );
    const w = webhooks(objs);
    for (const hook of w.all) {
      expect(hook.failurePolicy).toBe('Ignore');
      expect(hook.timeoutSeconds).toBe(5);
      expect(hook.clientConfig.service).toMatchObject({ name: 'edge-netpin', namespace: 'ipam' });
    }
    expect(w.mutate.namespaceSelector).toEqual({
      matchExpressions: [
        { key: 'example.com/ipam', operator: 'In', values: ['yes'] },
        { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'ipam', 'monitoring'] },
      ],
    });
    expect(w.validate.namespaceSelector).toEqual(w.mutate.namespaceSelector);
    const deploy = only(objs, 'Deployment');
    expectArgs(deploy, 'cilium', '90', 'debug');
    expect(deploy.spec.template.spec.priorityClassName).toBeUndefined();
    const cert = new X509Certificate(Buffer.from(only(objs, 'Secret', 'edge-netpin-tls').data['tls.crt'], 'base64'));
    expect(cert.subjectAltName).toContain('DNS:edge-netpin.ipam.svc');
  });

  it('checksums only start-time configuration, not the certificate', async () => {
    const a = await helm.template({ cni: 'calico' });
    const b = await helm.template({ cni: 'calico' });
    // Two installs generate two CAs, yet the pods would not roll.
    expect(only(a, 'Secret', 'netpin-tls').data['ca.crt']).not.toBe(only(b, 'Secret', 'netpin-tls').data['ca.crt']);
    expect(checksumOf(a)).toBe(checksumOf(b));
    expect(checksumOf(await helm.template({ cni: 'calico', 'certificates.mode': 'cert-manager' }))).toBe(checksumOf(a));
    expect(checksumOf(await helm.template({ cni: 'calico', logLevel: 'debug' }))).not.toBe(checksumOf(a));
    expect(checksumOf(await helm.template({ cni: 'antrea' }))).not.toBe(checksumOf(a));
  });

  it('renders declared IPPools as netpin.io/v1alpha1 objects', async () => {
    const pools = [
      {
        name: 'web',
        spec: {
          cidr: '10.20.0.0/24',
          exclude: ['10.20.0.1'],
          namespaceSelector: { matchLabels: { team: 'web' } },
          cni: { calico: { pool: 'web-pool' } },
        },
      },
      { name: 'db', labels: { tier: 'data' }, spec: { ranges: ['10.30.0.10-10.30.0.19'] } },
    ];
    const objs = await helm.template({ cni: 'calico' }, ['--set-json', `ippools=${JSON.stringify(pools)}`]);
    const rendered = objs.filter((o) => o.kind === 'IPPool');
    expect(rendered.map((p) => [p.apiVersion, p.metadata.name, p.spec])).toEqual(
      pools.map((p) => ['netpin.io/v1alpha1', p.name, p.spec]),
    );
    expect(rendered[1]!.metadata.labels).toMatchObject({ tier: 'data', 'app.kubernetes.io/instance': 'netpin' });
    expect(rendered.every((p) => p.metadata.annotations?.['helm.sh/resource-policy'] === 'keep')).toBe(true);
    expect(rendered.every((p) => p.metadata.namespace === undefined)).toBe(true);
    expect((await helm.template({ cni: 'calico' })).filter((o) => o.kind === 'IPPool')).toEqual([]);
  });

  it('accepts a caBundle given as base64 as well as PEM', async () => {
    const b64 = Buffer.from(caPem.trim()).toString('base64');
    const objs = await helm.template({
      cni: 'calico',
      'certificates.mode': 'secret',
      'certificates.secret.name': 'x',
      'certificates.secret.caBundle': b64,
    });
    expect(webhooks(objs).all.map((h) => h.clientConfig.caBundle)).toEqual([b64, b64, b64]);
  });

  it.each<[string, Record<string, string | number>, RegExp]>([
    ['an unknown CNI', { cni: 'flannel' }, /cni.*must be one of|value must be one of/],
    ['no CNI', {}, /cni/],
    [
      'secret mode without a caBundle',
      { cni: 'calico', 'certificates.mode': 'secret', 'certificates.secret.name': 'x' },
      /caBundle/,
    ],
    [
      'secret mode without a Secret name',
      { cni: 'calico', 'certificates.mode': 'secret', 'certificates.secret.caBundle': 'Zm9v' },
      /secret\/name/,
    ],
    ['an unknown certificate mode', { cni: 'calico', 'certificates.mode': 'acme' }, /mode/],
    ['an unknown failurePolicy', { cni: 'calico', 'webhook.failurePolicy': 'Retry' }, /failurePolicy/],
    ['a timeout over 30 s', { cni: 'calico', 'webhook.timeoutSeconds': 31 }, /timeoutSeconds/],
    [
      'a renewal period as long as the certificate',
      { cni: 'calico', 'certificates.selfSigned.renewBeforeDays': 365 },
      /renewBeforeDays must be less than validityDays/,
    ],
    ['a NetworkPolicy with no webhookFrom', { cni: 'calico', 'networkPolicy.enabled': 'true' }, /webhookFrom/],
    ['client authentication with no CA bundle', { cni: 'calico', 'webhook.clientAuth.enabled': 'true' }, /clientAuth/],
    [
      'client authentication with two CA bundles',
      {
        cni: 'calico',
        'webhook.clientAuth.enabled': 'true',
        'webhook.clientAuth.existingSecret': 'a',
        'webhook.clientAuth.existingConfigMap': 'b',
      },
      /clientAuth/,
    ],
  ])('refuses %s (values.schema.json)', async (_, values, message) => {
    const r = await helm.run([
      'template',
      'netpin',
      CHART_DIR,
      '-n',
      NS,
      '--kube-version',
      KUBE_VERSION,
      ...Object.entries(values).flatMap(([k, v]) => ['--set', `${k}=${v}`]),
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
  });

  it('renders a NetworkPolicy only when enabled, admitting each port from the peers given', async () => {
    expect((await helm.template({ cni: 'calico' })).filter((o) => o.kind === 'NetworkPolicy')).toEqual([]);
    const webhookFrom = [{ ipBlock: { cidr: '192.0.2.10/32' } }, { ipBlock: { cidr: '192.0.2.11/32' } }];
    const probesFrom = [{ ipBlock: { cidr: '10.0.0.0/16' } }];
    const objs = await helm.template({ cni: 'calico', 'networkPolicy.enabled': true }, [
      '--set-json',
      `networkPolicy.webhookFrom=${JSON.stringify(webhookFrom)}`,
      '--set-json',
      `networkPolicy.probesFrom=${JSON.stringify(probesFrom)}`,
    ]);
    const np = only(objs, 'NetworkPolicy', 'netpin');
    const deploy = only(objs, 'Deployment');
    expect(np.metadata.namespace).toBe(NS);
    expect(np.spec.podSelector).toEqual({ matchLabels: deploy.spec.selector.matchLabels });
    // Egress stays open unless rules are given: the chart cannot know the API server's address.
    expect(np.spec.policyTypes).toEqual(['Ingress']);
    expect(np.spec.egress).toBeUndefined();
    expect(np.spec.ingress).toEqual([
      { ports: [{ port: 'https', protocol: 'TCP' }], from: webhookFrom },
      {
        ports: [{ port: 'metrics', protocol: 'TCP' }],
        from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }, ...probesFrom],
      },
    ]);
    // The named ports are the container's webhook and metrics ports, and the probes use the latter.
    const c = container(objs);
    expect(c.ports.map((p: { name: string; containerPort: number }) => [p.name, p.containerPort])).toEqual([
      ['https', 8443],
      ['metrics', 9443],
    ]);
    expect([c.readinessProbe.httpGet.port, c.livenessProbe.httpGet.port]).toEqual(['metrics', 'metrics']);

    const egress = [{ to: [{ ipBlock: { cidr: '192.0.2.10/32' } }], ports: [{ port: 6443, protocol: 'TCP' }] }];
    const restricted = only(
      await helm.template({ cni: 'calico', 'networkPolicy.enabled': true }, [
        '--set-json',
        `networkPolicy.webhookFrom=${JSON.stringify(webhookFrom)}`,
        '--set-json',
        `networkPolicy.egress=${JSON.stringify(egress)}`,
        '--set-json',
        'networkPolicy.metricsFrom=[]',
      ]),
      'NetworkPolicy',
    );
    expect(restricted.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(restricted.spec.egress).toEqual(egress);
    // Nothing may reach the metrics port when no peer is listed for it.
    expect(restricted.spec.ingress).toEqual([{ ports: [{ port: 'https', protocol: 'TCP' }], from: webhookFrom }]);
  });

  it('with client authentication, mounts the CA bundle read-only and passes --client-ca', async () => {
    const caFile = join(work, 'certs', 'ca.crt');
    const clientCaArgs = (objs: Manifest[]) => {
      const args: string[] = container(objs).args;
      const at = args.indexOf('--client-ca');
      return at < 0 ? [] : args.slice(at, at + 2);
    };
    const mount = { name: 'client-ca', mountPath: '/etc/netpin/client-ca', readOnly: true };

    // Given inline: the chart's ConfigMap, PEM or base64.
    for (const extraArgs of [
      ['--set-file', `webhook.clientAuth.caBundle=${caFile}`],
      ['--set-string', `webhook.clientAuth.caBundle=${Buffer.from(caPem).toString('base64')}`],
    ]) {
      const objs = await helm.template({ cni: 'calico', 'webhook.clientAuth.enabled': true }, extraArgs);
      expect(only(objs, 'ConfigMap', 'netpin-client-ca').data['ca.crt'].trim()).toBe(caPem.trim());
      expect(clientCaArgs(objs)).toEqual(['--client-ca', '/etc/netpin/client-ca/ca.crt']);
      expect(container(objs).volumeMounts).toContainEqual(mount);
      expect(volume(objs, 'client-ca')).toMatchObject({
        configMap: { name: 'netpin-client-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] },
      });
    }

    // An existing Secret, under another key: no ConfigMap of the chart's.
    const fromSecret = await helm.template({
      cni: 'calico',
      'webhook.clientAuth.enabled': true,
      'webhook.clientAuth.existingSecret': 'apiserver-client-ca',
      'webhook.clientAuth.key': 'bundle.pem',
    });
    expect(fromSecret.filter((o) => o.kind === 'ConfigMap')).toEqual([]);
    expect(clientCaArgs(fromSecret)).toEqual(['--client-ca', '/etc/netpin/client-ca/bundle.pem']);
    expect(container(fromSecret).volumeMounts).toContainEqual(mount);
    expect(volume(fromSecret, 'client-ca')).toMatchObject({
      secret: { secretName: 'apiserver-client-ca', items: [{ key: 'bundle.pem', path: 'bundle.pem' }] },
    });

    // An existing ConfigMap.
    const fromConfigMap = await helm.template({
      cni: 'calico',
      'webhook.clientAuth.enabled': true,
      'webhook.clientAuth.existingConfigMap': 'apiserver-client-ca',
    });
    expect(fromConfigMap.filter((o) => o.kind === 'ConfigMap')).toEqual([]);
    expect(volume(fromConfigMap, 'client-ca')).toMatchObject({ configMap: { name: 'apiserver-client-ca' } });

    // Off by default, and a bundle alone does not turn it on.
    const off = await helm.template({ cni: 'calico' }, ['--set-file', `webhook.clientAuth.caBundle=${caFile}`]);
    expect(clientCaArgs(off)).toEqual([]);
    expect(volume(off, 'client-ca')).toBeUndefined();
    expect(off.filter((o) => o.kind === 'ConfigMap')).toEqual([]);
  });

  it('scrapes /metrics on the metrics port, which the Service exposes and the webhook port does not serve', async () => {
    const objs = await helm.template({ cni: 'calico', 'monitoring.serviceMonitor.enabled': true });
    const endpoints = only(objs, 'ServiceMonitor').spec.endpoints;
    expect(endpoints.map((e: { port: string; path: string }) => [e.port, e.path])).toEqual([['metrics', '/metrics']]);
    expect(only(objs, 'Service').spec.ports).toContainEqual({
      name: 'metrics',
      port: 9443,
      targetPort: 'metrics',
      protocol: 'TCP',
    });
    const args: string[] = container(objs).args;
    expect(args.slice(args.indexOf('--metrics-listen'), args.indexOf('--metrics-listen') + 2)).toEqual([
      '--metrics-listen',
      '0.0.0.0:9443',
    ]);
  });

  it('bounds the /tmp emptyDir', async () => {
    expect(volume(await helm.template({ cni: 'calico' }), 'tmp')).toEqual({
      name: 'tmp',
      emptyDir: { sizeLimit: '64Mi' },
    });
    expect(volume(await helm.template({ cni: 'calico', tmpSizeLimit: '16Mi' }), 'tmp').emptyDir).toEqual({
      sizeLimit: '16Mi',
    });
  });

  it('leaves the managed-objects admission policy out before Kubernetes 1.30, or when turned off', async () => {
    const policies = (objs: Manifest[]) => objs.filter((o) => o.kind.startsWith('ValidatingAdmissionPolicy'));
    expect(policies(await helm.template({ cni: 'cilium' }))).toHaveLength(2);
    expect(policies(await helm.template({ cni: 'cilium', 'rbac.managedObjectsPolicy.enabled': false }))).toEqual([]);
    // Its former name still turns it off, and on leaves it as it is.
    expect(policies(await helm.template({ cni: 'cilium', 'rbac.egressAdmissionPolicy.enabled': false }))).toEqual([]);
    const formerOn = await helm.template({ cni: 'antrea', 'rbac.egressAdmissionPolicy.enabled': true });
    expect(policies(formerOn)).toHaveLength(2);
    const old = await helm.ok([
      'template',
      'netpin',
      CHART_DIR,
      '-n',
      NS,
      '--set',
      'cni=antrea',
      '--kube-version',
      '1.29.4',
    ]);
    expect(policies(parseManifests(old))).toEqual([]);
  });

  describe('the ipam-plugin DaemonSet', () => {
    const ipamObjs = (objs: Manifest[]) =>
      objs.filter((o) => o.metadata.labels?.['app.kubernetes.io/component'] === 'ipam-plugin');

    it('is absent by default, policy included', async () => {
      const objs = await helm.template({ cni: 'calico' });
      expect(ipamObjs(objs)).toEqual([]);
      expect(objs.filter((o) => o.kind === 'DaemonSet' || o.kind.startsWith('ValidatingAdmissionPolicy'))).toEqual([]);
    });

    it('when enabled, copies the plugin from netpin’s image into the host’s CNI bin directory, as root with nothing else', async () => {
      const objs = await helm.template({ cni: 'calico', 'ipamPlugin.enabled': true });
      const ds = only(objs, 'DaemonSet', 'netpin-ipam-plugin');
      const deploy = only(objs, 'Deployment');
      expect(ds.metadata.namespace).toBe(NS);
      // What `netpin doctor` finds it by: the chart's labels and the component.
      expect(ds.metadata.labels).toEqual({ ...deploy.metadata.labels, 'app.kubernetes.io/component': 'ipam-plugin' });
      const pod = ds.spec.template.spec;
      const podLabels = ds.spec.template.metadata.labels;
      expect(ds.spec.selector.matchLabels).toEqual({
        'app.kubernetes.io/instance': 'netpin',
        'app.kubernetes.io/component': 'ipam-plugin',
      });
      expect(podLabels).toMatchObject(ds.spec.selector.matchLabels);
      // Never taken for a webhook replica: the Service, PDB and anti-affinity select the Deployment's labels.
      const webhookSelector = only(objs, 'Service').spec.selector as Record<string, string>;
      expect(Object.entries(webhookSelector).every(([k, v]) => podLabels[k] === v)).toBe(false);
      expect(only(objs, 'PodDisruptionBudget').spec.selector.matchLabels).toEqual(webhookSelector);

      expect(pod.containers).toHaveLength(1);
      const c = pod.containers[0];
      expect(c.image).toBe(deploy.spec.template.spec.containers[0].image);
      expect(c.imagePullPolicy).toBe(deploy.spec.template.spec.containers[0].imagePullPolicy);
      expect(c.command).toEqual(['/netpin-ipam/netpin-ipam', 'install', '--dir', '/host/cni/bin', '--wait']);
      expect(c.args).toBeUndefined();
      expect(c.securityContext).toEqual({
        runAsNonRoot: false,
        runAsUser: 0,
        runAsGroup: 0,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(pod.securityContext).toEqual({
        runAsNonRoot: false,
        runAsUser: 0,
        runAsGroup: 0,
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(c.volumeMounts).toEqual([{ name: 'cni-bin', mountPath: '/host/cni/bin' }]);
      expect(pod.volumes).toEqual([{ name: 'cni-bin', hostPath: { path: '/opt/cni/bin', type: 'DirectoryOrCreate' } }]);
      // No API access: no token, not netpin's ServiceAccount. The host's network only, since a pod on the
      // pod network would need the plugin it installs; no other host namespace.
      expect(pod.automountServiceAccountToken).toBe(false);
      expect(pod.serviceAccountName).toBeUndefined();
      expect(pod.hostNetwork).toBe(true);
      for (const k of ['hostPID', 'hostIPC']) expect(pod[k]).toBeUndefined();
      expect(c.ports).toBeUndefined();
      // A node agent: on every Linux node, whatever its taints, evicted last.
      expect(pod.tolerations).toEqual([{ operator: 'Exists' }]);
      expect(pod.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
      expect(pod.priorityClassName).toBe('system-node-critical');
      expect(c.resources.requests).toBeDefined();
      expect(c.resources.limits.memory).toBeDefined();
      // It asks nothing of RBAC.
      expect(flattenRules(only(objs, 'ClusterRole'))).toEqual(
        flattenRules(only(await helm.template({ cni: 'calico' }), 'ClusterRole')),
      );
      expect(objs.filter((o) => o.kind === 'ServiceAccount')).toHaveLength(1);
    });

    it('takes the CNI bin directory, scheduling and resources from values, and refuses bad ones', async () => {
      const objs = await helm.template(
        {
          cni: 'calico',
          'ipamPlugin.enabled': true,
          'ipamPlugin.cniBinDir': '/var/lib/rancher/k3s/data/cni',
          'ipamPlugin.priorityClassName': '',
          'ipamPlugin.nodeSelector.pool': 'edge',
          'ipamPlugin.resources.limits.memory': '32Mi',
        },
        ['--set-json', 'ipamPlugin.tolerations=[{"key":"edge","operator":"Exists","effect":"NoSchedule"}]'],
      );
      const pod = only(objs, 'DaemonSet').spec.template.spec;
      expect(pod.volumes[0].hostPath).toEqual({ path: '/var/lib/rancher/k3s/data/cni', type: 'DirectoryOrCreate' });
      expect(pod.containers[0].volumeMounts).toEqual([{ name: 'cni-bin', mountPath: '/host/cni/bin' }]);
      expect(pod.priorityClassName).toBeUndefined();
      expect(pod.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux', pool: 'edge' });
      expect(pod.tolerations).toEqual([{ key: 'edge', operator: 'Exists', effect: 'NoSchedule' }]);
      expect(pod.containers[0].resources.limits.memory).toBe('32Mi');
      for (const bad of [
        ['ipamPlugin.cniBinDir=opt/cni/bin'],
        ['ipamPlugin.enable=true'],
        ['ipamPlugin.enabled=yes'],
      ]) {
        const r = await helm.run(['template', 'netpin', CHART_DIR, '--set', 'cni=calico', '--set-string', ...bad]);
        expect(r.code, bad[0]).not.toBe(0);
        expect(r.stderr).toMatch(/ipamPlugin/);
      }
    });

    it('refuses netpin-ipam’s annotations outside the namespaces the webhooks admit (rendered policy)', async () => {
      const objs = await helm.template(
        { cni: 'calico', 'ipamPlugin.enabled': true, 'webhook.optInLabel.key': 'team.example/netpin' },
        ['--set-json', 'webhook.excludeNamespaces=["legacy"]'],
      );
      const policy = only(objs, 'ValidatingAdmissionPolicy', 'netpin-ipam-annotations');
      expect(policy.metadata.labels?.['app.kubernetes.io/component']).toBe('ipam-plugin');
      expect(policy.spec.failurePolicy).toBe('Fail');
      expect(policy.spec.matchConstraints.resourceRules).toEqual([
        { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['pods'] },
      ]);
      // Only pods that carry one of the two annotations are evaluated at all.
      expect(policy.spec.matchConditions).toHaveLength(1);
      for (const a of ['netpin.io/allocated', 'netpin.io/ipam'])
        expect(policy.spec.matchConditions[0].expression).toContain(`'${a}' in object.metadata.annotations`);
      // "Admitted" is the webhooks' namespaceSelector: the opt-in label, less the excluded namespaces.
      const admitted = policy.spec.variables.find((v: { name: string }) => v.name === 'admitted').expression;
      expect(admitted).toContain("namespaceObject.metadata.labels['team.example/netpin'] == 'true'");
      expect(admitted).toContain(`!(namespaceObject.metadata.name in ["kube-system","${NS}","legacy"])`);
      expect(webhooks(objs).mutate.namespaceSelector).toEqual({
        matchExpressions: [
          { key: 'team.example/netpin', operator: 'In', values: ['true'] },
          { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', NS, 'legacy'] },
        ],
      });
      expect(policy.spec.validations.map((v: { message: string }) => v.message.split(' ')[0])).toEqual([
        'netpin.io/allocated',
        'netpin.io/ipam',
      ]);
      for (const v of policy.spec.validations) {
        expect(v.expression).toMatch(/^variables\.admitted \|\| /);
        expect(v.reason).toBe('Forbidden');
        // The fix: drop the annotation, or opt the namespace in and let netpin allocate.
        expect(v.message).toContain('remove the annotation');
        expect(v.message).toContain('label the namespace team.example/netpin=true');
      }
      expect(only(objs, 'ValidatingAdmissionPolicyBinding', 'netpin-ipam-annotations').spec).toEqual({
        policyName: 'netpin-ipam-annotations',
        validationActions: ['Deny'],
      });
      // Served from Kubernetes 1.30: left out before, the DaemonSet still there.
      const old = parseManifests(
        await helm.ok([
          'template',
          'netpin',
          CHART_DIR,
          '-n',
          NS,
          '--set',
          'cni=calico',
          '--set',
          'ipamPlugin.enabled=true',
          '--kube-version',
          '1.29.4',
        ]),
      );
      expect(old.filter((o) => o.kind.startsWith('ValidatingAdmissionPolicy'))).toEqual([]);
      expect(only(old, 'DaemonSet').metadata.name).toBe('netpin-ipam-plugin');
    });
  });

  it('refuses Kubernetes older than 1.28', async () => {
    const r = await helm.run(['template', 'netpin', CHART_DIR, '--set', 'cni=calico', '--kube-version', '1.27.9']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/kubeVersion/i);
  });
});

describe('helm install, upgrade and uninstall on a real API server', () => {
  let cp: ControlPlane;
  let helm: Helm;
  let rest: Client;
  let work: string;
  let installed = false;
  const release = ['netpin', CHART_DIR, '-n', NS];
  const POOL = { name: 'web', spec: { cidr: '10.20.0.0/24', exclude: ['10.20.0.1'] } };

  beforeAll(async () => {
    cp = await startControlPlane();
    work = await mkdtemp(join(tmpdir(), 'netpin-helm-'));
    helm = new Helm(cp.binDir, join(work, 'helm'), cp.kubeconfigPath);
    rest = clientFromKubeconfig(cp.kubeconfigPath);
  });

  afterAll(async () => {
    // A Fail webhook with no ready pods must not outlive the test, even on failure.
    if (installed) await helm?.run(['uninstall', 'netpin', '-n', NS, '--wait=false']).catch(() => undefined);
    rest?.agent.destroy();
    await cp?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const secretPath = (name: string) => `/api/v1/namespaces/${NS}/secrets/${name}`;
  const upgrade = (...sets: string[]) =>
    helm.ok(['upgrade', ...release, '--reuse-values', ...sets.flatMap((s) => ['--set', s])]);

  async function caState(): Promise<{ mutating: string; validating: string[]; secretCa: string; secretCert: string }> {
    const m = await kube(rest, 'GET', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/netpin');
    const v = await kube(rest, 'GET', '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/netpin');
    const s = await kube(rest, 'GET', `/api/v1/namespaces/${NS}/secrets/netpin-tls`);
    expect([m.status, v.status, s.status]).toEqual([200, 200, 200]);
    return {
      mutating: m.json.webhooks[0].clientConfig.caBundle,
      validating: v.json.webhooks.map((w: Webhook) => w.clientConfig.caBundle),
      secretCa: s.json.data['ca.crt'],
      secretCert: s.json.data['tls.crt'],
    };
  }

  let before: Awaited<ReturnType<typeof caState>>;

  it('installs with self-signed certificates, and the server accepts every object', async () => {
    // No --wait: there is no scheduler or kubelet, so the pods stay Pending.
    const out = await helm.ok([
      'install',
      ...release,
      '--create-namespace',
      '--set',
      'cni=calico',
      '--set',
      'replicaCount=2',
    ]);
    installed = true;
    expect(out).toContain('STATUS: deployed');
    expect(out).toContain(`kubectl label namespace <ns> netpin.io/enabled=true`);
    expect(JSON.parse(await helm.ok(['status', 'netpin', '-n', NS, '-o', 'json'])).info.status).toBe('deployed');

    const manifest = parseManifests(await helm.ok(['get', 'manifest', 'netpin', '-n', NS]));
    expect(manifest.map((o) => o.kind).sort()).toEqual([
      'ClusterRole',
      'ClusterRoleBinding',
      'Deployment',
      'MutatingWebhookConfiguration',
      'PodDisruptionBudget',
      'Role',
      'RoleBinding',
      'Secret',
      'Secret',
      'Service',
      'ServiceAccount',
      'ValidatingWebhookConfiguration',
    ]);
    for (const o of manifest) {
      const r = await kube(rest, 'GET', restPath(o));
      expect(r.status, `${o.kind} ${o.metadata.name}`).toBe(200);
    }

    before = await caState();
    expect(before.mutating).toBe(before.secretCa);
    expect(before.validating).toEqual([before.secretCa, before.secretCa]);

    // The pod template passes admission too: the controllers create the pods, which stay Pending.
    const deadline = Date.now() + 60_000;
    let pods: Array<{ status: { phase: string } }> = [];
    while (Date.now() < deadline) {
      pods = (
        await kube(rest, 'GET', `/api/v1/namespaces/${NS}/pods?labelSelector=app.kubernetes.io%2Finstance%3Dnetpin`)
      ).json.items;
      if (pods.length === 2) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(pods.map((p) => p.status.phase)).toEqual(['Pending', 'Pending']);
  });

  it('leaves namespaces that did not opt in alone, and sends opted-in ones to the webhook', async () => {
    const pod = (ns: string) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'probe', namespace: ns },
      spec: { containers: [{ name: 'c', image: 'busybox' }] },
    });
    expect((await kube(rest, 'POST', '/api/v1/namespaces/default/pods', pod('default'))).status).toBe(201);

    const ns = {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'opted-in', labels: { 'netpin.io/enabled': 'true' } },
    };
    expect((await kube(rest, 'POST', '/api/v1/namespaces', ns)).status).toBe(201);
    // No netpin pod is ready, so with failurePolicy Fail the API server refuses rather than skips.
    const r = await kube(rest, 'POST', '/api/v1/namespaces/opted-in/pods', pod('opted-in'));
    expect(r.status).toBeGreaterThanOrEqual(500);
    expect(r.json.message).toContain('mutate.netpin.io');
  });

  it('keeps the CA and the certificate on helm upgrade', async () => {
    const out = await helm.ok([
      'upgrade',
      ...release,
      '--reuse-values',
      '--set',
      'logLevel=debug',
      '--set',
      'claimGraceSeconds=45',
    ]);
    expect(out).toContain('STATUS: deployed');
    const deploy = await kube(rest, 'GET', `/apis/apps/v1/namespaces/${NS}/deployments/netpin`);
    expect(deploy.json.spec.template.spec.containers[0].args).toEqual(
      expect.arrayContaining(['--log-level', 'debug', '--claim-grace', '45']),
    );
    expect(deploy.json.metadata.generation).toBe(2);

    const after = await caState();
    expect(after).toEqual(before);
    expect(after.mutating).toBe(after.secretCa);
  });

  it('re-issues the serving certificate on helm upgrade once it is near expiry, signed by the same CA', async () => {
    const was = await caState();
    const oldCert = new X509Certificate(Buffer.from(was.secretCert, 'base64'));
    // The 365-day certificate has fewer than 400 days left; the CA's ten years are far from it.
    await upgrade('certificates.selfSigned.renewBeforeDays=400', 'certificates.selfSigned.validityDays=500');
    const now = await caState();
    expect(now.secretCert).not.toBe(was.secretCert);
    // The CA and every caBundle stay: pods serving either certificate are trusted throughout.
    expect(now.secretCa).toBe(was.secretCa);
    expect(now.mutating).toBe(was.mutating);
    expect(now.validating).toEqual(was.validating);
    const cert = new X509Certificate(Buffer.from(now.secretCert, 'base64'));
    expect(cert.serialNumber).not.toBe(oldCert.serialNumber);
    expect(cert.verify(bundleOf(now.secretCa)[0]!.publicKey)).toBe(true);
    expect(daysLeft(cert)).toBeGreaterThan(499.9);
    const secret = (await kube(rest, 'GET', secretPath('netpin-tls'))).json;
    expect(
      Math.abs(Date.parse(secret.metadata.annotations['netpin.io/not-after']) - Date.parse(cert.validTo)),
    ).toBeLessThan(60_000);

    // With 500 days left, the next upgrade keeps it.
    await upgrade();
    expect(await caState()).toEqual(now);
  });

  it('makes a new CA once the CA is near expiry, and trusts the old one beside it until it expires', async () => {
    const was = await caState();
    const [oldCa] = bundleOf(was.secretCa);
    await upgrade(
      'certificates.selfSigned.renewBeforeDays=4000',
      'certificates.selfSigned.validityDays=4500',
      'certificates.selfSigned.caValidityDays=5000',
    );
    const now = await caState();
    const bundle = bundleOf(now.secretCa);
    // The new CA first, then the old one: pods still serving the old certificate stay trusted.
    expect(bundle.map((c) => c.fingerprint256)).toEqual([expect.any(String), oldCa!.fingerprint256]);
    expect(bundle[0]!.fingerprint256).not.toBe(oldCa!.fingerprint256);
    expect(daysLeft(bundle[0]!)).toBeGreaterThan(4999.9);
    expect(now.mutating).toBe(now.secretCa);
    expect(now.validating).toEqual([now.secretCa, now.secretCa]);
    const cert = new X509Certificate(Buffer.from(now.secretCert, 'base64'));
    expect(cert.verify(bundle[0]!.publicKey)).toBe(true);
    expect(daysLeft(cert)).toBeGreaterThan(4499.9);
    // The old CA is kept until its own NotAfter, which comes before renewBeforeDays have passed.
    const caSecret = (await kube(rest, 'GET', secretPath('netpin-selfsigned-ca'))).json;
    expect(
      Math.abs(Date.parse(caSecret.metadata.annotations['netpin.io/previous-until']) - Date.parse(oldCa!.validTo)),
    ).toBeLessThan(60_000);
    expect(bundleOf(caSecret.data['tls.crt'])[0]!.fingerprint256).toBe(bundle[0]!.fingerprint256);

    // Kept on the next upgrade, the old CA still beside it.
    await upgrade();
    expect(await caState()).toEqual(now);
  });

  it('moves a Secret with no expiry noted (charts before rotation) to a new CA, trusting the old bundle for renewBeforeDays', async () => {
    // As an earlier version of the chart left it: no CA Secret, no annotations on the tls Secret.
    expect((await kube(rest, 'DELETE', secretPath('netpin-selfsigned-ca'))).status).toBe(200);
    const legacy = (await kube(rest, 'GET', secretPath('netpin-tls'))).json;
    delete legacy.metadata.annotations;
    expect((await kube(rest, 'PUT', secretPath('netpin-tls'), legacy)).status).toBe(200);
    const was = await caState();

    await upgrade(
      'certificates.selfSigned.renewBeforeDays=90',
      'certificates.selfSigned.validityDays=365',
      'certificates.selfSigned.caValidityDays=3650',
    );
    const now = await caState();
    const bundle = bundleOf(now.secretCa);
    expect(bundle.slice(1).map((c) => c.fingerprint256)).toEqual(bundleOf(was.secretCa).map((c) => c.fingerprint256));
    expect(bundleOf(was.secretCa).map((c) => c.fingerprint256)).not.toContain(bundle[0]!.fingerprint256);
    expect(now.mutating).toBe(now.secretCa);
    const cert = new X509Certificate(Buffer.from(now.secretCert, 'base64'));
    expect(cert.verify(bundle[0]!.publicKey)).toBe(true);
    expect(daysLeft(cert)).toBeLessThan(365.1);
    const caSecret = (await kube(rest, 'GET', secretPath('netpin-selfsigned-ca'))).json;
    const until = Date.parse(caSecret.metadata.annotations['netpin.io/previous-until']);
    expect(Math.abs(until - (Date.now() + 90 * DAY_MS))).toBeLessThan(120_000);
  });

  it('uninstalls cleanly', async () => {
    await helm.ok(['uninstall', 'netpin', '-n', NS]);
    installed = false;
    for (const kind of ['mutatingwebhookconfigurations', 'validatingwebhookconfigurations']) {
      expect((await kube(rest, 'GET', `/apis/admissionregistration.k8s.io/v1/${kind}/netpin`)).status).toBe(404);
    }
    expect((await kube(rest, 'GET', '/apis/rbac.authorization.k8s.io/v1/clusterroles/netpin')).status).toBe(404);
    expect((await kube(rest, 'GET', `/api/v1/namespaces/${NS}/secrets/netpin-tls`)).status).toBe(404);
    expect((await kube(rest, 'GET', `/api/v1/namespaces/${NS}/secrets/netpin-selfsigned-ca`)).status).toBe(404);
  });

  it('creates declared IPPools at install, ahead of the webhook, and keeps them on uninstall', async () => {
    // Helm orders IPPool before the webhook configurations, so the pool is not sent to the absent netpin.
    // (Any later upgrade patches it through the webhook, so this release is not upgraded.)
    await helm.ok(['install', ...release, '--set', 'cni=calico', '--set-json', `ippools=${JSON.stringify([POOL])}`]);
    installed = true;
    const pool = await kube(rest, 'GET', '/apis/netpin.io/v1alpha1/ippools/web');
    expect(pool.status).toBe(200);
    expect(pool.json.spec).toEqual(POOL.spec);

    // Deleting it through the webhook would fail with no netpin ready: Helm must leave it.
    const out = await helm.ok(['uninstall', 'netpin', '-n', NS]);
    installed = false;
    expect(out).toContain('kept due to the resource policy');
    expect((await kube(rest, 'GET', '/apis/netpin.io/v1alpha1/ippools/web')).status).toBe(200);
    // With the webhook gone, the pool is an ordinary object again.
    expect((await kube(rest, 'DELETE', '/apis/netpin.io/v1alpha1/ippools/web')).status).toBe(200);
  });

  it('installs with client authentication and the NetworkPolicy on, and the server accepts every object', async () => {
    await promisify(execFile)('bash', [GENERATE, join(work, 'certs')]);
    await helm.ok([
      'install',
      ...release,
      '--set',
      'cni=calico',
      '--set',
      'webhook.clientAuth.enabled=true',
      '--set-file',
      `webhook.clientAuth.caBundle=${join(work, 'certs', 'ca.crt')}`,
      '--set',
      'networkPolicy.enabled=true',
      '--set-json',
      'networkPolicy.webhookFrom=[{"ipBlock":{"cidr":"192.0.2.10/32"}}]',
      '--set',
      'tmpSizeLimit=32Mi',
    ]);
    installed = true;
    const manifest = parseManifests(await helm.ok(['get', 'manifest', 'netpin', '-n', NS]));
    expect(manifest.map((o) => o.kind)).toEqual(expect.arrayContaining(['NetworkPolicy', 'ConfigMap']));
    for (const o of manifest) {
      const r = await kube(rest, 'GET', restPath(o).replace('/networkpolicys/', '/networkpolicies/'));
      expect(r.status, `${o.kind} ${o.metadata.name}`).toBe(200);
    }
    const np = (await kube(rest, 'GET', `/apis/networking.k8s.io/v1/namespaces/${NS}/networkpolicies/netpin`)).json;
    expect(np.spec.ingress[0]).toEqual({
      ports: [{ port: 'https', protocol: 'TCP' }],
      from: [{ ipBlock: { cidr: '192.0.2.10/32' } }],
    });
    const pod = (await kube(rest, 'GET', `/apis/apps/v1/namespaces/${NS}/deployments/netpin`)).json.spec.template.spec;
    expect(pod.containers[0].args).toEqual(expect.arrayContaining(['--client-ca', '/etc/netpin/client-ca/ca.crt']));
    expect(pod.volumes).toContainEqual({
      name: 'client-ca',
      configMap: { name: 'netpin-client-ca', defaultMode: 0o440, items: [{ key: 'ca.crt', path: 'ca.crt' }] },
    });
    expect(pod.volumes).toContainEqual({ name: 'tmp', emptyDir: { sizeLimit: '32Mi' } });
    await helm.ok(['uninstall', 'netpin', '-n', NS]);
    installed = false;
  });

  const MANAGED = { 'app.kubernetes.io/managed-by': 'netpin' };

  /** netpin's own credentials: a token of its ServiceAccount. */
  async function asNetpinAccount(): Promise<ReturnType<typeof tokenClient>> {
    const tokenReq = await kube(rest, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts/netpin/token`, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { expirationSeconds: 600 },
    });
    expect(tokenReq.status).toBe(201);
    return tokenClient(cp.kubeconfigPath, tokenReq.json.status.token);
  }

  /** Waits until the API server has loaded the managed-objects policy: `unlabelled` is refused then. */
  async function policyLoaded(asNetpin: ReturnType<typeof tokenClient>, path: string, unlabelled: object) {
    const deadline = Date.now() + 30_000;
    let probe = await asNetpin('POST', `${path}?dryRun=All`, unlabelled);
    while (probe.status < 400 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      probe = await asNetpin('POST', `${path}?dryRun=All`, unlabelled);
    }
    expect(probe.status).toBe(403);
    expect(probe.json.message).toContain('netpin-managed-objects');
  }

  it("on Antrea, lets netpin's ServiceAccount change only the Egresses labelled as netpin's", async () => {
    await applyAntreaEgressCrds(clients(cp.kubeconfigPath));
    await helm.ok(['install', ...release, '--set', 'cni=antrea']);
    installed = true;

    const asNetpin = await asNetpinAccount();
    const egresses = '/apis/crd.antrea.io/v1beta1/egresses';
    const egress = (name: string, labels?: Record<string, string>) => ({
      apiVersion: 'crd.antrea.io/v1beta1',
      kind: 'Egress',
      metadata: { name, ...(labels ? { labels } : {}) },
      spec: { appliedTo: { podSelector: {} }, egressIP: '192.0.2.7' },
    });
    await policyLoaded(asNetpin, egresses, egress('probe'));

    // RBAC lets netpin reach every Egress; the policy only its own.
    expect((await asNetpin('POST', egresses, egress('ours', MANAGED))).status).toBe(201);
    expect((await kube(rest, 'POST', egresses, egress('theirs'))).status).toBe(201);
    const theirs = (await kube(rest, 'GET', `${egresses}/theirs`)).json;
    const ours = (await kube(rest, 'GET', `${egresses}/ours`)).json;
    const refused = [
      await asNetpin('POST', egresses, egress('unlabelled')),
      // Rerouting another team's Egress, or taking it over by labelling it.
      await asNetpin('PUT', `${egresses}/theirs`, { ...theirs, spec: { ...theirs.spec, egressIP: '192.0.2.8' } }),
      await asNetpin('PUT', `${egresses}/theirs`, { ...theirs, metadata: { ...theirs.metadata, labels: MANAGED } }),
      await asNetpin('DELETE', `${egresses}/theirs`),
      // Nor can it hand one of its own away by dropping the label.
      await asNetpin('PUT', `${egresses}/ours`, { ...ours, metadata: { ...ours.metadata, labels: {} } }),
    ];
    expect(refused.map((r) => r.status)).toEqual([403, 403, 403, 403, 403]);
    expect((await kube(rest, 'GET', `${egresses}/theirs`)).json.spec.egressIP).toBe('192.0.2.7');
    expect(
      (await asNetpin('PUT', `${egresses}/ours`, { ...ours, spec: { ...ours.spec, egressIP: '192.0.2.9' } })).status,
    ).toBe(200);
    expect((await asNetpin('DELETE', `${egresses}/ours`)).status).toBe(200);

    await helm.ok(['uninstall', 'netpin', '-n', NS]);
    installed = false;
    expect((await kube(rest, 'DELETE', `${egresses}/theirs`)).status).toBe(200);
  });

  it("on Cilium, lets netpin's ServiceAccount read every CiliumPodIPPool and change only those labelled as netpin's", async () => {
    await applyCiliumPodIPPoolCrd(clients(cp.kubeconfigPath));
    await helm.ok(['install', ...release, '--set', 'cni=cilium']);
    installed = true;

    const asNetpin = await asNetpinAccount();
    const pools = '/apis/cilium.io/v2alpha1/ciliumpodippools';
    const pool = (name: string, cidr: string, maskSize: number, labels?: Record<string, string>) => ({
      apiVersion: 'cilium.io/v2alpha1',
      kind: 'CiliumPodIPPool',
      metadata: { name, ...(labels ? { labels } : {}) },
      spec: { ipv4: { cidrs: [cidr], maskSize } },
    });
    await policyLoaded(asNetpin, pools, pool('probe', '192.0.2.99/32', 32));

    // A pinned address's pool, as src/cni/cilium-pools.ts makes it, beside Cilium's own default pool.
    expect((await asNetpin('POST', pools, pool('netpin-192.0.2.7', '192.0.2.7/32', 32, MANAGED))).status).toBe(201);
    expect((await kube(rest, 'POST', pools, pool('default', '10.0.0.0/16', 24))).status).toBe(201);
    // Reads are not narrowed: an IPPool's admission lists them all, a pod's gets one whose name is taken.
    const listed = await asNetpin('GET', pools);
    expect(listed.status).toBe(200);
    expect((listed.json.items as Manifest[]).map((o) => o.metadata.name).sort()).toEqual([
      'default',
      'netpin-192.0.2.7',
    ]);
    expect((await asNetpin('GET', `${pools}/default`)).status).toBe(200);
    const theirs = (await kube(rest, 'GET', `${pools}/default`)).json;
    const ours = (await kube(rest, 'GET', `${pools}/netpin-192.0.2.7`)).json;
    const refused = [
      await asNetpin('POST', pools, pool('netpin-192.0.2.8', '192.0.2.8/32', 32)),
      // Taking addresses from Cilium's own pool, or taking it over by labelling it.
      await asNetpin('PUT', `${pools}/default`, {
        ...theirs,
        spec: { ...theirs.spec, ipv4: { cidrs: ['10.1.0.0/16'], maskSize: 24 } },
      }),
      await asNetpin('PUT', `${pools}/default`, { ...theirs, metadata: { ...theirs.metadata, labels: MANAGED } }),
      await asNetpin('DELETE', `${pools}/default`),
      await asNetpin('PUT', `${pools}/netpin-192.0.2.7`, { ...ours, metadata: { ...ours.metadata, labels: {} } }),
    ];
    expect(refused.map((r) => r.status)).toEqual([403, 403, 403, 403, 403]);
    expect((await kube(rest, 'GET', `${pools}/default`)).json.spec.ipv4.cidrs).toEqual(['10.0.0.0/16']);
    // What the leader does to its own: put one back, delete one no claim needs.
    const putBack = { ...ours, spec: { ...ours.spec, ipv4: { cidrs: ['192.0.2.7/32'], maskSize: 32 } } };
    expect((await asNetpin('PUT', `${pools}/netpin-192.0.2.7`, putBack)).status).toBe(200);
    expect((await asNetpin('DELETE', `${pools}/netpin-192.0.2.7`)).status).toBe(200);

    await helm.ok(['uninstall', 'netpin', '-n', NS]);
    installed = false;
    expect((await kube(rest, 'DELETE', `${pools}/default`)).status).toBe(200);
  });

  it("with ipamPlugin on, the server accepts the DaemonSet and the policy refuses netpin-ipam's annotations outside admitted namespaces", async () => {
    // failurePolicy Ignore: with no netpin pod ready, the webhooks step aside and the policy alone decides.
    const out = await helm.ok([
      'install',
      ...release,
      '--set',
      'cni=calico',
      '--set',
      'ipamPlugin.enabled=true',
      '--set',
      'webhook.failurePolicy=Ignore',
      '--set-json',
      'webhook.excludeNamespaces=["ipam-excluded"]',
    ]);
    installed = true;
    expect(out).toContain(`rollout status daemonset/netpin-ipam-plugin`);
    expect(out).toContain('ValidatingAdmissionPolicy netpin-ipam-annotations');
    const manifest = parseManifests(await helm.ok(['get', 'manifest', 'netpin', '-n', NS]));
    expect(manifest.map((o) => o.kind)).toEqual(
      expect.arrayContaining(['DaemonSet', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']),
    );
    for (const o of manifest) {
      const r = await kube(
        rest,
        'GET',
        restPath(o).replace('/validatingadmissionpolicys/', '/validatingadmissionpolicies/'),
      );
      expect(r.status, `${o.kind} ${o.metadata.name}`).toBe(200);
    }
    const ds = (await kube(rest, 'GET', `/apis/apps/v1/namespaces/${NS}/daemonsets/netpin-ipam-plugin`)).json;
    expect(ds.spec.template.spec.containers[0].securityContext).toMatchObject({
      runAsUser: 0,
      capabilities: { drop: ['ALL'] },
      readOnlyRootFilesystem: true,
    });
    expect(ds.spec.template.spec.volumes[0].hostPath).toEqual({ path: '/opt/cni/bin', type: 'DirectoryOrCreate' });

    const namespaces = {
      'ipam-out': {},
      'ipam-in': { 'netpin.io/enabled': 'true' },
      'ipam-excluded': { 'netpin.io/enabled': 'true' },
    };
    for (const [name, labels] of Object.entries(namespaces))
      expect(
        (
          await kube(rest, 'POST', '/api/v1/namespaces', {
            apiVersion: 'v1',
            kind: 'Namespace',
            metadata: { name, labels },
          })
        ).status,
      ).toBe(201);
    const pod = (ns: string, name: string, annotations: Record<string, string> = {}) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: ns, annotations },
      spec: { containers: [{ name: 'c', image: 'busybox' }] },
    });
    const create = (ns: string, p: object, dryRun = true) =>
      kube(rest, 'POST', `/api/v1/namespaces/${ns}/pods${dryRun ? '?dryRun=All' : ''}`, p);
    const ALLOCATED = { 'netpin.io/allocated': '10.20.0.7' };
    const IPAM = { 'netpin.io/ipam': '[{"address":"10.20.0.7/24","gateway":"10.20.0.1"}]' };

    // The policy takes effect once the API server has loaded it.
    const deadline = Date.now() + 30_000;
    let probe = await create('ipam-out', pod('ipam-out', 'probe', ALLOCATED));
    while (probe.status < 400 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      probe = await create('ipam-out', pod('ipam-out', 'probe', ALLOCATED));
    }
    expect(probe.status).toBe(403);
    expect(probe.json.message).toContain('netpin-ipam-annotations');
    expect(probe.json.message).toContain('netpin.io/allocated is netpin');
    expect(probe.json.message).toContain('label the namespace netpin.io/enabled=true');

    const ipam = await create('ipam-out', pod('ipam-out', 'p', IPAM));
    expect(ipam.status).toBe(403);
    expect(ipam.json.message).toContain('netpin.io/ipam is netpin');
    // Excluded namespaces and netpin's own are not admitted, labelled or not.
    expect((await create('ipam-excluded', pod('ipam-excluded', 'p', ALLOCATED))).status).toBe(403);
    expect((await create(NS, pod(NS, 'p', IPAM))).status).toBe(403);
    // Pods without them, and pods in admitted namespaces (where netpin's webhook judges them), pass.
    expect((await create('ipam-out', pod('ipam-out', 'p', { 'netpin.io/pool': 'web' }))).status).toBe(201);
    expect((await create('ipam-in', pod('ipam-in', 'p', { ...ALLOCATED, ...IPAM }))).status).toBe(201);

    // A pod admitted with them keeps them when its namespace opts out, but cannot change them.
    expect((await create('ipam-in', pod('ipam-in', 'kept', ALLOCATED), false)).status).toBe(201);
    const nsPath = '/api/v1/namespaces/ipam-in';
    const nsObj = (await kube(rest, 'GET', nsPath)).json;
    expect((await kube(rest, 'PUT', nsPath, { ...nsObj, metadata: { ...nsObj.metadata, labels: {} } })).status).toBe(
      200,
    );
    const podPath = `${nsPath}/pods/kept`;
    const kept = (await kube(rest, 'GET', podPath)).json;
    const relabelled = await kube(rest, 'PUT', podPath, {
      ...kept,
      metadata: { ...kept.metadata, labels: { a: 'b' } },
    });
    expect(relabelled.status).toBe(200);
    const changed = await kube(rest, 'PUT', podPath, {
      ...relabelled.json,
      metadata: { ...relabelled.json.metadata, annotations: { 'netpin.io/allocated': '10.20.0.8' } },
    });
    expect(changed.status).toBe(403);
    const added = await kube(rest, 'PUT', podPath, {
      ...relabelled.json,
      metadata: { ...relabelled.json.metadata, annotations: { ...ALLOCATED, ...IPAM } },
    });
    expect(added.status).toBe(403);
    expect(added.json.message).toContain('netpin.io/ipam');

    expect((await kube(rest, 'DELETE', `${podPath}?gracePeriodSeconds=0`)).status).toBe(200);
    await helm.ok(['uninstall', 'netpin', '-n', NS]);
    installed = false;
    for (const name of Object.keys(namespaces)) await kube(rest, 'DELETE', `/api/v1/namespaces/${name}`);
  });
});

/** Requests to the API server with a bearer token, trusting the CA of the admin kubeconfig. */
function tokenClient(
  kubeconfigPath: string,
  token: string,
): (
  method: string,
  path: string,
  body?: unknown,
) => Promise<{ status: number; json: Manifest & { message?: string } }> {
  const text = readFileSync(kubeconfigPath, 'utf8');
  const field = (f: string) => new RegExp(`^\\s*${f}:\\s*(\\S+)\\s*$`, 'm').exec(text)![1]!;
  const server = new URL(field('server'));
  const ca = Buffer.from(field('certificate-authority-data'), 'base64');
  return (method, path, body) =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = https.request(
        new URL(path, server),
        {
          method,
          ca,
          timeout: 10_000,
          headers: {
            authorization: `Bearer ${token}`,
            accept: 'application/json',
            ...(payload ? { 'content-type': 'application/json' } : {}),
          },
        },
        (res) => {
          let data = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (data += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, json: data ? JSON.parse(data) : {} }));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timeout`)));
      req.on('error', reject);
      req.end(payload);
    });
}
