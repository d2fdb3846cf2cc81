// The reliability scenarios of issue 10 on a real etcd, kube-apiserver and kube-controller-manager,
// written once and run at two sizes: light in the test command (test/e2e/reliability.test.ts) and
// full in `npm run chaos` (bench/chaos.ts), which writes docs/reliability.md from their reports.
//
// The webhooks are registered once, at a loopback stand-in for the chart's Service (service.ts),
// which spreads the API server's connections over the scenario's replicas. So pods created through
// the API server (bare pods by a client here, Deployments' and StatefulSets' by the controllers)
// are admitted by all replicas; some reviews are also posted straight to one replica, where a
// scenario needs a given replica to answer (a claim whose pod is never created, steady load).
// No kubelet runs: pods stay Pending unless a scenario writes their status as a kubelet would.
//
// Every loop here ends by count or by time. Nothing is asserted with vitest: each scenario returns
// what held and what was lost (the target: nothing), which the test file asserts and chaos reports.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Watch, type V1Pod } from '@kubernetes/client-node';
import { startControlPlane, sleep, type ControlPlane } from '../controlplane.js';
import {
  apiMessage,
  applyCrds,
  calicoIps,
  clients,
  createNamespace,
  createPool,
  listClaims,
  registerWebhooks,
  waitFor,
  type ClaimView,
  type Clients,
} from '../cluster.js';
import { decodePatch, startNetpin, type Netpin } from '../netpin.js';
import { createMemoryCgroup, rss, type MemoryCgroup } from '../memory.js';
import { createPki, servedSerial, writePlainFiles, writeSecretVolume, type Pki, type ServingCert } from './pki.js';
import { startService, type Service } from './service.js';
import type { WireJson } from '../json.js';

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
const WEBHOOK_TIMEOUT_MS = 10_000;
// Above the webhook timeout: a claim made at mutate is past its grace only once the API server has
// given up on the admission that made it, so the release of a pod that was never created is sure.
const GRACE_SECONDS = 15;
const LEASE = { name: 'netpin-reconciler', namespace: 'default', durationSeconds: 15, renewSeconds: 5 };
const SWEEP_MS = 5_000;
const spec = { containers: [{ name: 'app', image: 'registry.example/app:1' }], terminationGracePeriodSeconds: 0 };

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

// ---------------------------------------------------------------------------------------------
// replicas

interface ReplicaOptions {
  count: number;
  grace?: number;
  /** Cert dir of replica i; default: a dir of plain files with env.serving. */
  certDir?: (i: number) => string;
  launcher?: (i: number) => string[] | undefined;
}

/** netpin replicas behind the Service, each restarted on its own port and cert dir. */
class Replicas {
  readonly list: Netpin[] = [];
  private readonly dirs: string[] = [];
  constructor(
    private readonly env: Env,
    private readonly tag: string,
    private readonly o: ReplicaOptions,
  ) {}

  /** Starts the replicas; `leader` first, alone, until it holds the reconciler's Lease. */
  async start(leader?: number): Promise<void> {
    for (let i = 0; i < this.o.count; i++) {
      let dir = this.o.certDir?.(i);
      if (!dir) {
        dir = path.join(this.env.dir, `${this.tag}-${i}`);
        await writePlainFiles(dir, this.env.serving, this.env.pki.caPem);
      }
      this.dirs.push(dir);
    }
    if (leader !== undefined) {
      const first = await this.launch(leader, 0, this.dirs[leader]!);
      const identity = `${os.hostname()}-${first.child.pid}`;
      await waitFor(
        `replica ${leader + 1} to hold the Lease`,
        async () => (await readLease(this.env.c)).holder === identity,
        (LEASE.durationSeconds + 2 * LEASE.renewSeconds) * 1000,
        200,
      );
      const rest = await Promise.all(
        this.dirs.map((certDir, i) => (i === leader ? first : this.launch(i, 0, certDir))),
      );
      this.list.push(...rest);
    } else {
      this.list.push(...(await Promise.all(this.dirs.map((certDir, i) => this.launch(i, 0, certDir)))));
    }
    this.env.service.setBackends(this.list.map((n) => n.port));
  }

  private launch(i: number, port: number, certDir: string): Promise<Netpin> {
    return startNetpin({
      kubeconfig: this.env.cp.kubeconfigPath,
      port,
      certDir,
      claimGraceSeconds: this.o.grace ?? GRACE_SECONDS,
      leaseNamespace: LEASE.namespace,
      launcher: this.o.launcher?.(i),
    });
  }

  identity(i: number): string {
    return `${os.hostname()}-${this.list[i]!.child.pid}`;
  }

  /** SIGKILL; the Service stops sending it connections a second later, as the endpoints controller would. */
  async kill(i: number): Promise<void> {
    await this.list[i]!.kill();
    await sleep(1_000);
    this.env.service.setBackends(this.list.filter((_, j) => j !== i).map((n) => n.port));
  }

  async restart(i: number): Promise<void> {
    const old = this.list[i]!;
    this.list[i] = await this.launch(i, old.port, this.dirs[i]!);
    this.env.service.setBackends(this.list.map((n) => n.port));
  }

  /** Waits until every replica's watch has the IPPool: a dry-run review is allowed on each. */
  async poolReady(namespace: string, pool: string): Promise<void> {
    await Promise.all(
      this.list.map((n, i) =>
        waitFor(
          `replica ${i + 1} to know IPPool ${pool}`,
          async () => {
            const body = podReview(namespace, pool, 'probe', `probe-${i}-${Date.now()}`);
            (body.request as { dryRun?: boolean }).dryRun = true;
            return (await allocate(n, body)).ip !== undefined;
          },
          30_000,
          100,
        ),
      ),
    );
  }

  async stop(): Promise<void> {
    this.env.service.setBackends([]);
    await Promise.all(this.list.map((n) => n.stop()));
  }
}

// ---------------------------------------------------------------------------------------------
// helpers

async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

function podReview(namespace: string, pool: string, name: string | undefined, uid: string) {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace,
      ...(name ? { name } : {}),
      operation: 'CREATE',
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          ...(name ? { name } : { generateName: 'ghost-' }),
          namespace,
          annotations: { 'netpin.io/pool': pool },
        },
        spec,
      },
    },
  };
}

/** The address a mutate answer gives, or why there is none. */
function allocatedBy(answer: { status: number; json: WireJson }): { ip?: string; error?: string } {
  if (answer.status !== 200) return { error: `HTTP ${answer.status}` };
  const r = answer.json?.response;
  if (!r?.allowed) return { error: r?.status?.message ?? 'denied' };
  const op = decodePatch(r).find((o) => o.path === '/metadata/annotations/netpin.io~1allocated');
  return op ? { ip: String(op.value) } : { error: 'no netpin.io/allocated in the patch' };
}

interface CreateOutcome {
  pod?: V1Pod;
  attempts: number;
  errors: string[];
}

/**
 * Creates a pod through the API server as a client that retries would: after a failed webhook call
 * or an in-band "could not decide", again a little later; AlreadyExists after a failed attempt means
 * that attempt was stored after all.
 */
async function createPodRetrying(c: Clients, namespace: string, body: V1Pod, attempts = 8): Promise<CreateOutcome> {
  const errors: string[] = [];
  for (let i = 1; i <= attempts; i++) {
    try {
      return { pod: await c.core.createNamespacedPod({ namespace, body }), attempts: i, errors };
    } catch (e) {
      if ((e as { code?: number }).code === 409 && i > 1)
        return { pod: await c.core.readNamespacedPod({ namespace, name: body.metadata!.name! }), attempts: i, errors };
      errors.push(apiMessage(e).slice(0, 300));
      await sleep(250 * i);
    }
  }
  return { attempts, errors };
}

async function listPods(c: Clients, namespace: string): Promise<V1Pod[]> {
  return (await c.core.listNamespacedPod({ namespace })).items.filter((p) => !p.metadata?.deletionTimestamp);
}

interface LedgerCheck {
  pods: number;
  claims: number;
  lost: string[];
}

/**
 * The ledger against the pods of a namespace: every pod carries exactly one address and it is its
 * netpin.io/allocated; no address is on two pods or in two claims; the pool's claims are exactly
 * the pods' addresses; and a pod's claim names that pod (once the reconciler has bound it).
 */
function checkLedger(pods: V1Pod[], claims: ClaimView[], opts: { requireBound: boolean }): LedgerCheck {
  const lost: string[] = [];
  const byIp = new Map<string, string>();
  for (const p of pods) {
    const name = p.metadata!.name!;
    const ips = calicoIps(p);
    const allocated = p.metadata?.annotations?.['netpin.io/allocated'];
    if (ips.length !== 1 || allocated !== ips[0]) {
      lost.push(
        `pod ${name} carries ${JSON.stringify(ips)} (netpin.io/allocated ${allocated ?? 'absent'}), not one address`,
      );
      continue;
    }
    const prior = byIp.get(ips[0]!);
    if (prior) lost.push(`${ips[0]} is on two pods: ${prior} and ${name}`);
    byIp.set(ips[0]!, name);
  }
  const claimed = new Map<string, ClaimView>();
  for (const x of claims) {
    if (claimed.has(x.ip)) lost.push(`${x.ip} is in two claims`);
    claimed.set(x.ip, x);
  }
  for (const [ip, name] of byIp) {
    const x = claimed.get(ip);
    if (!x) lost.push(`pod ${name} uses ${ip}, which no claim holds`);
    else if (opts.requireBound && x.owner.kind === 'Pod' && x.owner.name !== name)
      lost.push(`the claim on ${ip} names pod ${x.owner.name || '(none)'}, but pod ${name} uses it`);
  }
  for (const [ip, x] of claimed) {
    if (!byIp.has(ip)) lost.push(`claim ${x.name} (${x.owner.kind} ${x.owner.name ?? ''}) has no pod`);
  }
  return { pods: pods.length, claims: claims.length, lost };
}

/** Waits for the ledger to settle (bounded), then returns the last check. */
async function settledLedger(
  c: Clients,
  namespace: string,
  pool: string,
  withinMs: number,
): Promise<LedgerCheck & { waitedMs: number }> {
  const started = performance.now();
  let last: LedgerCheck = { pods: 0, claims: 0, lost: ['never checked'] };
  while (performance.now() - started < withinMs) {
    last = checkLedger(await listPods(c, namespace), await listClaims(c, pool), { requireBound: true });
    if (last.lost.length === 0) break;
    await sleep(1_000);
  }
  return { ...last, waitedMs: performance.now() - started };
}

const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const mib = (b: number | undefined) =>
  b === undefined || !Number.isFinite(b) ? '–' : `${(b / 2 ** 20).toFixed(0)} MiB`;

function report(id: string, title: string, size: Size): Report {
  return { id, title, size: size.name, seconds: 0, held: [], lost: [], figures: {}, notes: [] };
}

function finish(r: Report, started: number): Report {
  r.seconds = Math.round((performance.now() - started) / 100) / 10;
  return r;
}

// ---------------------------------------------------------------------------------------------
// 1 and 7: replicas killed mid-run, one of them under the chart's memory limit

export interface ReplicasOptions {
  /** Run replica 3 in a memory cgroup with the chart's limit (scenario 7); when impossible, say why and run it without. */
  memoryLimit?: boolean;
}

export async function replicasKilled(env: Env, size: Size, o: ReplicasOptions = {}): Promise<Report> {
  const started = performance.now();
  const { c, log } = env;
  const r = report('1', 'Replicas killed mid-run', size);
  const NS = 'replicas';
  const POOL = 'replicas';
  await createNamespace(c, NS, { 'netpin.io/enabled': 'true' });

  const PER_DEPLOYMENT = 20;
  const deployments = Math.max(1, Math.round(size.pods / 2 / PER_DEPLOYMENT));
  const bare = size.pods - deployments * PER_DEPLOYMENT;
  const ghosts = Math.max(3, Math.round(size.pods / 50));

  let cgroup: MemoryCgroup | undefined;
  if (o.memoryLimit) {
    const made = createMemoryCgroup(CHART_MEMORY_LIMIT);
    if (typeof made === 'string') r.notes.push(`Memory limit not applied: ${made}.`);
    else cgroup = made;
  }
  // The replica measured for scenario 7: never killed, and the leader, which also reconciles, so
  // that its peak covers the whole run and the most work.
  const MEASURED = 2;
  const replicas = new Replicas(env, 'replicas', {
    count: 3,
    launcher: (i) => (i === MEASURED ? cgroup?.launcher : undefined),
  });
  try {
    await replicas.start(MEASURED);
    // IPPools are admitted by netpin too: created once a replica answers.
    await createPool(c, POOL, { cidr: '10.130.0.0/20' });
    await replicas.poolReady(NS, POOL);
    await sleep(2_000);
    const idle = rss(replicas.list[MEASURED]!.child.pid);
    log(
      `1: 3 replicas up; replica ${MEASURED + 1} idle RSS ${mib(idle?.now)}${cgroup ? ` in a ${mib(CHART_MEMORY_LIMIT)} memory cgroup` : ''}`,
    );

    // Each bare pod is first reviewed straight on one replica, then created through the API server,
    // where another replica may admit it: it must get the same address (same name, same owner), or,
    // if that replica has not seen the claim yet, one address still, the first claim released.
    const names = Array.from({ length: bare }, (_, i) => `bare-${i}`);
    const direct = new Map<string, string>();
    let directFailed = 0;
    // Then the pods: Deployments created all at once (their pods come from the ReplicaSet controller), bare
    // pods by a client 16 at a time, and claims whose pod never comes, posted straight to each replica.
    const t0 = performance.now();
    await forEachLimited(
      Array.from({ length: deployments }, (_, i) => i),
      8,
      async (_, d) => {
        await c.apps.createNamespacedDeployment({
          namespace: NS,
          body: {
            metadata: { name: `dep-${d}` },
            spec: {
              replicas: PER_DEPLOYMENT,
              selector: { matchLabels: { app: `dep-${d}` } },
              template: { metadata: { labels: { app: `dep-${d}` }, annotations: { 'netpin.io/pool': POOL } }, spec },
            },
          },
        });
      },
    );
    const outcomes: CreateOutcome[] = [];
    let killed = false;
    const killAt = Math.floor(bare * 0.4);
    let killDone: Promise<void> = Promise.resolve();
    const KILLED = 0;
    // A released ghost's address may go to a later pod: a ghost is held while a claim has its address and its uid.
    const ghostClaims: { ip: string; uid: string }[] = [];
    const ghostWork = forEachLimited(
      Array.from({ length: ghosts }, (_, i) => i),
      2,
      async (i) => {
        await sleep((i * 20_000 * size.pods) / 2000 / ghosts);
        const target = replicas.list[(i + 1) % 3]!;
        const uid = `ghost-${i}-${Date.now()}`;
        const a = await allocate(target, podReview(NS, POOL, undefined, uid));
        if (a.ip) ghostClaims.push({ ip: a.ip, uid });
      },
    );
    await forEachLimited(names, 16, async (name, i) => {
      if (i === killAt && !killed) {
        killed = true;
        killDone = (async () => {
          const tk = performance.now();
          await replicas.kill(KILLED);
          await sleep(2_000);
          await replicas.restart(KILLED);
          log(`1: replica ${KILLED + 1} SIGKILLed after ${s(tk - t0)}, back in ${s(performance.now() - tk)}`);
          r.figures['replica killed at'] = s(tk - t0);
          r.figures['replica back after'] = s(performance.now() - tk);
        })();
      }
      const a = await allocate(replicas.list[i % 3]!, podReview(NS, POOL, name, `direct-${name}`));
      if (a.ip) direct.set(name, a.ip);
      else directFailed++;
      outcomes[i] = await createPodRetrying(c, NS, {
        metadata: { name, annotations: { 'netpin.io/pool': POOL } },
        spec,
      } as V1Pod);
    });
    await killDone;
    await ghostWork;
    const expected = bare + deployments * PER_DEPLOYMENT;
    log(`1: bare pods done (${outcomes.filter((x) => x.pod).length} created); waiting for the Deployments' pods`);
    let seen = 0;
    const allThere = await waitFor(
      `${expected} pods`,
      async () => {
        const pods = await listPods(c, NS);
        seen = pods.length;
        return pods.length >= expected ? pods : undefined;
      },
      60_000 + size.pods * 150,
      1_000,
    ).catch(() => undefined);
    if (!allThere) log(`1: only ${seen} of ${expected} pods after ${(60 + size.pods * 0.15).toFixed(0)} s`);
    const admitted = performance.now() - t0;
    log(`1: ${allThere?.length ?? 'not all'} of ${expected} pods exist after ${s(admitted)}`);
    if (!allThere)
      r.lost.push(`only ${seen} of ${expected} pods came to exist within ${(60 + size.pods * 0.15).toFixed(0)} s`);

    // Claims of pods that were never created (ghosts, and admissions cut off by the kill) go after the grace period.
    const settled = await settledLedger(c, NS, POOL, GRACE_SECONDS * 1000 + WEBHOOK_TIMEOUT_MS + 4 * SWEEP_MS + 30_000);
    r.lost.push(...settled.lost.slice(0, 50));
    if (settled.lost.length > 50) r.lost.push(`... and ${settled.lost.length - 50} more`);
    const pods = await listPods(c, NS);
    const byName = new Map(pods.map((p) => [p.metadata!.name!, p]));
    let sameAsDirect = 0;
    for (const [name, ip] of direct) {
      const p = byName.get(name);
      if (!p) continue;
      if (calicoIps(p)[0] === ip) sameAsDirect++;
    }
    const claims = await listClaims(c, POOL);
    const ghostsLeft = ghostClaims.filter((g) => claims.some((x) => x.ip === g.ip && x.owner.uid === g.uid));
    if (ghostsLeft.length)
      r.lost.push(
        `${ghostsLeft.length} claims of pods never created were not released: ${ghostsLeft.map((g) => g.ip).join(', ')}`,
      );
    const failedBare = outcomes.filter((x) => !x.pod).length;
    if (failedBare)
      r.lost.push(
        `${failedBare} bare pods could not be created in 8 attempts: ${outcomes.find((x) => !x.pod)?.errors.at(-1)}`,
      );
    const retried = outcomes.filter((x) => x.pod && x.attempts > 1);
    const stats = env.service.stats();

    const peak = rss(replicas.list[MEASURED]!.child.pid);
    r.figures = {
      ...r.figures,
      pods: pods.length,
      'bare pods': bare,
      'Deployment pods': deployments * PER_DEPLOYMENT,
      'claims at the end': claims.length,
      'seconds until every pod existed': Number((admitted / 1000).toFixed(1)),
      'seconds until claims equalled pods': Number((settled.waitedMs / 1000).toFixed(1)),
      'claims of pods never created, released': `${ghostClaims.length - ghostsLeft.length} of ${ghostClaims.length}`,
      'bare pod creates retried (webhook unreachable or undecided)': retried.length,
      'Service connections per replica': [...stats.connections.values()].join(' / '),
      'Service connections refused or broken': stats.failed,
      'direct reviews that failed': directFailed,
      'bare pods with the address of their direct review': `${sameAsDirect} of ${direct.size}`,
      [`replica ${MEASURED + 1} idle RSS`]: mib(idle?.now),
      [`replica ${MEASURED + 1} peak RSS (VmHWM)`]: mib(peak?.peak),
    };
    if (retried.length) r.notes.push(`Last error a retried create saw: ${retried.at(-1)!.errors.at(-1)}`);
    if (cgroup) {
      const view = await cgroup.nodeView();
      r.figures['memory cgroup limit'] = mib(cgroup.limitBytes);
      r.figures['memory cgroup peak (memory.max_usage_in_bytes)'] = mib(cgroup.peakBytes());
      r.figures['memory cgroup failcnt'] = cgroup.failcnt();
      r.figures['memory cgroup OOM kills'] = cgroup.oomKills();
      r.figures['Node heap_size_limit in the cgroup'] = mib(view.heapSizeLimitBytes);
      r.figures['process.constrainedMemory() in the cgroup'] = mib(view.constrainedMemoryBytes);
      const alive =
        replicas.list[MEASURED]!.child.exitCode === null && replicas.list[MEASURED]!.child.signalCode === null;
      if (!alive)
        r.lost.push(
          `replica ${MEASURED + 1} under the memory limit died: ${replicas.list[MEASURED]!.output().slice(-500)}`,
        );
      if (cgroup.oomKills() > 0)
        r.lost.push(`the kernel OOM-killed ${cgroup.oomKills()} process(es) in the memory cgroup`);
      if (cgroup.peakBytes() >= cgroup.limitBytes)
        r.lost.push(`the cgroup reached its limit (${mib(cgroup.peakBytes())})`);
      else
        r.held.push(
          `Replica ${MEASURED + 1} stayed within the chart's ${mib(cgroup.limitBytes)}: peak RSS ${mib(peak?.peak)}, cgroup peak ${mib(cgroup.peakBytes())}, idle RSS ${mib(idle?.now)}; Node sized its heap to ${mib(view.heapSizeLimitBytes)} from the limit.`,
        );
    }
    r.held.push(
      `${pods.length} pods (${bare} bare, ${deployments} Deployments of ${PER_DEPLOYMENT}) admitted across 3 replicas, one SIGKILLed at ${r.figures['replica killed at']} and restarted.`,
      settled.lost.length === 0
        ? `No address held twice; ${claims.length} claims for ${pods.length} pods, each claim naming its pod; every pod carries its address.`
        : `${claims.length} claims for ${pods.length} pods when the wait for the ledger to settle ended (see what was lost).`,
      `${sameAsDirect} of ${direct.size} bare pods got the address a replica had answered for them just before, whichever replica admitted their creation (the others: one address still, and the earlier claim released).`,
      `${ghostClaims.length - ghostsLeft.length} of ${ghostClaims.length} claims of pods never created released after the ${GRACE_SECONDS} s grace.`,
    );
  } finally {
    await replicas.stop();
    await cgroup?.remove().catch((e: unknown) => r.notes.push(`cgroup ${cgroup!.dir} not removed: ${String(e)}`));
    // The next scenarios' pods are not slowed by these.
    await c.core.deleteNamespace({ name: NS }).catch(() => undefined);
  }
  return finish(r, started);
}

// ---------------------------------------------------------------------------------------------
// 2: StatefulSet churn

/**
 * Writes what a kubelet would into the status of the namespace's pods: Running, Ready, and the
 * address the CNI gave (netpin's Calico annotation), so that the StatefulSet controller's rolling
 * update, which waits for each new pod to be Running and Ready, moves on.
 */
function kubeletStandIn(c: Clients, namespace: string, everyMs = 250): { stop(): Promise<void>; marked(): number } {
  let stopped = false;
  let marked = 0;
  const loop = (async () => {
    const until = performance.now() + 60 * 60_000;
    while (!stopped && performance.now() < until) {
      try {
        for (const p of await listPods(c, namespace)) {
          if (p.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True')) continue;
          const ip = calicoIps(p)[0];
          const now = new Date();
          p.status = {
            phase: 'Running',
            conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }],
            ...(ip ? { podIP: ip, podIPs: [{ ip }] } : {}),
            startTime: now,
          };
          await c.core.replaceNamespacedPodStatus({ name: p.metadata!.name!, namespace, body: p }).then(
            () => marked++,
            () => undefined,
          );
        }
      } catch {
        // the next round lists again
      }
      await sleep(everyMs);
    }
  })();
  return {
    marked: () => marked,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

export async function statefulSetChurn(env: Env, size: Size): Promise<Report> {
  const started = performance.now();
  const { c, log } = env;
  const r = report('2', 'StatefulSet churn', size);
  const NS = 'churn';
  const POOL = 'churn';
  const STS = 'db';
  const REPLICAS = 5;
  await createNamespace(c, NS, { 'netpin.io/enabled': 'true' });
  const replicas = new Replicas(env, 'churn', { count: 2 });
  const kubelet = kubeletStandIn(c, NS);
  const expected = new Map<number, string>();
  let checks = 0;
  const roundSeconds: number[] = [];
  try {
    await replicas.start();
    await createPool(c, POOL, { cidr: '10.131.0.0/24' });
    await replicas.poolReady(NS, POOL);
    await c.apps.createNamespacedStatefulSet({
      namespace: NS,
      body: {
        metadata: { name: STS },
        spec: {
          replicas: REPLICAS,
          podManagementPolicy: 'Parallel',
          updateStrategy: { type: 'RollingUpdate' },
          serviceName: STS,
          selector: { matchLabels: { app: STS } },
          template: { metadata: { labels: { app: STS }, annotations: { 'netpin.io/pool': POOL } }, spec },
        },
      },
    });

    const ordinalOf = (p: V1Pod) => Number(p.metadata!.name!.slice(STS.length + 1));
    /** Waits (bounded) for exactly `n` ordinals 0..n-1, Ready, optionally all of the current revision, then checks their addresses. */
    const check = async (what: string, n: number, revision?: () => Promise<string | undefined>) => {
      let pods: V1Pod[];
      try {
        pods = await waitFor(
          `${n} pods of ${STS} (${what})`,
          async () => {
            const all = (await listPods(c, NS)).filter((p) => p.metadata!.name!.startsWith(`${STS}-`));
            if (all.length !== n || !all.every((p) => ordinalOf(p) < n)) return undefined;
            if (!all.every((p) => p.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True')))
              return undefined;
            if (revision) {
              const want = await revision();
              if (!want || !all.every((p) => p.metadata?.labels?.['controller-revision-hash'] === want))
                return undefined;
            }
            return all;
          },
          120_000,
          200,
        );
      } catch (e) {
        r.lost.push(`${what}: ${(e as Error).message}`);
        return;
      }
      checks++;
      for (const p of pods) {
        const k = ordinalOf(p);
        const ip = calicoIps(p)[0];
        if (!ip) r.lost.push(`${what}: ${p.metadata!.name} has no address`);
        else if (!expected.has(k)) expected.set(k, ip);
        else if (expected.get(k) !== ip)
          r.lost.push(`${what}: ${p.metadata!.name} got ${ip}, ordinal ${k} had ${expected.get(k)}`);
      }
      // Scale-down keeps reservations: the StatefulSet's claims stay those of ordinals 0..4, always.
      const claims = await listClaims(c, POOL);
      const got = claims.map((x) => `${x.owner.kind}/${x.owner.name}/${x.owner.ordinal}=${x.ip}`).sort();
      const want = [...expected].map(([k, ip]) => `StatefulSet/${STS}/${k}=${ip}`).sort();
      if (expected.size === REPLICAS && JSON.stringify(got) !== JSON.stringify(want))
        r.lost.push(`${what}: claims ${got.join(', ')} instead of ${want.join(', ')}`);
    };

    await check('created', REPLICAS);
    if (new Set(expected.values()).size !== REPLICAS)
      r.lost.push(`ordinals share addresses: ${[...expected.values()].join(', ')}`);
    const updateRevision = async () => {
      const sts = await c.apps.readNamespacedStatefulSet({ name: STS, namespace: NS });
      const st = sts.status;
      return st &&
        (st.observedGeneration ?? 0) >= (sts.metadata?.generation ?? 0) &&
        st.updatedReplicas === REPLICAS &&
        st.currentRevision === st.updateRevision
        ? st.updateRevision
        : undefined;
    };
    const scale = (n: number) =>
      c.apps.replaceNamespacedStatefulSetScale({
        name: STS,
        namespace: NS,
        body: { metadata: { name: STS, namespace: NS }, spec: { replicas: n } },
      });

    for (let round = 1; round <= size.churnRounds; round++) {
      const t = performance.now();
      // Deleted pods come back with their ordinal's address.
      const victims = [round % REPLICAS, (round + 2) % REPLICAS];
      const before = new Map((await listPods(c, NS)).map((p) => [p.metadata!.name!, p.metadata!.uid]));
      await Promise.all(victims.map((k) => c.core.deleteNamespacedPod({ name: `${STS}-${k}`, namespace: NS })));
      await waitFor(
        `round ${round}: deleted pods re-created`,
        async () => {
          const now = new Map((await listPods(c, NS)).map((p) => [p.metadata!.name!, p.metadata!.uid]));
          return victims.every((k) => now.has(`${STS}-${k}`) && now.get(`${STS}-${k}`) !== before.get(`${STS}-${k}`));
        },
        60_000,
        100,
      ).catch((e: Error) => r.lost.push(e.message));
      await check(`round ${round}, after deleting ${victims.map((k) => `${STS}-${k}`).join(' and ')}`, REPLICAS);
      // Scale 5 → 1 → 5 through the scale subresource, as kubectl scale and the HPA do.
      await scale(1);
      await check(`round ${round}, scaled to 1`, 1);
      await scale(REPLICAS);
      await check(`round ${round}, scaled back to ${REPLICAS}`, REPLICAS);
      // A rolling update: the controller replaces the pods one by one, from the highest ordinal.
      await c.apps.patchNamespacedStatefulSet({
        name: STS,
        namespace: NS,
        body: [{ op: 'add', path: '/spec/template/metadata/annotations/example.com~1round', value: String(round) }],
      });
      await check(`round ${round}, rolled out`, REPLICAS, updateRevision);
      roundSeconds.push((performance.now() - t) / 1000);
      if (round % 10 === 0 || round === size.churnRounds)
        log(`2: round ${round}/${size.churnRounds}, ${r.lost.length} lost`);
      if (r.lost.length > 20) {
        r.notes.push(`Stopped after round ${round}: more than 20 violations.`);
        break;
      }
    }
    roundSeconds.sort((a, b) => a - b);
    r.figures = {
      rounds: roundSeconds.length,
      'ordinals checked': checks,
      'pod status writes by the kubelet stand-in': kubelet.marked(),
      'seconds per round, median': Number((roundSeconds[Math.floor(roundSeconds.length / 2)] ?? NaN).toFixed(1)),
      'seconds per round, slowest': Number((roundSeconds.at(-1) ?? NaN).toFixed(1)),
      addresses: [...expected]
        .sort(([a], [b]) => a - b)
        .map(([k, ip]) => `${k}:${ip}`)
        .join(' '),
    };
    r.held.push(
      `${roundSeconds.length} rounds of deleting two pods, scaling ${REPLICAS} → 1 → ${REPLICAS} through the scale subresource, and a rolling update; ${checks} checks of every ordinal present.`,
      `Every ordinal kept its address in every round, and the StatefulSet's claims stayed its ${REPLICAS} ordinals' addresses throughout.`,
    );
    r.notes.push(
      "No kubelet runs: a stand-in writes each pod's status (Running, Ready, podIPs from netpin's Calico annotation), so the StatefulSet controller's rolling update proceeds as on a node. podManagementPolicy: Parallel.",
    );
  } finally {
    await kubelet.stop();
    await c.apps.deleteNamespacedStatefulSet({ name: STS, namespace: NS }).catch(() => undefined);
    await replicas.stop();
    await c.core.deleteNamespace({ name: NS }).catch(() => undefined);
  }
  return finish(r, started);
}

// ---------------------------------------------------------------------------------------------
// 3: leader failover

interface LeaseView {
  holder?: string;
  renewedAt: number;
}

async function readLease(c: Clients): Promise<LeaseView> {
  const l = (await c.custom.getNamespacedCustomObject({
    group: 'coordination.k8s.io',
    version: 'v1',
    plural: 'leases',
    namespace: LEASE.namespace,
    name: LEASE.name,
  })) as { spec?: { holderIdentity?: string; renewTime?: string } };
  return { holder: l.spec?.holderIdentity, renewedAt: l.spec?.renewTime ? new Date(l.spec.renewTime).getTime() : 0 };
}

export async function leaderFailover(env: Env, size: Size): Promise<Report> {
  const started = performance.now();
  const { c, log } = env;
  const r = report('3', 'Leader failover', size);
  const NS = 'failover';
  const POOL = 'failover';
  // The chart's default grace (30 s): the promise is a leaked claim released within 60 s as deployed.
  const GRACE = 30;
  await createNamespace(c, NS, { 'netpin.io/enabled': 'true' });
  const replicas = new Replicas(env, 'failover', { count: 3, grace: GRACE });
  const deleted: Array<{ at: number; ip: string; owner: string }> = [];
  let abortWatch: AbortController | undefined;
  let watching = true;
  const takeovers: number[] = [];
  const sinceRenewals: number[] = [];
  const releases: number[] = [];
  try {
    await replicas.start();
    await createPool(c, POOL, { cidr: '10.132.0.0/24' });
    await replicas.poolReady(NS, POOL);
    // Live pods: a Deployment's and bare ones, through the API server.
    await c.apps.createNamespacedDeployment({
      namespace: NS,
      body: {
        metadata: { name: 'live' },
        spec: {
          replicas: 10,
          selector: { matchLabels: { app: 'live' } },
          template: { metadata: { labels: { app: 'live' }, annotations: { 'netpin.io/pool': POOL } }, spec },
        },
      },
    });
    for (let i = 0; i < 10; i++) {
      const out = await createPodRetrying(c, NS, {
        metadata: { name: `live-bare-${i}`, annotations: { 'netpin.io/pool': POOL } },
        spec,
      } as V1Pod);
      if (!out.pod) r.lost.push(`live-bare-${i} could not be created: ${out.errors.at(-1)}`);
    }
    const live = await waitFor(
      '20 live pods',
      async () => {
        const pods = await listPods(c, NS);
        return pods.length === 20 ? pods : undefined;
      },
      60_000,
      500,
    );
    const liveIps = new Set(live.map((p) => calicoIps(p)[0]!));
    // Every IPClaim deleted from now on, to show that none was a live pod's.
    // A watch the API server ends is started again (bounded), from the last version seen, so that no deletion is missed.
    let resourceVersion = (
      (await c.custom.listClusterCustomObject({ group: 'netpin.io', version: 'v1alpha1', plural: 'ipclaims' })) as {
        metadata?: { resourceVersion?: string };
      }
    ).metadata?.resourceVersion;
    const watch = async (restarts: number): Promise<void> => {
      abortWatch = await new Watch(c.kc).watch(
        '/apis/netpin.io/v1alpha1/ipclaims',
        { resourceVersion },
        (
          type: string,
          obj: { metadata?: { resourceVersion?: string }; spec?: { ip: string; owner: { name?: string } } },
        ) => {
          resourceVersion = obj.metadata?.resourceVersion ?? resourceVersion;
          if (type === 'DELETED' && obj.spec)
            deleted.push({ at: performance.now(), ip: obj.spec.ip, owner: obj.spec.owner.name ?? '' });
        },
        () => {
          if (watching && restarts < 20) setTimeout(() => void watch(restarts + 1).catch(() => undefined), 200);
          else if (watching) r.lost.push('the IPClaim watch ended 20 times: deletions may have been missed');
        },
      );
    };
    await watch(0);

    for (let f = 1; f <= size.failovers; f++) {
      const identities = () => replicas.list.map((_, i) => replicas.identity(i));
      const leader = await waitFor(
        'a leader among the replicas',
        async () => {
          const l = await readLease(c);
          const i = identities().indexOf(l.holder ?? '');
          return i >= 0 ? i : undefined;
        },
        60_000,
        250,
      );
      // A claim whose pod never comes, made on a replica that survives, just before the leader dies.
      const survivor = replicas.list[(leader + 1) % 3]!;
      const ghostUid = `ghost-${f}-${Date.now()}`;
      const ghost = await allocate(survivor, podReview(NS, POOL, undefined, ghostUid));
      const leakedAt = performance.now();
      if (!ghost.ip) r.lost.push(`failover ${f}: the leaked claim could not be made: ${ghost.error}`);
      const killedIdentity = replicas.identity(leader);
      const tKill = performance.now();
      await replicas.list[leader]!.kill();
      // Read after the kill: the dead leader's last renewal, from which its Lease runs for its duration.
      const lastRenewal = (await readLease(c)).renewedAt;
      const wallAtKill = Date.now() - (performance.now() - tKill);
      const next = await waitFor(
        `failover ${f}: another replica to take the Lease`,
        async () => {
          const l = await readLease(c);
          return l.holder && l.holder !== killedIdentity && identities().includes(l.holder) ? l : undefined;
        },
        (LEASE.durationSeconds + 2 * LEASE.renewSeconds) * 1000,
        100,
      ).catch((e: Error) => {
        r.lost.push(e.message);
        return undefined;
      });
      const takeover = performance.now() - tKill;
      const sinceRenewal = takeover + (wallAtKill - lastRenewal);
      takeovers.push(takeover / 1000);
      sinceRenewals.push(sinceRenewal / 1000);
      // The margin: the new holder's read and write, and this loop's 100 ms polling.
      if (next && sinceRenewal > LEASE.durationSeconds * 1000 + 1_000)
        r.lost.push(
          `failover ${f}: the Lease was taken ${s(sinceRenewal)} after the dead leader's last renewal (${s(takeover)} after the kill), past its ${LEASE.durationSeconds} s duration`,
        );
      log(
        `3: failover ${f}: leader replica ${leader + 1} killed, replica ${identities().indexOf(next?.holder ?? '') + 1} took the Lease after ${s(takeover)}`,
      );
      // The dead replica comes back (as its Deployment would bring it), and must not take the Lease back by force.
      await sleep(1_000);
      await replicas.restart(leader);
      if (ghost.ip) {
        const ip = ghost.ip;
        // Read from the API server, by the claim's owner (the review's uid): a later leak may get the same address.
        const released = await waitFor(
          `failover ${f}: the leaked claim on ${ip} released`,
          async () =>
            (await listClaims(c, POOL)).some((x) => x.ip === ip && x.owner.uid === ghostUid)
              ? undefined
              : performance.now(),
          90_000,
          250,
        ).catch((e: Error) => {
          r.lost.push(e.message);
          return undefined;
        });
        if (released !== undefined) {
          releases.push((released - leakedAt) / 1000);
          if (released - leakedAt > 60_000)
            r.lost.push(
              `failover ${f}: the leaked claim was released ${s(released - leakedAt)} after it was made, past 60 s`,
            );
        }
      }
    }
    // Live pods: none of their claims was ever deleted, and all are still there.
    const liveDeleted = deleted.filter((d) => liveIps.has(d.ip));
    for (const d of liveDeleted) r.lost.push(`the claim of live pod ${d.owner || '(unbound)'} on ${d.ip} was released`);
    const end = checkLedger(await listPods(c, NS), await listClaims(c, POOL), { requireBound: false });
    r.lost.push(...end.lost);
    r.figures = {
      failovers: size.failovers,
      'Lease duration': `${LEASE.durationSeconds} s (renewed every ${LEASE.renewSeconds} s)`,
      'seconds from the kill to another replica holding the Lease': takeovers.map((x) => x.toFixed(1)).join(', '),
      "seconds from the dead leader's last renewal to another replica holding the Lease": sinceRenewals
        .map((x) => x.toFixed(1))
        .join(', '),
      'seconds from the leak to its release (grace 30 s)': releases.map((x) => x.toFixed(1)).join(', '),
      'live pods': live.length,
      'IPClaim deletions seen': deleted.length,
      "live pods' claims deleted": liveDeleted.length,
    };
    r.held.push(
      `${size.failovers} leader(s) SIGKILLed; another replica took the Lease ${takeovers.map((x) => `${x.toFixed(1)} s`).join(', ')} after the kill, ${sinceRenewals.map((x) => `${x.toFixed(1)} s`).join(', ')} after the dead leader's last renewal (duration ${LEASE.durationSeconds} s).`,
      `Each leaked claim was released ${releases.map((x) => `${x.toFixed(1)} s`).join(', ')} after it was made (within 60 s, grace ${GRACE} s).`,
      `Of ${deleted.length} IPClaim deletions watched, none was a live pod's; the 20 live pods' claims are all there.`,
    );
  } finally {
    watching = false;
    abortWatch?.abort();
    await replicas.stop();
    await c.core.deleteNamespace({ name: NS }).catch(() => undefined);
  }
  return finish(r, started);
}

// ---------------------------------------------------------------------------------------------
// 5: certificate rotation under load

export async function certificateRotation(env: Env, size: Size): Promise<Report> {
  const started = performance.now();
  const { c, log, pki } = env;
  const r = report('5', 'Certificate rotation under load', size);
  const NS = 'rotation';
  const POOL = 'rotation';
  await createNamespace(c, NS, { 'netpin.io/enabled': 'true' });
  // Replica 1 reads a Secret volume as kubelet writes it (a ..data symlink swapped at once); replica 2
  // plain files rewritten in place, certificate first, so that it sees a mismatched pair for a moment.
  const dirs = [path.join(env.dir, 'rotation-secret'), path.join(env.dir, 'rotation-plain')];
  await writeSecretVolume(dirs[0]!, env.serving, pki.caPem);
  await writePlainFiles(dirs[1]!, env.serving, pki.caPem);
  const replicas = new Replicas(env, 'rotation', { count: 2, certDir: (i) => dirs[i]! });
  const failures: string[] = [];
  let direct = 0;
  let fresh = 0;
  let viaApi = 0;
  const served: Array<{ replica: number; serial: string; seconds: number }> = [];
  try {
    await replicas.start();
    await createPool(c, POOL, { cidr: '10.133.0.0/16' });
    await replicas.poolReady(NS, POOL);
    const until = performance.now() + size.rotationSeconds * 1000;
    let stop = false;
    const ctx = { ca: pki.caPem };
    // Steady load: keep-alive reviews to each replica, reviews on a new TLS connection each (which see
    // the certificate a handshake gets now), and pods through the API server and the Service.
    const keepAlive = async (i: number) => {
      for (let n = 0; !stop && n < 100_000; n++) {
        const a = await allocate(
          { port: replicas.list[i]!.port, caPem: ctx.ca },
          podReview(NS, POOL, `ka-${i}-${n}`, `ka-${i}-${n}-${Date.now()}`),
        );
        direct++;
        if (!a.ip) failures.push(`keep-alive review to replica ${i + 1}: ${a.error}`);
        await sleep(20);
      }
    };
    const newConnection = async (i: number) => {
      for (let n = 0; !stop && n < 100_000; n++) {
        const a = await allocate(
          { port: replicas.list[i]!.port, caPem: ctx.ca },
          podReview(NS, POOL, `fresh-${i}-${n}`, `fresh-${i}-${n}-${Date.now()}`),
          true,
        );
        fresh++;
        if (!a.ip) failures.push(`new-connection review to replica ${i + 1}: ${a.error}`);
        await sleep(50);
      }
    };
    const throughApi = async () => {
      for (let n = 0; !stop && n < 100_000; n++) {
        try {
          await c.core.createNamespacedPod({
            namespace: NS,
            body: { metadata: { name: `api-${n}`, annotations: { 'netpin.io/pool': POOL } }, spec } as V1Pod,
          });
          viaApi++;
        } catch (e) {
          failures.push(`pod api-${n} through the API server: ${apiMessage(e).slice(0, 300)}`);
        }
        await sleep(100);
      }
    };
    const load = Promise.all([keepAlive(0), keepAlive(1), newConnection(0), newConnection(1), throughApi()]);
    try {
      const gap = (size.rotationSeconds * 1000) / (size.rotations + 1);
      for (let k = 1; k <= size.rotations && performance.now() < until; k++) {
        await sleep(Math.max(0, started + k * gap - performance.now()));
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
        log(
          `5: rotation ${k}: both replicas serve ${next.serial} (${served
            .slice(-2)
            .map((x) => `${x.seconds.toFixed(1)} s`)
            .join(', ')})`,
        );
      }
      await sleep(Math.max(0, until - performance.now()));
    } finally {
      stop = true;
      await load;
    }
    const restarted = replicas.list.filter((n) => n.child.exitCode !== null || n.child.signalCode !== null).length;
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
  } finally {
    await replicas.stop();
    await c.core.deleteNamespace({ name: NS }).catch(() => undefined);
  }
  return finish(r, started);
}

const agents = new Map<string, import('node:https').Agent>();

/**
 * One review, answered or failed within the webhook timeout (a review is never waited for longer
 * than the API server would). `fresh`: on a new TLS connection, else on a kept-alive one.
 */
async function review(
  port: number,
  ca: string,
  body: unknown,
  fresh = false,
): Promise<{ status: number; json: WireJson }> {
  const https = await import('node:https');
  let agent: import('node:https').Agent | false = false;
  if (!fresh) {
    agent = agents.get(ca) ?? new https.Agent({ keepAlive: true, maxSockets: 16, ca });
    agents.set(ca, agent);
  }
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: '/mutate',
        method: 'POST',
        ca,
        agent,
        timeout: WEBHOOK_TIMEOUT_MS,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
          ...(fresh ? { connection: 'close' } : {}),
        },
      },
      (res) => {
        let data = '';
        res
          .setEncoding('utf8')
          .on('data', (d: string) => (data += d))
          .on('end', () => {
            try {
              resolve({ status: res.statusCode ?? 0, json: JSON.parse(data) });
            } catch {
              resolve({
                status: res.statusCode ?? 0,
                json: { response: { status: { message: `not JSON: ${data.slice(0, 200)}` } } },
              });
            }
          });
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within the webhook timeout')));
    req.on('error', reject);
    req.end(payload);
  });
}

/** The address a replica's answer to a pod review gives, or why there is none; never throws. */
async function allocate(
  n: Pick<Netpin, 'port' | 'caPem'>,
  body: unknown,
  fresh = false,
): Promise<{ ip?: string; error?: string }> {
  return review(n.port, n.caPem, body, fresh).then(allocatedBy, (e: unknown) => ({
    error: e instanceof Error ? e.message : String(e),
  }));
}
