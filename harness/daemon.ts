// Long-running binaries of the control plane and the node: started with a log file each, stopped
// with the test run whatever happens, waited for until they serve; and the small network helpers
// their readiness checks use.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as path from 'node:path';

const LOG_TAIL_LINES = 40;

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

export interface TlsClient {
  ca: string;
  cert: string;
  key: string;
}

export function httpStatus(url: string, tls?: TlsClient): Promise<{ status: number; body: string }> {
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
