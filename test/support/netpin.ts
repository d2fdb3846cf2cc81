// Runs the real `netpin serve` binary (dist/, built by `npm test`) as a child process.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoPath } from './controlplane.js';
import type { WireJson } from './json.js';
import { startChild } from './process.js';

// From the repository root, so that the compiled copy under dist/ (npm run chaos) finds it too.
const MAIN = repoPath('dist/src/cli/main.js');

export interface Netpin {
  url: string;
  port: number;
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
    ...(opts.extraArgs ?? []),
  ];
  const { proc, match } = await startChild('netpin', args, /netpin serving (https:\/\/\S+)/, {
    timeoutMs: 60_000,
    env: opts.env,
    launcher: opts.launcher,
  });
  const url = match[1]!;
  return {
    url,
    port: Number(new URL(url).port),
    certDir,
    caPem: readFileSync(join(certDir, 'ca.crt'), 'utf8'),
    child: proc.child,
    output: proc.output,
    kill: proc.kill,
    stop: () => proc.stop(),
  };
}

/** POSTs an AdmissionReview over HTTPS, trusting only netpin's CA. */
export async function postReview(
  netpin: Pick<Netpin, 'url' | 'caPem'>,
  path: '/mutate' | '/validate',
  body: unknown,
): Promise<{ status: number; json: WireJson }> {
  const https = await import('node:https');
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request(
      `${netpin.url}${path}`,
      {
        method: 'POST',
        ca: netpin.caPem,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        agent: reviewAgent(https, netpin.caPem),
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
export async function heldAddresses(netpin: Pick<Netpin, 'url' | 'caPem'>, pool: string): Promise<number> {
  const https = await import('node:https');
  const text = await new Promise<string>((resolve, reject) => {
    https
      .get(`${netpin.url}/metrics`, { ca: netpin.caPem, agent: reviewAgent(https, netpin.caPem) }, (res) => {
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
function reviewAgent(https: typeof import('node:https'), ca: string): import('node:https').Agent {
  let a = agents.get(ca);
  if (!a) agents.set(ca, (a = new https.Agent({ keepAlive: true, maxSockets: 16, ca })));
  return a;
}

export function decodePatch(response: { patch?: string }): Array<{ op: string; path: string; value?: unknown }> {
  return response.patch ? JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) : [];
}
