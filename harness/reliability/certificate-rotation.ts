// Scenario 5: serving certificates replaced under steady admissions: none fails, and new
// handshakes get the new certificate without a restart.
import * as path from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { apiMessage, createNamespace, createPool, waitFor, type Clients } from '../cluster.js';
import { sleep } from '../controlplane.js';
import { finish, report, spec, type Env, type Report, type Size } from './env.js';
import { servedSerial, writePlainFiles, writeSecretVolume } from './pki.js';
import { Replicas } from './replicas.js';
import { allocate, podReview } from './reviews.js';

const NS = 'rotation';
const POOL = 'rotation';

/**
 * Steady load: keep-alive reviews to each replica, reviews on a new TLS connection each (which see
 * the certificate a handshake gets now), and pods through the API server and the Service.
 */
class SteadyLoad {
  readonly failures: string[] = [];
  direct = 0;
  fresh = 0;
  viaApi = 0;
  private stopped = false;
  private running: Promise<unknown> | undefined;

  constructor(
    private readonly c: Clients,
    private readonly replicas: Replicas,
    private readonly ca: string,
  ) {}

  start(): void {
    this.running = Promise.all([
      this.reviews(0, 'ka', false, 20),
      this.reviews(1, 'ka', false, 20),
      this.reviews(0, 'fresh', true, 50),
      this.reviews(1, 'fresh', true, 50),
      this.throughApi(),
    ]);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }

  private async reviews(i: number, prefix: 'ka' | 'fresh', fresh: boolean, pauseMs: number): Promise<void> {
    const what = fresh ? 'new-connection' : 'keep-alive';
    for (let n = 0; !this.stopped && n < 100_000; n++) {
      const a = await allocate(
        { port: this.replicas.list[i]!.port, caPem: this.ca },
        podReview(NS, POOL, `${prefix}-${i}-${n}`, `${prefix}-${i}-${n}-${Date.now()}`),
        fresh,
      );
      if (fresh) this.fresh++;
      else this.direct++;
      if (!a.ip) this.failures.push(`${what} review to replica ${i + 1}: ${a.error}`);
      await sleep(pauseMs);
    }
  }

  private async throughApi(): Promise<void> {
    for (let n = 0; !this.stopped && n < 100_000; n++) {
      try {
        await this.c.core.createNamespacedPod({
          namespace: NS,
          body: { metadata: { name: `api-${n}`, annotations: { 'netpin.io/pool': POOL } }, spec } as V1Pod,
        });
        this.viaApi++;
      } catch (e) {
        this.failures.push(`pod api-${n} through the API server: ${apiMessage(e).slice(0, 300)}`);
      }
      await sleep(100);
    }
  }
}

type Served = Array<{ replica: number; serial: string; seconds: number }>;

/** Replaces both replicas' certificate, and waits (bounded) until a new handshake with each gets it. */
async function rotate(env: Env, r: Report, replicas: Replicas, dirs: string[], k: number, served: Served) {
  const { pki } = env;
  const next = await pki.issue();
  const t = performance.now();
  await Promise.all([writeSecretVolume(dirs[0]!, next, pki.caPem), writePlainFiles(dirs[1]!, next, pki.caPem)]);
  for (const i of [0, 1]) {
    // netpin polls its files every 5 s; a new handshake must get the new certificate by then, with margin.
    const seen = await waitFor(
      `replica ${i + 1} to serve certificate ${next.serial}`,
      async () =>
        (await servedSerial(replicas.list[i]!.port, pki.caPem)) === next.serial ? performance.now() : undefined,
      15_000,
      100,
    ).catch((e: Error) => {
      r.lost.push(`rotation ${k}: ${e.message}`);
      return undefined;
    });
    if (seen !== undefined) served.push({ replica: i + 1, serial: next.serial, seconds: (seen - t) / 1000 });
  }
  env.log(
    `5: rotation ${k}: both replicas serve ${next.serial} (${served
      .slice(-2)
      .map((x) => `${x.seconds.toFixed(1)} s`)
      .join(', ')})`,
  );
}

function summarize(r: Report, size: Size, load: SteadyLoad, served: Served, restarted: number): void {
  const { failures, direct, fresh, viaApi } = load;
  if (restarted) r.lost.push(`${restarted} replica(s) exited during the rotations`);
  r.lost.push(...failures.slice(0, 20));
  if (failures.length > 20) r.lost.push(`... and ${failures.length - 20} more failed admissions`);
  const slowest = Math.max(...served.map((x) => x.seconds));
  r.figures = {
    seconds: size.rotationSeconds,
    rotations: `${served.length / 2} (each to both replicas)`,
    'admissions on keep-alive connections': direct,
    'admissions on a new connection each': fresh,
    'pods created through the API server': viaApi,
    'failed admissions': failures.length,
    'seconds until a new handshake got the new certificate, slowest': Number(slowest.toFixed(1)),
    'process restarts': restarted,
  };
  r.held.push(
    `${direct + fresh + viaApi} admissions (${direct} on keep-alive connections, ${fresh} on new ones, ${viaApi} pods through the API server) across ${served.length / 2} certificate replacements, ${failures.length} failed.`,
    `Each replacement was served to new handshakes within ${slowest.toFixed(1)} s (netpin polls every 5 s), by the same processes: no restart; checked by the served certificate's serial.`,
  );
  r.notes.push(
    "Replica 1 reads a Secret volume as kubelet writes it (files behind a ..data symlink swapped at once); replica 2 reads plain files rewritten in place, certificate first, key second. The new certificates come from the CA the webhooks trust, as a renewal by cert-manager or of the chart's self-signed Secret would.",
  );
}

export async function certificateRotation(env: Env, size: Size): Promise<Report> {
  const started = performance.now();
  const { c, pki } = env;
  const r = report('5', 'Certificate rotation under load', size);
  await createNamespace(c, NS, { 'netpin.io/enabled': 'true' });
  // Replica 1 reads a Secret volume as kubelet writes it (a ..data symlink swapped at once); replica 2
  // plain files rewritten in place, certificate first, so that it sees a mismatched pair for a moment.
  const dirs = [path.join(env.dir, 'rotation-secret'), path.join(env.dir, 'rotation-plain')];
  await writeSecretVolume(dirs[0]!, env.serving, pki.caPem);
  await writePlainFiles(dirs[1]!, env.serving, pki.caPem);
  const replicas = new Replicas(env, 'rotation', { count: 2, certDir: (i) => dirs[i]! });
  const served: Served = [];
  try {
    await replicas.start();
    await createPool(c, POOL, { cidr: '10.133.0.0/16' });
    await replicas.poolReady(NS, POOL);
    const until = performance.now() + size.rotationSeconds * 1000;
    const load = new SteadyLoad(c, replicas, pki.caPem);
    load.start();
    try {
      const gap = (size.rotationSeconds * 1000) / (size.rotations + 1);
      for (let k = 1; k <= size.rotations && performance.now() < until; k++) {
        await sleep(Math.max(0, started + k * gap - performance.now()));
        await rotate(env, r, replicas, dirs, k, served);
      }
      await sleep(Math.max(0, until - performance.now()));
    } finally {
      await load.stop();
    }
    const restarted = replicas.list.filter((n) => n.child.exitCode !== null || n.child.signalCode !== null).length;
    summarize(r, size, load, served, restarted);
  } finally {
    await replicas.stop();
    await c.core.deleteNamespace({ name: NS }).catch(() => undefined);
  }
  return finish(r, started);
}
