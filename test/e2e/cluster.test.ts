// `npm run cluster` as a user runs it: the compiled script (npm run build first) started as a
// process, its KUBECONFIG and PATH exports used with the real kubectl, a pod that asks netpin
// for a pool address and a rate, then SIGINT: exit 0 and nothing left on the host.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoPath } from '../../harness/controlplane.js';
import { waitFor } from '../../harness/cluster.js';
import {
  APP_IMAGE,
  APP_PORT,
  BRIDGE,
  STATE_FILE,
  findLeftovers,
  kubepodsCgroups,
  podShaping,
  type HostSnapshot,
} from '../../harness/node.js';

const SCRIPT = repoPath('dist/scripts/cluster.js');
/** A cold run builds the control plane, the node and the image from source first. */
const START_TIMEOUT_MS = Number(process.env.NETPIN_CLUSTER_START_TIMEOUT_MS) || 40 * 60_000;
const STOP_TIMEOUT_MS = 180_000;

let proc: ChildProcess;
let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
let stdout = '';
let stderr = '';
let kubeconfig: string;
let binDir: string;
let snapshot: HostSnapshot;
let cacheDir: string;

const tail = (s: string, n = 30) => s.split('\n').slice(-n).join('\n');

/** kubectl found on PATH through the printed export, as in the user's shell; bounded. */
function kubectl(args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('kubectl', args, {
      // KUBECACHEDIR: kubectl's discovery cache would otherwise land in this user's ~/.kube.
      env: {
        ...process.env,
        KUBECONFIG: kubeconfig,
        PATH: `${binDir}:${process.env.PATH ?? ''}`,
        KUBECACHEDIR: cacheDir,
      },
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: 30_000,
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      code === 0 ? resolve(out) : reject(new Error(`kubectl ${args.join(' ')}: ${code ?? signal}: ${err}`)),
    );
    child.stdin.end(input ?? '');
  });
}

beforeAll(async () => {
  if (!fs.existsSync(SCRIPT)) throw new Error(`${SCRIPT} is missing: run npm run build first`);
  cacheDir = await fsp.mkdtemp(path.join(tmpdir(), 'netpin-kubectl-cache-'));
  const env = { ...process.env };
  delete env.NODE_OPTIONS; // vitest's, not a user's
  const started = Date.now();
  proc = spawn(process.execPath, [SCRIPT], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  proc.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  let gone = false;
  void exited.then(() => (gone = true));
  const exports = await waitFor(
    'the export lines of npm run cluster',
    async () => {
      if (gone) throw new Error(`npm run cluster exited before it was ready:\n${tail(stderr)}`);
      const k = /^export KUBECONFIG=(.+)$/m.exec(stdout)?.[1];
      const p = /^export PATH=(.+):\$PATH$/m.exec(stdout)?.[1];
      return k && p ? { k, p } : undefined;
    },
    START_TIMEOUT_MS,
    250,
  ).catch((err: unknown) => {
    throw new Error(`${err instanceof Error ? err.message : String(err)}\nstderr:\n${tail(stderr)}`);
  });
  process.stderr.write(`cluster: export line after ${Date.now() - started} ms\n`);
  kubeconfig = exports.k;
  binDir = exports.p;
  // The script's own record of the host before the node touched it, for the check after it stops.
  snapshot = JSON.parse(await fsp.readFile(STATE_FILE, 'utf8')) as HostSnapshot;
}, START_TIMEOUT_MS + 60_000);

afterAll(async () => {
  // A failed test must not leave the cluster running: stop it the way a user would.
  if (proc && proc.exitCode === null && proc.signalCode === null) {
    proc.kill('SIGINT');
    await Promise.race([exited, new Promise((r) => setTimeout(r, STOP_TIMEOUT_MS))]);
  }
  if (cacheDir) await fsp.rm(cacheDir, { recursive: true, force: true });
}, STOP_TIMEOUT_MS + 30_000);

describe('npm run cluster', () => {
  it('prints what to export, and kubectl from the build is found with it', async () => {
    expect(fs.existsSync(kubeconfig)).toBe(true);
    expect(fs.existsSync(path.join(binDir, 'kubectl'))).toBe(true);
    expect(stdout).toMatch(/^kubectl -n demo /m);
    expect(await kubectl(['get', 'namespace', 'demo', '-o', 'jsonpath={.metadata.labels.netpin\\.io/enabled}'])).toBe(
      'true',
    );
  });

  it("runs a pod with netpin.io/pool and netpin.io/egress-rate: Running on netpin's address, with the rate on its qdisc", async () => {
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'web',
        namespace: 'demo',
        annotations: { 'netpin.io/pool': 'demo', 'netpin.io/egress-rate': '10M' },
      },
      spec: {
        terminationGracePeriodSeconds: 5,
        containers: [
          {
            name: 'app',
            image: APP_IMAGE,
            imagePullPolicy: 'Never',
            ports: [{ containerPort: APP_PORT }],
            readinessProbe: { httpGet: { path: '/healthz', port: APP_PORT }, periodSeconds: 1 },
          },
        ],
      },
    };
    await kubectl(['apply', '-f', '-'], JSON.stringify(pod));
    const running = await waitFor(
      'pod demo/web Running',
      async () => {
        const p = JSON.parse(await kubectl(['-n', 'demo', 'get', 'pod', 'web', '-o', 'json'])) as {
          metadata: { uid: string; annotations?: Record<string, string> };
          status?: { phase?: string; podIP?: string };
        };
        return p.status?.phase === 'Running' ? p : undefined;
      },
      90_000,
      500,
    );
    const a = running.metadata.annotations ?? {};
    const allocated = a['netpin.io/allocated'];
    expect(allocated).toMatch(/^10\.244\.60\.\d+$/);
    // The default --cni is netpin-ipam: the node's CNI gave the pod netpin's address, as `get -o wide` shows.
    expect(running.status?.podIP).toBe(allocated);
    const wide = await kubectl(['-n', 'demo', 'get', 'pod', 'web', '-o', 'wide', '--no-headers']);
    expect(wide.split(/\s+/)).toContain(allocated);
    expect(a['kubernetes.io/egress-bandwidth']).toBe('10M');
    expect(await podShaping(running.metadata.uid)).toMatchObject({ egress: '10Mbit' });
  });

  it(
    'stops everything on SIGINT, exits 0 and leaves the host as it found it',
    async () => {
      proc.kill('SIGINT');
      const end = await Promise.race([
        exited,
        new Promise<never>((_, reject) =>
          setTimeout(
            () => reject(new Error(`still running ${STOP_TIMEOUT_MS} ms after SIGINT:\n${tail(stderr)}`)),
            STOP_TIMEOUT_MS,
          ),
        ),
      ]);
      expect(end, tail(stderr)).toEqual({ code: 0, signal: null });
      expect(fs.existsSync(path.join('/sys/class/net', BRIDGE))).toBe(false);
      expect(await kubepodsCgroups()).toEqual([]);
      expect(fs.existsSync(STATE_FILE)).toBe(false);
      expect(await findLeftovers(snapshot)).toEqual([]);
      // The node's daemons, its run dir, and the control plane's dir with the kubeconfig.
      for (const { pid } of snapshot.daemons) expect(fs.existsSync(`/proc/${pid}`), `daemon pid ${pid}`).toBe(false);
      expect(fs.existsSync(snapshot.runDir)).toBe(false);
      expect(fs.existsSync(kubeconfig)).toBe(false);
    },
    STOP_TIMEOUT_MS + 30_000,
  );
});
