// Runs the real `netpin serve` binary (dist/, built by `npm test`) as a child process.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoPath } from './controlplane.js';
import type { WireJson } from '../../support/json.js';

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
  const [bin, ...pre] = [...(opts.launcher ?? []), process.execPath];
  const child = spawn(bin!, [...pre, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...opts.env, NO_PROXY: '127.0.0.1,localhost' },
  });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`netpin did not start in 60 s:\n${out}`)), 60_000);
    const onData = () => {
      const m = /netpin serving (https:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`netpin exited with ${code} before serving:\n${out}`));
    });
  });
  const port = Number(new URL(url).port);
  return {
    url,
    port,
    certDir,
    caPem: readFileSync(join(certDir, 'ca.crt'), 'utf8'),
    child,
    output: () => out,
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
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

const agents = new Map<string, import('node:https').Agent>();
function reviewAgent(https: typeof import('node:https'), ca: string): import('node:https').Agent {
  let a = agents.get(ca);
  if (!a) agents.set(ca, (a = new https.Agent({ keepAlive: true, maxSockets: 16, ca })));
  return a;
}

export function decodePatch(response: { patch?: string }): Array<{ op: string; path: string; value?: unknown }> {
  return response.patch ? JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) : [];
}
