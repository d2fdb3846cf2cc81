// Scenario 2: a StatefulSet through pod deletions, scaling 5 → 1 → 5 and rolling updates keeps
// every ordinal's address, and its claims stay those of its ordinals.
import type { V1Pod } from '@kubernetes/client-node';
import { calicoIps, createNamespace, createPool, listClaims, waitFor, type Clients } from '../cluster.js';
import { sleep } from '../controlplane.js';
import { finish, report, spec, type Env, type Report, type Size } from './env.js';
import { listPods } from './ledger.js';
import { Replicas } from './replicas.js';

const NS = 'churn';
const POOL = 'churn';
const STS = 'db';
const REPLICAS = 5;

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

const ordinalOf = (p: V1Pod) => Number(p.metadata!.name!.slice(STS.length + 1));
const isReady = (p: V1Pod) => p.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True');

/** The checks of one run: each ordinal's first address, which it must keep. */
class Ordinals {
  readonly expected = new Map<number, string>();
  checks = 0;

  constructor(
    private readonly c: Clients,
    private readonly r: Report,
  ) {}

  /** Waits (bounded) for exactly `n` ordinals 0..n-1, Ready, optionally all of the current revision, then checks their addresses. */
  async check(what: string, n: number, revision?: () => Promise<string | undefined>): Promise<void> {
    let pods: V1Pod[];
    try {
      pods = await waitFor(
        `${n} pods of ${STS} (${what})`,
        async () => {
          const all = (await listPods(this.c, NS)).filter((p) => p.metadata!.name!.startsWith(`${STS}-`));
          if (all.length !== n || !all.every((p) => ordinalOf(p) < n)) return undefined;
          if (!all.every(isReady)) return undefined;
          if (revision) {
            const want = await revision();
            if (!want || !all.every((p) => p.metadata?.labels?.['controller-revision-hash'] === want)) return undefined;
          }
          return all;
        },
        120_000,
        200,
      );
    } catch (e) {
      this.r.lost.push(`${what}: ${(e as Error).message}`);
      return;
    }
    this.checks++;
    await this.checkAddresses(what, pods);
  }

  private async checkAddresses(what: string, pods: V1Pod[]): Promise<void> {
    const { expected, r } = this;
    for (const p of pods) {
      const k = ordinalOf(p);
      const ip = calicoIps(p)[0];
      if (!ip) r.lost.push(`${what}: ${p.metadata!.name} has no address`);
      else if (!expected.has(k)) expected.set(k, ip);
      else if (expected.get(k) !== ip)
        r.lost.push(`${what}: ${p.metadata!.name} got ${ip}, ordinal ${k} had ${expected.get(k)}`);
    }
    // Scale-down keeps reservations: the StatefulSet's claims stay those of ordinals 0..4, always.
    const claims = await listClaims(this.c, POOL);
    const got = claims.map((x) => `${x.owner.kind}/${x.owner.name}/${x.owner.ordinal}=${x.ip}`).sort();
    const want = [...expected].map(([k, ip]) => `StatefulSet/${STS}/${k}=${ip}`).sort();
    if (expected.size === REPLICAS && JSON.stringify(got) !== JSON.stringify(want))
      r.lost.push(`${what}: claims ${got.join(', ')} instead of ${want.join(', ')}`);
  }
}

async function createStatefulSet(c: Clients): Promise<void> {
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
}

/** The revision every replica has been updated to, once the rollout is complete. */
async function updateRevision(c: Clients): Promise<string | undefined> {
  const sts = await c.apps.readNamespacedStatefulSet({ name: STS, namespace: NS });
  const st = sts.status;
  return st &&
    (st.observedGeneration ?? 0) >= (sts.metadata?.generation ?? 0) &&
    st.updatedReplicas === REPLICAS &&
    st.currentRevision === st.updateRevision
    ? st.updateRevision
    : undefined;
}

/** Through the scale subresource, as kubectl scale and the HPA do. */
function scale(c: Clients, n: number) {
  return c.apps.replaceNamespacedStatefulSetScale({
    name: STS,
    namespace: NS,
    body: { metadata: { name: STS, namespace: NS }, spec: { replicas: n } },
  });
}

/** Deleted pods come back with their ordinal's address. */
async function deletePods(c: Clients, r: Report, ordinals: Ordinals, round: number): Promise<void> {
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
  await ordinals.check(`round ${round}, after deleting ${victims.map((k) => `${STS}-${k}`).join(' and ')}`, REPLICAS);
}

async function churnRound(c: Clients, r: Report, ordinals: Ordinals, round: number): Promise<void> {
  await deletePods(c, r, ordinals, round);
  await scale(c, 1);
  await ordinals.check(`round ${round}, scaled to 1`, 1);
  await scale(c, REPLICAS);
  await ordinals.check(`round ${round}, scaled back to ${REPLICAS}`, REPLICAS);
  // A rolling update: the controller replaces the pods one by one, from the highest ordinal.
  await c.apps.patchNamespacedStatefulSet({
    name: STS,
    namespace: NS,
    body: [{ op: 'add', path: '/spec/template/metadata/annotations/example.com~1round', value: String(round) }],
  });
  await ordinals.check(`round ${round}, rolled out`, REPLICAS, () => updateRevision(c));
}

function summarize(r: Report, ordinals: Ordinals, roundSeconds: number[], statusWrites: number): void {
  roundSeconds.sort((a, b) => a - b);
  r.figures = {
    rounds: roundSeconds.length,
    'ordinals checked': ordinals.checks,
    'pod status writes by the kubelet stand-in': statusWrites,
    'seconds per round, median': Number((roundSeconds[Math.floor(roundSeconds.length / 2)] ?? NaN).toFixed(1)),
    'seconds per round, slowest': Number((roundSeconds.at(-1) ?? NaN).toFixed(1)),
    addresses: [...ordinals.expected]
      .sort(([a], [b]) => a - b)
      .map(([k, ip]) => `${k}:${ip}`)
      .join(' '),
  };
  r.held.push(
    `${roundSeconds.length} rounds of deleting two pods, scaling ${REPLICAS} → 1 → ${REPLICAS} through the scale subresource, and a rolling update; ${ordinals.checks} checks of every ordinal present.`,
    `Every ordinal kept its address in every round, and the StatefulSet's claims stayed its ${REPLICAS} ordinals' addresses throughout.`,
  );
  r.notes.push(
    "No kubelet runs: a stand-in writes each pod's status (Running, Ready, podIPs from netpin's Calico annotation), so the StatefulSet controller's rolling update proceeds as on a node. podManagementPolicy: Parallel.",
  );
}

export async function statefulSetChurn(env: Env, size: Size): Promise<Report> {
  const started = performance.now();
  const { c, log } = env;
  const r = report('2', 'StatefulSet churn', size);
  await createNamespace(c, NS, { 'netpin.io/enabled': 'true' });
  const replicas = new Replicas(env, 'churn', { count: 2 });
  const kubelet = kubeletStandIn(c, NS);
  const ordinals = new Ordinals(c, r);
  const roundSeconds: number[] = [];
  try {
    await replicas.start();
    await createPool(c, POOL, { cidr: '10.131.0.0/24' });
    await replicas.poolReady(NS, POOL);
    await createStatefulSet(c);
    await ordinals.check('created', REPLICAS);
    if (new Set(ordinals.expected.values()).size !== REPLICAS)
      r.lost.push(`ordinals share addresses: ${[...ordinals.expected.values()].join(', ')}`);
    for (let round = 1; round <= size.churnRounds; round++) {
      const t = performance.now();
      await churnRound(c, r, ordinals, round);
      roundSeconds.push((performance.now() - t) / 1000);
      if (round % 10 === 0 || round === size.churnRounds)
        log(`2: round ${round}/${size.churnRounds}, ${r.lost.length} lost`);
      if (r.lost.length > 20) {
        r.notes.push(`Stopped after round ${round}: more than 20 violations.`);
        break;
      }
    }
    summarize(r, ordinals, roundSeconds, kubelet.marked());
  } finally {
    await kubelet.stop();
    await c.apps.deleteNamespacedStatefulSet({ name: STS, namespace: NS }).catch(() => undefined);
    await replicas.stop();
    await c.core.deleteNamespace({ name: NS }).catch(() => undefined);
  }
  return finish(r, started);
}
