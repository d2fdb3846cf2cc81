// The control plane's three daemons, each started as one step of startControlPlane and waited
// for until it serves.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { freePort, httpStatus, startProc, waitFor, type Proc, type TlsClient } from '../daemon.js';
import type { StartOptions } from './types.js';

/** What the steps of one control plane's start share. */
export interface Run {
  binDir: string;
  dir: string;
  timeoutMs: number;
  procs: Proc[];
}

export async function startEtcd(r: Run): Promise<string> {
  const [etcdPort, etcdPeerPort] = [await freePort(), await freePort()];
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const etcd = startProc(
    'etcd',
    path.join(r.binDir, 'etcd'),
    [
      `--data-dir=${path.join(r.dir, 'etcd-data')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${etcdPeerPort}`,
      '--log-level=warn',
      '--unsafe-no-fsync=true',
    ],
    r.dir,
  );
  r.procs.push(etcd);
  await waitFor(etcd, `${etcdUrl}/health`, r.timeoutMs, async () => {
    const res = await httpStatus(`${etcdUrl}/health`);
    return res.status === 200 && res.body.includes('"health":"true"');
  });
  return etcdUrl;
}

export async function apiserverArgs(
  r: Run,
  opts: StartOptions,
  etcdUrl: string,
  url: string,
  admissionConfig: string | undefined,
): Promise<string[]> {
  const certDir = path.join(r.dir, 'apiserver-certs');
  await fsp.mkdir(certDir);
  return [
    `--etcd-servers=${etcdUrl}`,
    `--cert-dir=${certDir}`,
    `--tls-cert-file=${path.join(r.dir, 'apiserver.crt')}`,
    `--tls-private-key-file=${path.join(r.dir, 'apiserver.key')}`,
    `--client-ca-file=${path.join(r.dir, 'ca.crt')}`,
    `--secure-port=${new URL(url).port}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    '--service-cluster-ip-range=10.0.0.0/24',
    '--allow-privileged=true',
    `--authorization-mode=${opts.authorizationMode ?? 'RBAC'}`,
    `--service-account-issuer=${url}/`,
    `--service-account-key-file=${path.join(r.dir, 'sa.pub')}`,
    `--service-account-signing-key-file=${path.join(r.dir, 'sa.key')}`,
    ...(opts.serviceAccounts ? [] : ['--disable-admission-plugins=ServiceAccount']),
    ...(admissionConfig ? [`--admission-control-config-file=${admissionConfig}`] : []),
    ...(opts.kubeletClientCert
      ? [
          `--kubelet-client-certificate=${path.join(r.dir, 'apiserver-kubelet-client.crt')}`,
          `--kubelet-client-key=${path.join(r.dir, 'apiserver-kubelet-client.key')}`,
        ]
      : []),
    ...(opts.apiserverArgs ?? []),
  ];
}

/** Starts kube-apiserver (in place of `previous`, if given) and waits until it is ready. */
export async function startApiserver(r: Run, args: string[], url: string, tls: TlsClient, previous?: Proc) {
  const apiserver = startProc('kube-apiserver', path.join(r.binDir, 'kube-apiserver'), args, r.dir);
  if (previous) r.procs[r.procs.indexOf(previous)] = apiserver;
  else r.procs.push(apiserver);
  await waitFor(
    apiserver,
    `${url}/readyz`,
    r.timeoutMs,
    async () => (await httpStatus(`${url}/readyz`, tls)).status === 200,
  );
  return apiserver;
}

/**
 * Distinct controller names kcm has started (`"Controller starting..." controller="x"`, --v=1)
 * or deliberately skipped (a builder returned nil / feature gate off).
 */
function startedControllers(logPath: string, requested: readonly string[]): Set<string> {
  const names = new Set<string>();
  const text = fs.readFileSync(logPath, 'utf8');
  for (const m of text.matchAll(
    /"(?:Controller starting\.\.\.|Warning: skipping controller|Controller is disabled by a feature gate)" controller="([^"]+)"/g,
  )) {
    if (m[1]) names.add(m[1]);
  }
  // kcm always builds the SA token controller first and skips it without a private key.
  if (!requested.some((c) => c.startsWith('serviceaccount-token'))) names.delete('serviceaccount-token-controller');
  return names;
}

export async function startControllerManager(
  r: Run,
  opts: StartOptions,
  controllers: readonly string[],
  kubeconfigPath: string,
): Promise<void> {
  const kcm = startProc(
    'kube-controller-manager',
    path.join(r.binDir, 'kube-controller-manager'),
    [
      `--kubeconfig=${kubeconfigPath}`,
      `--controllers=${controllers.join(',')}`,
      ...(opts.serviceAccounts ? [`--root-ca-file=${path.join(r.dir, 'ca.crt')}`] : []),
      '--leader-elect=false',
      '--secure-port=0',
      '--v=1', // for the "Controller starting..." lines used as readiness signal
      ...(opts.controllerManagerArgs ?? []),
    ],
    r.dir,
  );
  r.procs.push(kcm);
  // Each enabled controller logs "Controller starting..." once. Aliases ("deployment")
  // resolve to canonical names, so count distinct names; with "*" or "-x", one is enough.
  const explicit = new Set(controllers.filter((c) => c !== '*' && !c.startsWith('-')));
  const expected = controllers.some((c) => c === '*' || c.startsWith('-')) ? 1 : Math.max(1, explicit.size);
  await waitFor(
    kcm,
    `${expected} controller(s) to start`,
    r.timeoutMs,
    async () => startedControllers(kcm.logPath, controllers).size >= expected,
  );
}
