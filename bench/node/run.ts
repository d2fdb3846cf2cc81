// One run of the node part: a namespace, the case's workloads in one of the three ways, and the three
// phases on them (creation, re-creation, deletion), each measured the same way.
import { readdirSync } from 'node:fs';
import type { V1PodTemplateSpec } from '@kubernetes/client-node';
import * as k from '../../harness/cluster.js';
import type * as cps from '../../harness/controlplane.js';
import type { Node } from '../../harness/node.js';
import { cpuSeconds, inParallel, machineBusySeconds } from '../proc.js';
import { apiserverWrites, writesBetween } from './apiserver.js';
import { percentile, PodWatch, type SeenPod } from './watch.js';
import { round2, type NodeCase, type NodeMode, type Phase, type PhaseResult, type PoolSize } from './types.js';

/** The namespace label that selects the webhook that only allows. */
export const ALLOW_ONLY_LABEL = 'netpin-bench/allow-only';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const IPV4 = /^\d+\.\d+\.\d+\.\d+$/;

export interface RunContext {
  cp: cps.ControlPlane;
  node: Node;
  c: k.Clients;
  /** The processes whose CPU each phase reports, by name. */
  pids: Record<string, number | undefined>;
  claimGraceSeconds: number;
  /** Set by SIGINT: every wait gives up. */
  interrupted: () => boolean;
  log: (line: string) => void;
}

/** How many pods a case makes of N, and its workloads. */
export function casePods(kase: NodeCase, n: number): number {
  return kase === 'statefulset' ? Math.floor(n / 2) : kase === 'deployments' ? Math.floor(n / 10) * 10 : n;
}

export class NodeCaseRun {
  private readonly watch: PodWatch;
  private readonly expected: number;
  private events = { sandbox: 0, refusals: 0 };

  constructor(
    private readonly x: RunContext,
    private readonly kase: NodeCase,
    private readonly mode: NodeMode,
    private readonly pool: { name: string; size: PoolSize } | undefined,
    private readonly namespace: string,
    n: number,
  ) {
    this.watch = new PodWatch(x.c, namespace);
    this.expected = casePods(kase, n);
  }

  /** Waits until `done` holds over the watched pods, checking every 100 ms; gives up after `timeoutMs` or on SIGINT. */
  private async until(what: string, timeoutMs: number, done: () => boolean): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!done()) {
      if (this.x.interrupted()) throw new Error(`interrupted while waiting for ${what}`);
      if (performance.now() > deadline)
        throw new Error(`${this.namespace}: timed out after ${timeoutMs / 1000} s waiting for ${what}`);
      await sleep(100);
    }
  }

  private template(app: string): V1PodTemplateSpec {
    return {
      metadata: {
        labels: { app },
        annotations: this.mode === 'netpin' && this.pool ? { 'netpin.io/pool': this.pool.name } : {},
      },
      spec: {
        // The smallest pod: the pause image, no token volume, no service links, a short grace.
        automountServiceAccountToken: false,
        enableServiceLinks: false,
        terminationGracePeriodSeconds: 5,
        containers: [{ name: 'pause', image: this.x.node.images.pause, imagePullPolicy: 'Never' }],
      },
    };
  }

  private async createWorkloads(): Promise<void> {
    const ns = this.namespace;
    if (this.kase === 'statefulset') {
      await this.x.c.apps.createNamespacedStatefulSet({
        namespace: ns,
        body: {
          metadata: { name: 'db' },
          spec: {
            replicas: this.expected,
            podManagementPolicy: 'Parallel',
            serviceName: 'db',
            selector: { matchLabels: { app: 'db' } },
            template: this.template('db'),
          },
        },
      });
      return;
    }
    const [count, replicas] = this.kase === 'deployment' ? [1, this.expected] : [this.expected / 10, 10];
    await inParallel(
      Array.from({ length: count }, (_, i) => `app-${i}`),
      10,
      (name) =>
        this.x.c.apps.createNamespacedDeployment({
          namespace: ns,
          body: {
            metadata: { name },
            spec: {
              replicas,
              // In every way alike: netpin refuses a rolling update's surge that an exact-size pool has no room for.
              strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } },
              selector: { matchLabels: { app: name } },
              template: this.template(name),
            },
          },
        }),
    );
  }

  private async deleteWorkloads(): Promise<void> {
    const ns = this.namespace;
    if (this.kase === 'statefulset') await this.x.c.apps.deleteNamespacedStatefulSet({ name: 'db', namespace: ns });
    else await this.x.c.apps.deleteCollectionNamespacedDeployment({ namespace: ns });
  }

  /** The event counts so far in the namespace: sandbox failures, and creations an admission webhook refused. */
  private async eventCounts(): Promise<{ sandbox: number; refusals: number }> {
    const events = (await this.x.c.core.listNamespacedEvent({ namespace: this.namespace })).items;
    const sum = (pred: (e: (typeof events)[number]) => boolean) =>
      events.filter(pred).reduce((n, e) => n + (e.count ?? 1), 0);
    return {
      sandbox: sum((e) => e.reason === 'FailedCreatePodSandBox'),
      refusals: sum((e) => e.reason === 'FailedCreate' && /admission webhook|denied the request/.test(e.message ?? '')),
    };
  }

  private cpuNow(): Record<string, number> {
    const out: Record<string, number> = { machine: machineBusySeconds() };
    for (const [name, pid] of Object.entries(this.x.pids)) out[name] = cpuSeconds(pid) ?? 0;
    return out;
  }

  /** Runs one phase between counters read before and after. */
  private async phase(
    phase: Phase,
    body: () => Promise<
      Omit<PhaseResult, 'apiWrites' | 'writesByResource' | 'sandboxFailures' | 'refusals' | 'cpu' | 'phase'>
    >,
  ): Promise<PhaseResult> {
    const writes = await apiserverWrites(this.x.cp);
    const cpu = this.cpuNow();
    const r = await body();
    const cpuAfter = this.cpuNow();
    // Events are recorded a moment after what they tell: let them land.
    await sleep(1000);
    const writesByResource = writesBetween(writes, await apiserverWrites(this.x.cp));
    const events = await this.eventCounts();
    const result: PhaseResult = {
      phase,
      ...r,
      apiWrites: Object.values(writesByResource).reduce((a, b) => a + b, 0),
      writesByResource,
      sandboxFailures: events.sandbox - this.events.sandbox,
      refusals: events.refusals - this.events.refusals,
      cpu: Object.fromEntries(Object.keys(cpu).map((kk) => [kk, round2(cpuAfter[kk]! - cpu[kk]!)])),
    };
    this.events = events;
    this.x.log(
      `node ${this.namespace} ${phase}: ${r.pods} pods in ${r.seconds} s` +
        (r.podMs ? ` (p50 ${r.podMs.p50} ms, p99 ${r.podMs.p99} ms)` : '') +
        `; writes ${result.apiWrites}; sandbox failures ${result.sandboxFailures}; refusals ${result.refusals}; duplicates ${r.duplicates}` +
        (r.ipMismatches ? `; podIP ≠ allocated ${r.ipMismatches}` : '') +
        (r.releaseSeconds !== undefined
          ? `; released ${r.releaseSeconds} s after the last pod, leaks ${r.leaks}`
          : '') +
        `; cpu ${JSON.stringify(result.cpu)}`,
    );
    return result;
  }

  /** Pods Running now among `pods`, and the figures of a phase that waited for them. */
  private running(
    pods: SeenPod[],
    t0: number,
  ): Omit<PhaseResult, 'apiWrites' | 'writesByResource' | 'sandboxFailures' | 'refusals' | 'cpu' | 'phase'> {
    const ms = pods.map((p) => p.running! - p.firstSeen);
    const last = Math.max(...pods.map((p) => p.running!));
    return {
      pods: pods.length,
      seconds: round2((last - t0) / 1000),
      podMs: {
        p50: Math.round(percentile(ms, 0.5)),
        p99: Math.round(percentile(ms, 0.99)),
        max: Math.round(Math.max(...ms)),
      },
      duplicates: this.watch.duplicates(),
      ...(this.mode === 'netpin'
        ? { ipMismatches: pods.filter((p) => !p.allocated || p.ip !== p.allocated).length }
        : {}),
    };
  }

  private timeoutMs(): number {
    return Math.max(180_000, this.expected * 1500);
  }

  /** Addresses still held: the run's IPClaims (netpin), or host-local's reservations (the other ways). */
  private async held(): Promise<number> {
    if (this.mode === 'netpin') return (await k.listClaims(this.x.c, this.pool!.name)).length;
    try {
      return readdirSync(this.x.node.hostLocalDir).filter((f) => IPV4.test(f)).length;
    } catch {
      return 0;
    }
  }

  async run(): Promise<PhaseResult[]> {
    const labels: Record<string, string> =
      this.mode === 'netpin'
        ? { 'netpin.io/enabled': 'true' }
        : this.mode === 'webhook'
          ? { [ALLOW_ONLY_LABEL]: 'true' }
          : {};
    await k.createNamespace(this.x.c, this.namespace, labels);
    // The ServiceAccount admission plugin refuses pods until the namespace's default ServiceAccount exists.
    await k.waitFor(`${this.namespace}'s default ServiceAccount`, async () =>
      this.x.c.core.readNamespacedServiceAccount({ name: 'default', namespace: this.namespace }).then(() => true),
    );
    await this.watch.start();
    try {
      const phases: PhaseResult[] = [];
      phases.push(
        await this.phase('creation', async () => {
          const t0 = performance.now();
          await this.createWorkloads();
          const ok = () => this.watch.live().filter((p) => !p.terminating && p.running !== undefined);
          await this.until(`${this.expected} pods Running`, this.timeoutMs(), () => ok().length >= this.expected);
          return this.running(ok(), t0);
        }),
      );
      phases.push(
        await this.phase('recreation', async () => {
          const old = new Set(this.watch.pods.keys());
          const t0 = performance.now();
          await this.x.c.core.deleteCollectionNamespacedPod({ namespace: this.namespace });
          const fresh = () =>
            [...this.watch.pods.entries()]
              .filter(([uid, p]) => !old.has(uid) && p.gone === undefined && !p.terminating && p.running !== undefined)
              .map(([, p]) => p);
          await this.until(
            `${this.expected} new pods Running`,
            this.timeoutMs(),
            () => fresh().length >= this.expected,
          );
          const r = this.running(fresh(), t0);
          // The old pods go before the next phase starts, outside the clock.
          await this.until('the old pods gone', this.timeoutMs(), () =>
            [...old].every((uid) => this.watch.pods.get(uid)?.gone !== undefined),
          );
          return r;
        }),
      );
      phases.push(
        await this.phase('deletion', async () => {
          const pods = this.watch.live().length;
          const t0 = performance.now();
          await this.deleteWorkloads();
          await this.until('every pod gone', this.timeoutMs(), () => this.watch.live().length === 0);
          const last = Math.max(...[...this.watch.pods.values()].map((p) => p.gone!));
          // Released once nothing holds an address; a leak is what is left after the grace period and a margin.
          const deadline = last + (this.x.claimGraceSeconds + 45) * 1000;
          let held = await this.held();
          while (held > 0 && performance.now() < deadline && !this.x.interrupted()) {
            await sleep(200);
            held = await this.held();
          }
          return {
            pods,
            seconds: round2((last - t0) / 1000),
            duplicates: 0,
            releaseSeconds: round2(Math.max(0, performance.now() - last) / 1000),
            leaks: held,
          };
        }),
      );
      return phases;
    } finally {
      this.watch.stop();
      await this.x.c.core.deleteNamespace({ name: this.namespace }).catch(() => undefined);
    }
  }
}
