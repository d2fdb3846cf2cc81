// Runs the real `netpin serve` binary (dist/, built by `npm test`) as a child process.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoPath, type WebhookClient } from './controlplane.js';
import type { WireJson } from './json.js';
import { startChild } from './process.js';

// From the repository root, so that the compiled copy under dist/ (npm run chaos) finds it too.
const MAIN = repoPath('dist/src/cli/main.js');

/** A TLS client certificate and its key, PEM. */
export interface ClientCert {
  cert: string;
  key: string;
}

export interface Netpin {
  url: string;
  port: number;
  /** With metricsListen: the listener of /metrics, /healthz and /readyz (no client certificate). */
  metricsUrl?: string;
  /** With clientAuth: the certificate the API server presents, which postReview presents by default. */
  client?: ClientCert;
  caPem: string;
  certDir: string;
  child: ChildProcess;
  /** What the process wrote, for failure messages. */
  output(): string;
  /** SIGKILL: no goodbye, as a crashed replica. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

export interface NetpinOptions {
  kubeconfig: string;
  cni?: string;
  port?: number;
  certDir?: string;
  claimGraceSeconds?: number;
  leaseNamespace?: string;
  extraArgs?: string[];
  /** Runs `<launcher...> node main.js serve ...` instead, e.g. a shell that joins a cgroup first and then execs node. */
  launcher?: string[];
  /** More environment for the process. */
  env?: NodeJS.ProcessEnv;
  /** Require a client certificate from this CA (--client-ca); its certificate is the one tests present. */
  clientAuth?: WebhookClient;
  /** Serve /metrics on a port of its own (--metrics-listen 127.0.0.1:0), not on the webhook's. */
  metricsListen?: boolean;
}

export async function startNetpin(opts: NetpinOptions): Promise<Netpin> {
  const certDir = opts.certDir ?? mkdtempSync(join(tmpdir(), 'netpin-certs-'));
  const args = [
    MAIN,
    'serve',
    '--cni',
    opts.cni ?? 'calico',
    '--ledger',
    'kube',
    '--kubeconfig',
    opts.kubeconfig,
    '--listen',
    `127.0.0.1:${opts.port ?? 0}`,
    '--cert-dir',
    certDir,
    '--claim-grace',
    String(opts.claimGraceSeconds ?? 30),
    '--lease-namespace',
    opts.leaseNamespace ?? 'default',
    '--log-level',
    process.env.NETPIN_TEST_LOG_LEVEL ?? 'warn',
    ...(opts.clientAuth ? ['--client-ca', opts.clientAuth.caPath] : []),
    ...(opts.metricsListen ? ['--metrics-listen', '127.0.0.1:0'] : []),
    ...(opts.extraArgs ?? []),
  ];
  const { proc, match } = await startChild('netpin', args, /netpin serving (https:\/\/\S+)/, {
    timeoutMs: 60_000,
    env: opts.env,
    launcher: opts.launcher,
  });
  const url = match[1]!;
  // Printed before the serving line, so there by now.
  const metricsUrl = /netpin metrics on (https:\/\/\S+)/.exec(proc.output())?.[1];
  if (opts.metricsListen && !metricsUrl) throw new Error(`netpin printed no metrics URL:\n${proc.output()}`);
  return {
    url,
    port: Number(new URL(url).port),
    ...(metricsUrl ? { metricsUrl } : {}),
    ...(opts.clientAuth ? { client: { cert: opts.clientAuth.certPem, key: opts.clientAuth.keyPem } } : {}),
    certDir,
    caPem: readFileSync(join(certDir, 'ca.crt'), 'utf8'),
    child: proc.child,
    output: proc.output,
    kill: proc.kill,
    stop: () => proc.stop(),
  };
}

/**
 * POSTs an AdmissionReview over HTTPS, trusting only netpin's CA, and presenting the API server's
 * client certificate when netpin asks for one; `client` presents another (`null`: none).
 */
export async function postReview(
  netpin: Pick<Netpin, 'url' | 'caPem' | 'client'>,
  path: '/mutate' | '/validate',
  body: unknown,
  opts: { client?: ClientCert | null } = {},
): Promise<{ status: number; json: WireJson }> {
  const https = await import('node:https');
  const payload = JSON.stringify(body);
  const client = opts.client === undefined ? netpin.client : (opts.client ?? undefined);
  return new Promise((resolve, reject) => {
    const req = https.request(
      `${netpin.url}${path}`,
      {
        method: 'POST',
        ca: netpin.caPem,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        agent: reviewAgent(https, netpin.caPem, client),
      },
      (res) => {
        let data = '';
        res
          .setEncoding('utf8')
          .on('data', (c: string) => (data += c))
          .on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(data) }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** How many addresses of a pool a replica counts as held (its netpin_pool_allocated_addresses), as its index sees them. */
export async function heldAddresses(
  netpin: Pick<Netpin, 'url' | 'caPem' | 'metricsUrl' | 'client'>,
  pool: string,
): Promise<number> {
  const https = await import('node:https');
  // The metrics port asks for no client certificate; the webhook port, when it serves metrics, may.
  const client = netpin.metricsUrl ? undefined : netpin.client;
  const base = netpin.metricsUrl ?? netpin.url;
  const text = await new Promise<string>((resolve, reject) => {
    https
      .get(`${base}/metrics`, { ca: netpin.caPem, agent: reviewAgent(https, netpin.caPem, client) }, (res) => {
        let data = '';
        res
          .setEncoding('utf8')
          .on('data', (c: string) => (data += c))
          .on('end', () => resolve(data));
      })
      .on('error', reject);
  });
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`netpin_pool_allocated_addresses{pool="${pool}",family="ipv4"} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

const agents = new Map<string, import('node:https').Agent>();
function reviewAgent(https: typeof import('node:https'), ca: string, client?: ClientCert): import('node:https').Agent {
  const key = `${ca}\0${client?.cert ?? ''}`;
  let a = agents.get(key);
  if (!a) agents.set(key, (a = new https.Agent({ keepAlive: true, maxSockets: 16, ca, ...(client ?? {}) })));
  return a;
}

export function decodePatch(response: { patch?: string }): Array<{ op: string; path: string; value?: unknown }> {
  return response.patch ? JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) : [];
}
