// Scenarios 1 and 7: three replicas admitting pods through the API server and straight, one of
// them killed mid-run and restarted, and the leader under the chart's memory limit.
import type { V1Pod } from '@kubernetes/client-node';
import { calicoIps, createNamespace, createPool, listClaims, waitFor, type ClaimView } from '../cluster.js';
import { sleep } from '../controlplane.js';
import { createMemoryCgroup, rss, type MemoryCgroup } from '../memory.js';
import {
  CHART_MEMORY_LIMIT,
  finish,
  GRACE_SECONDS,
  mib,
  report,
  s,
  spec,
  SWEEP_MS,
  WEBHOOK_TIMEOUT_MS,
  type Env,
  type Report,
  type Size,
} from './env.js';
import { createPodRetrying, forEachLimited, listPods, settledLedger, type CreateOutcome } from './ledger.js';
import { Replicas } from './replicas.js';
import { allocate, podReview } from './reviews.js';

export interface ReplicasOptions {
  /** Run replica 3 in a memory cgroup with the chart's limit (scenario 7); when impossible, say why and run it without. */
  memoryLimit?: boolean;
}

const NS = 'replicas';
const POOL = 'replicas';
const PER_DEPLOYMENT = 20;
// The replica measured for scenario 7: never killed, and the leader, which also reconciles, so
// that its peak covers the whole run and the most work.
const MEASURED = 2;
const KILLED = 0;

/** One run of the scenario: its size, its replicas, and what the load left for the checks. */
interface Run {
  env: Env;
  r: Report;
  size: Size;
  replicas: Replicas;
  deployments: number;
  bare: number;
  ghosts: number;
  t0: number;
  outcomes: CreateOutcome[];
  /** bare pod -> the address a replica answered for it straight, before its creation */
  direct: Map<string, string>;
  directFailed: number;
  /** A released ghost's address may go to a later pod: a ghost is held while a claim has its address and its uid. */
  ghostClaims: { ip: string; uid: string }[];
}

function memoryCgroup(r: Report, o: ReplicasOptions): MemoryCgroup | undefined {
  if (!o.memoryLimit) return undefined;
  const made = createMemoryCgroup(CHART_MEMORY_LIMIT);
  if (typeof made !== 'string') return made;
  r.notes.push(`Memory limit not applied: ${made}.`);
  return undefined;
}

/** Deployments created all at once: their pods come from the ReplicaSet controller. */
async function createDeployments(run: Run): Promise<void> {
  await forEachLimited(
    Array.from({ length: run.deployments }, (_, i) => i),
    8,
    async (_, d) => {
      await run.env.c.apps.createNamespacedDeployment({
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
}

/** Claims whose pod never comes, posted straight to each replica, spread over the run. */
function postGhosts(run: Run): Promise<void> {
  return forEachLimited(
    Array.from({ length: run.ghosts }, (_, i) => i),
    2,
    async (i) => {
      await sleep((i * 20_000 * run.size.pods) / 2000 / run.ghosts);
      const target = run.replicas.list[(i + 1) % 3]!;
      const uid = `ghost-${i}-${Date.now()}`;
      const a = await allocate(target, podReview(NS, POOL, undefined, uid));
      if (a.ip) run.ghostClaims.push({ ip: a.ip, uid });
    },
  );
}

async function killAndRestart(run: Run): Promise<void> {
  const tk = performance.now();
  await run.replicas.kill(KILLED);
  await sleep(2_000);
  await run.replicas.restart(KILLED);
  run.env.log(`1: replica ${KILLED + 1} SIGKILLed after ${s(tk - run.t0)}, back in ${s(performance.now() - tk)}`);
  run.r.figures['replica killed at'] = s(tk - run.t0);
  run.r.figures['replica back after'] = s(performance.now() - tk);
}

/**
 * Bare pods by a client 16 at a time, one replica killed 40 % of the way. Each is first reviewed
 * straight on one replica, then created through the API server, where another replica may admit
 * it: it must get the same address (same name, same owner), or, if that replica has not seen the
 * claim yet, one address still, the first claim released.
 */
async function createBarePods(run: Run): Promise<void> {
  const names = Array.from({ length: run.bare }, (_, i) => `bare-${i}`);
  const killAt = Math.floor(run.bare * 0.4);
  let killDone: Promise<void> | undefined;
  await forEachLimited(names, 16, async (name, i) => {
    if (i === killAt) killDone ??= killAndRestart(run);
    const a = await allocate(run.replicas.list[i % 3]!, podReview(NS, POOL, name, `direct-${name}`));
    if (a.ip) run.direct.set(name, a.ip);
    else run.directFailed++;
    run.outcomes[i] = await createPodRetrying(run.env.c, NS, {
      metadata: { name, annotations: { 'netpin.io/pool': POOL } },
      spec,
    } as V1Pod);
  });
  await killDone;
}

/** Waits (bounded) until every pod exists; the milliseconds since the first create. */
async function awaitAllPods(run: Run): Promise<number> {
  const { env, r, size } = run;
  const expected = run.bare + run.deployments * PER_DEPLOYMENT;
  env.log(`1: bare pods done (${run.outcomes.filter((x) => x.pod).length} created); waiting for the Deployments' pods`);
  let seen = 0;
  const allThere = await waitFor(
    `${expected} pods`,
    async () => {
      const pods = await listPods(env.c, NS);
      seen = pods.length;
      return pods.length >= expected ? pods : undefined;
    },
    60_000 + size.pods * 150,
    1_000,
  ).catch(() => undefined);
  if (!allThere) env.log(`1: only ${seen} of ${expected} pods after ${(60 + size.pods * 0.15).toFixed(0)} s`);
  const admitted = performance.now() - run.t0;
  env.log(`1: ${allThere?.length ?? 'not all'} of ${expected} pods exist after ${s(admitted)}`);
  if (!allThere)
    r.lost.push(`only ${seen} of ${expected} pods came to exist within ${(60 + size.pods * 0.15).toFixed(0)} s`);
  return admitted;
}

function sameAsDirect(run: Run, pods: V1Pod[]): number {
  const byName = new Map(pods.map((p) => [p.metadata!.name!, p]));
  let same = 0;
  for (const [name, ip] of run.direct) {
    const p = byName.get(name);
    if (p && calicoIps(p)[0] === ip) same++;
  }
  return same;
}

/** What the checks found, for the figures and the report's lines. */
interface Found {
  pods: V1Pod[];
  claims: ClaimView[];
  settled: Awaited<ReturnType<typeof settledLedger>>;
  sameAsDirect: number;
  ghostsLeft: { ip: string; uid: string }[];
  retried: CreateOutcome[];
}

/** The ledger once settled, the ghosts released, every bare pod created. */
async function check(run: Run): Promise<Found> {
  const { env, r } = run;
  // Claims of pods that were never created (ghosts, and admissions cut off by the kill) go after the grace period.
  const settled = await settledLedger(
    env.c,
    NS,
    POOL,
    GRACE_SECONDS * 1000 + WEBHOOK_TIMEOUT_MS + 4 * SWEEP_MS + 30_000,
  );
  r.lost.push(...settled.lost.slice(0, 50));
  if (settled.lost.length > 50) r.lost.push(`... and ${settled.lost.length - 50} more`);
  const pods = await listPods(env.c, NS);
  const claims = await listClaims(env.c, POOL);
  const ghostsLeft = run.ghostClaims.filter((g) => claims.some((x) => x.ip === g.ip && x.owner.uid === g.uid));
  if (ghostsLeft.length)
    r.lost.push(
      `${ghostsLeft.length} claims of pods never created were not released: ${ghostsLeft.map((g) => g.ip).join(', ')}`,
    );
  const failedBare = run.outcomes.filter((x) => !x.pod).length;
  if (failedBare)
    r.lost.push(
      `${failedBare} bare pods could not be created in 8 attempts: ${run.outcomes.find((x) => !x.pod)?.errors.at(-1)}`,
    );
  const retried = run.outcomes.filter((x) => x.pod && x.attempts > 1);
  if (retried.length) r.notes.push(`Last error a retried create saw: ${retried.at(-1)!.errors.at(-1)}`);
  return { pods, claims, settled, sameAsDirect: sameAsDirect(run, pods), ghostsLeft, retried };
}

function figures(run: Run, f: Found, admitted: number, idle: number | undefined, peak: number | undefined): void {
  const stats = run.env.service.stats();
  run.r.figures = {
    ...run.r.figures,
    pods: f.pods.length,
    'bare pods': run.bare,
    'Deployment pods': run.deployments * PER_DEPLOYMENT,
    'claims at the end': f.claims.length,
    'seconds until every pod existed': Number((admitted / 1000).toFixed(1)),
    'seconds until claims equalled pods': Number((f.settled.waitedMs / 1000).toFixed(1)),
    'claims of pods never created, released': `${run.ghostClaims.length - f.ghostsLeft.length} of ${run.ghostClaims.length}`,
    'bare pod creates retried (webhook unreachable or undecided)': f.retried.length,
    'Service connections per replica': [...stats.connections.values()].join(' / '),
    'Service connections refused or broken': stats.failed,
    'direct reviews that failed': run.directFailed,
    'bare pods with the address of their direct review': `${f.sameAsDirect} of ${run.direct.size}`,
    [`replica ${MEASURED + 1} idle RSS`]: mib(idle),
    [`replica ${MEASURED + 1} peak RSS (VmHWM)`]: mib(peak),
  };
}

/** Scenario 7: the measured replica alive, never OOM-killed, within the chart's limit. */
async function checkMemory(run: Run, cgroup: MemoryCgroup, idle: number | undefined, peak: number | undefined) {
  const { r } = run;
  const view = await cgroup.nodeView();
  r.figures['memory cgroup limit'] = mib(cgroup.limitBytes);
  r.figures['memory cgroup peak (memory.max_usage_in_bytes)'] = mib(cgroup.peakBytes());
  r.figures['memory cgroup failcnt'] = cgroup.failcnt();
  r.figures['memory cgroup OOM kills'] = cgroup.oomKills();
  r.figures['Node heap_size_limit in the cgroup'] = mib(view.heapSizeLimitBytes);
  r.figures['process.constrainedMemory() in the cgroup'] = mib(view.constrainedMemoryBytes);
  const measured = run.replicas.list[MEASURED]!;
  const alive = measured.child.exitCode === null && measured.child.signalCode === null;
  if (!alive) r.lost.push(`replica ${MEASURED + 1} under the memory limit died: ${measured.output().slice(-500)}`);
  if (cgroup.oomKills() > 0) r.lost.push(`the kernel OOM-killed ${cgroup.oomKills()} process(es) in the memory cgroup`);
  if (cgroup.peakBytes() >= cgroup.limitBytes) r.lost.push(`the cgroup reached its limit (${mib(cgroup.peakBytes())})`);
  else
    r.held.push(
      `Replica ${MEASURED + 1} stayed within the chart's ${mib(cgroup.limitBytes)}: peak RSS ${mib(peak)}, cgroup peak ${mib(cgroup.peakBytes())}, idle RSS ${mib(idle)}; Node sized its heap to ${mib(view.heapSizeLimitBytes)} from the limit.`,
    );
}

function held(run: Run, f: Found): void {
  const { pods, claims, settled } = f;
  run.r.held.push(
    `${pods.length} pods (${run.bare} bare, ${run.deployments} Deployments of ${PER_DEPLOYMENT}) admitted across 3 replicas, one SIGKILLed at ${run.r.figures['replica killed at']} and restarted.`,
    settled.lost.length === 0
      ? `No address held twice; ${claims.length} claims for ${pods.length} pods, each claim naming its pod; every pod carries its address.`
      : `${claims.length} claims for ${pods.length} pods when the wait for the ledger to settle ended (see what was lost).`,
    `${f.sameAsDirect} of ${run.direct.size} bare pods got the address a replica had answered for them just before, whichever replica admitted their creation (the others: one address still, and the earlier claim released).`,
    `${run.ghostClaims.length - f.ghostsLeft.length} of ${run.ghostClaims.length} claims of pods never created released after the ${GRACE_SECONDS} s grace.`,
  );
}

export async function replicasKilled(env: Env, size: Size, o: ReplicasOptions = {}): Promise<Report> {
  const started = performance.now();
  const r = report('1', 'Replicas killed mid-run', size);
  await createNamespace(env.c, NS, { 'netpin.io/enabled': 'true' });
  const deployments = Math.max(1, Math.round(size.pods / 2 / PER_DEPLOYMENT));
  const cgroup = memoryCgroup(r, o);
  const replicas = new Replicas(env, 'replicas', {
    count: 3,
    launcher: (i) => (i === MEASURED ? cgroup?.launcher : undefined),
  });
  const run: Run = {
    env,
    r,
    size,
    replicas,
    deployments,
    bare: size.pods - deployments * PER_DEPLOYMENT,
    ghosts: Math.max(3, Math.round(size.pods / 50)),
    t0: 0,
    outcomes: [],
    direct: new Map(),
    directFailed: 0,
    ghostClaims: [],
  };
  try {
    await replicas.start(MEASURED);
    // IPPools are admitted by netpin too: created once a replica answers.
    await createPool(env.c, POOL, { cidr: '10.130.0.0/20' });
    await replicas.poolReady(NS, POOL);
    await sleep(2_000);
    const idle = rss(replicas.list[MEASURED]!.child.pid)?.now;
    env.log(
      `1: 3 replicas up; replica ${MEASURED + 1} idle RSS ${mib(idle)}${cgroup ? ` in a ${mib(CHART_MEMORY_LIMIT)} memory cgroup` : ''}`,
    );
    run.t0 = performance.now();
    await createDeployments(run);
    const ghostWork = postGhosts(run);
    await createBarePods(run);
    await ghostWork;
    const admitted = await awaitAllPods(run);
    const found = await check(run);
    const peak = rss(replicas.list[MEASURED]!.child.pid)?.peak;
    figures(run, found, admitted, idle, peak);
    if (cgroup) await checkMemory(run, cgroup, idle, peak);
    held(run, found);
  } finally {
    await replicas.stop();
    await cgroup?.remove().catch((e: unknown) => r.notes.push(`cgroup ${cgroup.dir} not removed: ${String(e)}`));
    // The next scenarios' pods are not slowed by these.
    await env.c.core.deleteNamespace({ name: NS }).catch(() => undefined);
  }
  return finish(r, started);
}
