// The control plane's certificates (openssl CLI) and kubeconfigs: its CA, the API server's serving
// certificate, the admin's, the service account key, and the client certificate it presents to webhooks.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { createCa, issueCert, openssl } from '../pki.js';
import type { ControlPlane, WebhookClient } from './types.js';

export async function makePki(dir: string, kubeletClient = false, extraIPs: string[] = []): Promise<void> {
  await createCa(dir, 'netpin-test-ca', 30);
  await Promise.all([
    issueCert(
      dir,
      'apiserver',
      '/CN=kube-apiserver',
      [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature',
        'extendedKeyUsage=serverAuth',
        `subjectAltName=DNS:localhost,IP:127.0.0.1${extraIPs.map((ip) => `,IP:${ip}`).join('')}`,
      ],
      30,
    ),
    issueCert(
      dir,
      'admin',
      '/O=system:masters/CN=admin',
      ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=clientAuth'],
      30,
    ),
    ...(kubeletClient
      ? [
          issueCert(
            dir,
            'apiserver-kubelet-client',
            '/O=system:masters/CN=kube-apiserver-kubelet-client',
            ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=clientAuth'],
            30,
          ),
        ]
      : []),
    (async () => {
      await openssl(dir, ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'sa.key']);
      await openssl(dir, ['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
    })(),
  ]);
}

export function kubeconfig(url: string, ca: string, cert: string, key: string): string {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: netpin-test',
    '  cluster:',
    `    server: ${url}`,
    `    certificate-authority-data: ${b64(ca)}`,
    'users:',
    '- name: admin',
    '  user:',
    `    client-certificate-data: ${b64(cert)}`,
    `    client-key-data: ${b64(key)}`,
    'contexts:',
    '- name: netpin-test',
    '  context:',
    '    cluster: netpin-test',
    '    user: admin',
    'current-context: netpin-test',
    '',
  ].join('\n');
}

/**
 * Issues a client certificate signed by the test CA (e.g. a kubelet's: O=system:nodes,
 * CN=system:node:<node>) and writes `<name>.kubeconfig` for it next to the admin one.
 * Returns the kubeconfig's path.
 */
export async function issueClientKubeconfig(
  cp: Pick<ControlPlane, 'dir' | 'url' | 'caPem'>,
  name: string,
  subject: { cn: string; o?: string[] },
): Promise<string> {
  if (!/^[a-z0-9][a-z0-9.-]*$/.test(name)) throw new Error(`issueClientKubeconfig: bad file name ${name}`);
  const rdn = (v: string): string => v.replace(/[/\\=+,]/g, (c) => `\\${c}`);
  const subj = [...(subject.o ?? []).map((o) => `/O=${rdn(o)}`), `/CN=${rdn(subject.cn)}`].join('');
  await issueCert(
    cp.dir,
    name,
    subj,
    ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=clientAuth'],
    30,
  );
  const [cert, key] = (await Promise.all(
    [`${name}.crt`, `${name}.key`].map((f) => fsp.readFile(path.join(cp.dir, f), 'utf8')),
  )) as [string, string];
  const kubeconfigPath = path.join(cp.dir, `${name}.kubeconfig`);
  await fsp.writeFile(kubeconfigPath, kubeconfig(cp.url, cp.caPem, cert, key), { mode: 0o600 });
  return kubeconfigPath;
}

/**
 * What kube-apiserver needs to present a client certificate to admission webhooks, in `dir`/webhook-client:
 * a CA of its own, a certificate it signs (clientAuth), the kubeconfig naming it for every webhook host
 * (`*`: the API server looks a webhook's host:port up, then its host, then `*`), and the
 * AdmissionConfiguration pointing both webhook plugins at that kubeconfig. Returns the flag's file.
 */
export async function makeWebhookClient(dir: string): Promise<{ admissionConfig: string; client: WebhookClient }> {
  const d = path.join(dir, 'webhook-client');
  await createCa(d, 'netpin-test-webhook-client-ca', 30);
  await issueCert(
    d,
    'apiserver',
    '/CN=kube-apiserver-webhook-client',
    ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=clientAuth'],
    30,
  );
  const kubeconfigPath = path.join(d, 'webhooks.kubeconfig');
  await fsp.writeFile(
    kubeconfigPath,
    [
      'apiVersion: v1',
      'kind: Config',
      'users:',
      "- name: '*'",
      '  user:',
      `    client-certificate: ${path.join(d, 'apiserver.crt')}`,
      `    client-key: ${path.join(d, 'apiserver.key')}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const admissionConfig = path.join(d, 'admission.yaml');
  const plugin = (name: string) => [
    `- name: ${name}`,
    '  configuration:',
    '    apiVersion: apiserver.config.k8s.io/v1',
    '    kind: WebhookAdmissionConfiguration',
    `    kubeConfigFile: ${kubeconfigPath}`,
  ];
  await fsp.writeFile(
    admissionConfig,
    [
      'apiVersion: apiserver.config.k8s.io/v1',
      'kind: AdmissionConfiguration',
      'plugins:',
      ...plugin('ValidatingAdmissionWebhook'),
      ...plugin('MutatingAdmissionWebhook'),
      '',
    ].join('\n'),
  );
  const [caPem, certPem, keyPem] = (await Promise.all(
    ['ca.crt', 'apiserver.crt', 'apiserver.key'].map((f) => fsp.readFile(path.join(d, f), 'utf8')),
  )) as [string, string, string];
  return { admissionConfig, client: { caPath: path.join(d, 'ca.crt'), caPem, certPem, keyPem } };
}
