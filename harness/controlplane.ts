// Real Kubernetes control plane for end-to-end tests: etcd + kube-apiserver +
// kube-controller-manager on loopback, built from Go modules by
// test/controlplane/build.sh (see docs in that directory's go.mod files).
//
// There is no scheduler and no kubelet: Pods are created by the controllers but
// stay Pending.

import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCa, issueCert, openssl } from './pki.js';

export interface ControlPlane {
  /** https://127.0.0.1:PORT of kube-apiserver */
  url: string;
  /** admin kubeconfig (client cert, group system:masters) */
  kubeconfigPath: string;
  /** PEM of the test CA: signs the apiserver serving cert and the admin client cert */
  caPem: string;
  /** per-run temp dir: certs (ca.crt, ca.key, …), logs (*.log), etcd data */
  dir: string;
  binDir: string;
  stop(): Promise<void>;
  /** Sends kube-apiserver a signal: SIGSTOP freezes it as an overload or a partition would, SIGCONT thaws it. */
  signalApiserver(signal: NodeJS.Signals): void;
  /** Stops kube-apiserver (SIGTERM, then SIGKILL after 5 s); etcd and its data stay. */
  stopApiserver(): Promise<void>;
  /** Starts kube-apiserver again, with the same flags and port, and waits until it is ready. */
  startApiserver(): Promise<void>;
  /**
   * The client certificate kube-apiserver presents to admission webhooks that ask for one, and the CA
   * of its own that signs it (pass caPath to netpin as --client-ca); undefined when turned off.
   */
  webhookClient?: WebhookClient;
}

export interface WebhookClient {
  /** PEM bundle of the CA that signs the API server's webhook client certificate (and nothing else). */
  caPath: string;
  caPem: string;
  certPem: string;
  keyPem: string;
}

export interface StartOptions {
  /** kube-controller-manager --controllers (default: statefulset, replicaset, deployment, GC, namespace) */
  controllers?: string[];
  /** per-component start timeout in ms (default 120 s; env NETPIN_CONTROLPLANE_START_TIMEOUT_MS) */
  startTimeoutMs?: number;
  /** extra kube-controller-manager flags, appended last (the benchmarks raise --kube-api-qps/--kube-api-burst) */
  controllerManagerArgs?: string[];
  /** kube-apiserver --authorization-mode (default RBAC; a kubelet needs Node,RBAC) */
  authorizationMode?: string;
  /** extra kube-apiserver flags, appended last (e.g. --enable-aggregator-routing=true) */
  apiserverArgs?: string[];
  /**
   * Issue an apiserver-to-kubelet client certificate (O=system:masters) signed by the test CA
   * and pass it as --kubelet-client-certificate/--kubelet-client-key, so that logs, exec and
   * the kubelet proxy work against a test node (default false).
   */
  kubeletClientCert?: boolean;
  /** More IP addresses the apiserver's serving certificate is valid for (pods on a test node dial it through one). */
  apiserverIPs?: string[];
  /**
   * Give pods service account tokens, as a real cluster does: the ServiceAccount admission
   * plugin, and the controllers that create default service accounts and publish the CA
   * (default false: the tests without a node need neither).
   */
  serviceAccounts?: boolean;
  /**
   * kube-apiserver presents a client certificate to admission webhooks (default true): an
   * AdmissionConfiguration gives the ValidatingAdmissionWebhook and MutatingAdmissionWebhook plugins a
   * kubeConfigFile whose user `*` (any webhook host) has a certificate from a CA of its own. A webhook
   * that asks for no client certificate is not affected.
   */
  webhookClientCert?: boolean;
}

export const DEFAULT_CONTROLLERS: readonly string[] = [
  'statefulset-controller',
  'replicaset-controller',
  'deployment-controller',
  'garbage-collector-controller',
  'namespace-controller',
];

let repoRoot: string | undefined;

/**
 * An absolute path in this repository. Found by walking up to package.json rather than fixed
 * relative to this file, so that it is right both for the sources (vitest) and for their
 * compiled copies under dist/ (`npm run cluster` runs dist/scripts/cluster.js).
 */
export function repoPath(...parts: string[]): string {
  if (repoRoot === undefined) {
    let dir = path.dirname(fileURLToPath(import.meta.url));
    while (!fs.existsSync(path.join(dir, 'package.json'))) {
      const up = path.dirname(dir);
      if (up === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
      dir = up;
    }
    repoRoot = dir;
  }
  return path.join(repoRoot, ...parts);
}

const BUILD_SCRIPT = repoPath('test/controlplane/build.sh');
const LOG_TAIL_LINES = 40;

let binariesPromise: Promise<string> | undefined;

/** Runs test/controlplane/build.sh (stderr inherited) and returns the bin dir it prints last. */
export function binaries(): Promise<string> {
  binariesPromise ??= runBuildScript(BUILD_SCRIPT, ['kube-apiserver']).catch((err: unknown) => {
    binariesPromise = undefined; // allow a retry
    throw err;
  });
  return binariesPromise;
}

/**
 * Runs a build script of this repository (stderr inherited, stdout echoed) and returns the
 * bin dir it prints on its last line, once every `required` file is found there.
 */
export function runBuildScript(script: string, required: string[]): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const child = spawn('bash', [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      process.stderr.write(chunk);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code !== 0) {
        reject(new Error(`${script} failed (exit ${code ?? signal})`));
        return;
      }
      const lines = out
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l.length > 0);
      const binDir = lines[lines.length - 1];
      const missing = required.filter((f) => !binDir || !fs.existsSync(path.join(binDir, f)));
      if (!binDir || missing.length > 0) {
        reject(new Error(`${script} printed no usable bin dir (missing ${missing.join(', ')}):\n${out}`));
        return;
      }
      resolve(binDir);
    });
  });
}

// ---------------------------------------------------------------------------
// processes (exported for node.ts, which runs the node's daemons the same way)

export interface Proc {
  name: string;
  child: ChildProcess;
  logPath: string;
  exited: Promise<void>;
  exitInfo?: string;
}

const live = new Set<Proc>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort if a test run dies without calling stop(): do not leave orphans.
  process.on('exit', () => {
    for (const p of live) p.child.kill('SIGKILL');
  });
}

function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy', 'all_proxy']) {
    delete env[k];
  }
  env.NO_PROXY = '127.0.0.1,localhost,::1';
  env.no_proxy = env.NO_PROXY;
  return env;
}

export function startProc(
  name: string,
  bin: string,
  args: string[],
  dir: string,
  extraEnv: NodeJS.ProcessEnv = {},
): Proc {
  const logPath = path.join(dir, `${name}.log`);
  const fd = fs.openSync(logPath, 'a');
  fs.writeSync(fd, `$ ${bin} ${args.join(' ')}\n`);
  let child: ChildProcess;
  try {
    child = spawn(bin, args, { cwd: dir, env: { ...childEnv(), ...extraEnv }, stdio: ['ignore', fd, fd] });
  } finally {
    fs.closeSync(fd);
  }
  const proc: Proc = {
    name,
    child,
    logPath,
    exited: new Promise<void>((resolve) => {
      child.on('error', (err) => {
        proc.exitInfo = `spawn error: ${err.message}`;
        live.delete(proc);
        resolve();
      });
      child.on('exit', (code, signal) => {
        proc.exitInfo = `exited with ${code !== null ? `code ${code}` : signal}`;
        live.delete(proc);
        resolve();
      });
    }),
  };
  live.add(proc);
  installExitHook();
  return proc;
}

export async function stopProc(p: Proc, graceMs = 5_000): Promise<void> {
  if (p.exitInfo !== undefined) return;
  p.child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    p.exited.then(() => false),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs))),
  ]);
  clearTimeout(timer);
  if (timedOut) {
    p.child.kill('SIGKILL');
    await p.exited;
  }
}

function logTail(p: Proc): string {
  try {
    // Drop klog's --v=1 flag dump ("FLAG: --x=y"), which would crowd out the actual error.
    const lines = fs
      .readFileSync(p.logPath, 'utf8')
      .split('\n')
      .filter((l) => !/\] FLAG: --/.test(l));
    return lines.slice(-LOG_TAIL_LINES - 1).join('\n');
  } catch (err) {
    return `(no log: ${String(err)})`;
  }
}

function startError(p: Proc, what: string): Error {
  const state = p.exitInfo ?? 'still running';
  const kept = process.env.NETPIN_CONTROLPLANE_KEEP
    ? ''
    : ' (removed on failure; set NETPIN_CONTROLPLANE_KEEP=1 to keep)';
  return new Error(`${p.name}: ${what} (${state}); log ${p.logPath}${kept}, last lines:\n${logTail(p)}`);
}

/** Polls `check` until it returns true; fails fast if the process exits. */
export async function waitFor(p: Proc, what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (p.exitInfo !== undefined) throw startError(p, `exited while waiting for ${what}`);
    let ok: boolean;
    try {
      ok = await check();
    } catch {
      ok = false;
    }
    if (ok) return;
    if (Date.now() > deadline) throw startError(p, `timed out after ${timeoutMs} ms waiting for ${what}`);
    await Promise.race([p.exited, sleep(250)]);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------------------
// network helpers

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

interface TlsClient {
  ca: string;
  cert: string;
  key: string;
}

function httpStatus(url: string, tls?: TlsClient): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const opts: https.RequestOptions = { method: 'GET', timeout: 5_000, agent: false };
    const onRes = (res: http.IncomingMessage): void => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    };
    const req = u.protocol === 'https:' ? https.request(u, { ...opts, ...tls }, onRes) : http.request(u, opts, onRes);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

// ---------------------------------------------------------------------------
// certificates (openssl CLI)

async function makePki(dir: string, kubeletClient = false, extraIPs: string[] = []): Promise<void> {
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

function kubeconfig(url: string, ca: string, cert: string, key: string): string {
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
async function makeWebhookClient(dir: string): Promise<{ admissionConfig: string; client: WebhookClient }> {
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

// ---------------------------------------------------------------------------

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

export async function startControlPlane(opts: StartOptions = {}): Promise<ControlPlane> {
  const binDir = await binaries();
  const timeoutMs = opts.startTimeoutMs ?? (Number(process.env.NETPIN_CONTROLPLANE_START_TIMEOUT_MS) || 120_000);
  const controllers = opts.controllers ?? [...DEFAULT_CONTROLLERS];
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'netpin-cp-'));
  const procs: Proc[] = [];

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      for (const p of [...procs].reverse()) await stopProc(p);
      if (!process.env.NETPIN_CONTROLPLANE_KEEP) {
        await fsp.rm(dir, { recursive: true, force: true, maxRetries: 3 });
      }
    })();
    return stopping;
  };

  try {
    const [, webhooks] = await Promise.all([
      makePki(dir, opts.kubeletClientCert ?? false, opts.apiserverIPs),
      opts.webhookClientCert === false ? undefined : makeWebhookClient(dir),
    ]);
    const [caPem, adminCert, adminKey] = (await Promise.all(
      ['ca.crt', 'admin.crt', 'admin.key'].map((f) => fsp.readFile(path.join(dir, f), 'utf8')),
    )) as [string, string, string];
    const tls: TlsClient = { ca: caPem, cert: adminCert, key: adminKey };

    const [etcdPort, etcdPeerPort, apiPort] = [await freePort(), await freePort(), await freePort()];

    // etcd
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const etcd = startProc(
      'etcd',
      path.join(binDir, 'etcd'),
      [
        `--data-dir=${path.join(dir, 'etcd-data')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
        `--initial-cluster=default=http://127.0.0.1:${etcdPeerPort}`,
        '--log-level=warn',
        '--unsafe-no-fsync=true',
      ],
      dir,
    );
    procs.push(etcd);
    await waitFor(etcd, `${etcdUrl}/health`, timeoutMs, async () => {
      const r = await httpStatus(`${etcdUrl}/health`);
      return r.status === 200 && r.body.includes('"health":"true"');
    });

    // kube-apiserver
    const url = `https://127.0.0.1:${apiPort}`;
    const certDir = path.join(dir, 'apiserver-certs');
    await fsp.mkdir(certDir);
    const apiserverArgs = [
      `--etcd-servers=${etcdUrl}`,
      `--cert-dir=${certDir}`,
      `--tls-cert-file=${path.join(dir, 'apiserver.crt')}`,
      `--tls-private-key-file=${path.join(dir, 'apiserver.key')}`,
      `--client-ca-file=${path.join(dir, 'ca.crt')}`,
      `--secure-port=${apiPort}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      '--service-cluster-ip-range=10.0.0.0/24',
      '--allow-privileged=true',
      `--authorization-mode=${opts.authorizationMode ?? 'RBAC'}`,
      `--service-account-issuer=${url}/`,
      `--service-account-key-file=${path.join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${path.join(dir, 'sa.key')}`,
      ...(opts.serviceAccounts ? [] : ['--disable-admission-plugins=ServiceAccount']),
      ...(webhooks ? [`--admission-control-config-file=${webhooks.admissionConfig}`] : []),
      ...(opts.kubeletClientCert
        ? [
            `--kubelet-client-certificate=${path.join(dir, 'apiserver-kubelet-client.crt')}`,
            `--kubelet-client-key=${path.join(dir, 'apiserver-kubelet-client.key')}`,
          ]
        : []),
      ...(opts.apiserverArgs ?? []),
    ];
    let apiserver = startProc('kube-apiserver', path.join(binDir, 'kube-apiserver'), apiserverArgs, dir);
    procs.push(apiserver);
    await waitFor(
      apiserver,
      `${url}/readyz`,
      timeoutMs,
      async () => (await httpStatus(`${url}/readyz`, tls)).status === 200,
    );

    const kubeconfigPath = path.join(dir, 'admin.kubeconfig');
    await fsp.writeFile(kubeconfigPath, kubeconfig(url, caPem, adminCert, adminKey), { mode: 0o600 });

    // kube-controller-manager
    const kcm = startProc(
      'kube-controller-manager',
      path.join(binDir, 'kube-controller-manager'),
      [
        `--kubeconfig=${kubeconfigPath}`,
        `--controllers=${controllers.join(',')}`,
        ...(opts.serviceAccounts ? [`--root-ca-file=${path.join(dir, 'ca.crt')}`] : []),
        '--leader-elect=false',
        '--secure-port=0',
        '--v=1', // for the "Controller starting..." lines used as readiness signal
        ...(opts.controllerManagerArgs ?? []),
      ],
      dir,
    );
    procs.push(kcm);
    // Each enabled controller logs "Controller starting..." once. Aliases ("deployment")
    // resolve to canonical names, so count distinct names; with "*" or "-x", one is enough.
    const explicit = new Set(controllers.filter((c) => c !== '*' && !c.startsWith('-')));
    const expected = controllers.some((c) => c === '*' || c.startsWith('-')) ? 1 : Math.max(1, explicit.size);
    await waitFor(
      kcm,
      `${expected} controller(s) to start`,
      timeoutMs,
      async () => startedControllers(kcm.logPath, controllers).size >= expected,
    );

    const startApiserver = async (): Promise<void> => {
      const next = startProc('kube-apiserver', path.join(binDir, 'kube-apiserver'), apiserverArgs, dir);
      procs[procs.indexOf(apiserver)] = next;
      apiserver = next;
      await waitFor(
        apiserver,
        `${url}/readyz`,
        timeoutMs,
        async () => (await httpStatus(`${url}/readyz`, tls)).status === 200,
      );
    };
    return {
      url,
      kubeconfigPath,
      caPem,
      dir,
      binDir,
      stop,
      signalApiserver: (signal) => void apiserver.child.kill(signal),
      stopApiserver: () => stopProc(apiserver),
      startApiserver,
      ...(webhooks ? { webhookClient: webhooks.client } : {}),
    };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}
