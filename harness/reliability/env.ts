// What every reliability scenario shares: its size, its report, and the control plane with the
// webhooks registered at the loopback Service (service.ts), set up once for all of them.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { applyCrds, clients, registerWebhooks, type Clients } from '../cluster.js';
import { startControlPlane, type ControlPlane } from '../controlplane.js';
import { createPki, type Pki, type ServingCert } from './pki.js';
import { startService, type Service } from './service.js';

export interface Size {
  name: 'light' | 'full';
  /** Scenario 1: pods admitted across three replicas, half bare, half from Deployments of 20. */
  pods: number;
  /** Scenario 2: rounds of delete, scale 5 → 1 → 5 and rolling update. */
  churnRounds: number;
  /** Scenario 3: leaders killed in turn. */
  failovers: number;
  /** Scenario 5: seconds of steady admissions, and certificate replacements in them. */
  rotationSeconds: number;
  rotations: number;
}

export const LIGHT: Size = {
  name: 'light',
  pods: 200,
  churnRounds: 3,
  failovers: 1,
  rotationSeconds: 16,
  rotations: 2,
};
export const FULL: Size = {
  name: 'full',
  pods: 2000,
  churnRounds: 50,
  failovers: 3,
  rotationSeconds: 60,
  rotations: 6,
};

/** What one scenario held and lost; `lost` empty is the target. */
export interface Report {
  id: string;
  title: string;
  size: Size['name'];
  seconds: number;
  /** What was checked and held, each with its figure. */
  held: string[];
  /** Every violation found; the scenario's target is none. */
  lost: string[];
  figures: Record<string, number | string>;
  notes: string[];
}

export interface Env {
  cp: ControlPlane;
  c: Clients;
  pki: Pki;
  /** The serving certificate replicas start with. */
  serving: ServingCert;
  service: Service;
  dir: string;
  log(line: string): void;
}

/** The chart's default `resources.limits.memory`. */
export const CHART_MEMORY_LIMIT = 512 * 1024 * 1024;
/** The chart's `webhook.timeoutSeconds`: the API server gives a webhook call this long. */
export const WEBHOOK_TIMEOUT_MS = 10_000;
// Above the webhook timeout: a claim made at mutate is past its grace only once the API server has
// given up on the admission that made it, so the release of a pod that was never created is sure.
export const GRACE_SECONDS = 15;
export const LEASE = { name: 'netpin-reconciler', namespace: 'default', durationSeconds: 15, renewSeconds: 5 };
export const SWEEP_MS = 5_000;
export const spec = {
  containers: [{ name: 'app', image: 'registry.example/app:1' }],
  terminationGracePeriodSeconds: 0,
};

export async function setUp(log: (line: string) => void): Promise<Env> {
  // The benchmarks' setting: the ReplicaSet controller's default 20 QPS would make the control plane, not netpin, the limit.
  const cp = await startControlPlane({ controllerManagerArgs: ['--kube-api-qps=1000', '--kube-api-burst=2000'] });
  try {
    const c = clients(cp.kubeconfigPath);
    await applyCrds(c);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netpin-reliability-'));
    const pki = await createPki(path.join(dir, 'pki'));
    const serving = await pki.issue();
    const service = await startService();
    await registerWebhooks(c, { url: service.url, caPem: pki.caPem }, cp.binDir);
    log(`control plane at ${cp.url}; webhooks registered at the loopback Service ${service.url}`);
    return { cp, c, pki, serving, service, dir, log };
  } catch (e) {
    await cp.stop();
    throw e;
  }
}

export async function tearDown(env: Env | undefined): Promise<void> {
  if (!env) return;
  await env.service.close();
  await env.cp.stop();
  fs.rmSync(env.dir, { recursive: true, force: true });
}

export const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
export const mib = (b: number | undefined) =>
  b === undefined || !Number.isFinite(b) ? '–' : `${(b / 2 ** 20).toFixed(0)} MiB`;

export function report(id: string, title: string, size: Size): Report {
  return { id, title, size: size.name, seconds: 0, held: [], lost: [], figures: {}, notes: [] };
}

export function finish(r: Report, started: number): Report {
  r.seconds = Math.round((performance.now() - started) / 100) / 10;
  return r;
}
