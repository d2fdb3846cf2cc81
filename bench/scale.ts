// Part 4: netpin against a large ledger in a real API server. IPClaims and pinned pods are created
// straight through the API (netpin is not in the path), in the form netpin leaves them: pods with
// its annotations and label, claims naming them as owners, and StatefulSet reservations. Measured,
// against that ledger and against an empty one, each with a netpin started afresh: the time from
// its start to ready, its memory, the latency of allocating reviews posted to it, and the
// reconciler's sweep.
import type { IPv4 } from 'ipaddr.js';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VersionApi } from '@kubernetes/client-node';
import { dialectFor } from '../src/cni/index.js';
import { toObject } from '../src/cluster/kube-ledger.js';
import type { Owner } from '../src/ipam/claim.js';
import { GROUP, VERSION } from '../src/cluster/kube.js';
import { ALLOCATED_KEY, KEYS, PINNED_LABEL } from '../src/intent/keys.js';
import { parseIntent } from '../src/intent/parse.js';
import { formatDual, fromBigInt, parseAddress, toBigInt, type Address } from '../src/net/address.js';
import * as k from '../harness/cluster.js';
import * as cps from '../harness/controlplane.js';
import * as np from '../harness/netpin.js';
import { clientFromKubeconfig, kube, type Client } from '../harness/rest.js';
import { runLoad, summarize, type Latency } from './load.js';
import {
  chartMemoryCgroups,
  httpsText,
  inParallel,
  killCgroup,
  memoryCgroup,
  metricSum,
  mib,
  peakRss,
  residentBytes,
  type MemoryLimit,
} from './proc.js';
import { profilePreloadEnv, readProfile, stackRuns, type StackRun } from './profile.js';
import { replicaSetPod, reviewBody } from './review.js';

export interface ScaleOptions {
  root: string;
  /** IPClaims in the loaded ledger: one per pinned pod, the rest StatefulSet reservations. */
  claims: number;
  pods: number;
  /** Allocating reviews posted to netpin in each phase, after a second of warm-up. */
  requests: number;
  connections: number;
  /** API requests in flight while the ledger is filled. */
  fillConcurrency: number;
  log: (line: string) => void;
}

export type ScaleLedger = 'empty' | 'loaded';

export interface ScalePhase {
  ledger: ScaleLedger;
  claims: number;
  pods: number;
  /** From netpin's spawn until its /readyz answers 200 (the ledger's lists are in and its watches started). */
  readySeconds: number;
  /** VmRSS once ready, VmRSS after the reviews, VmHWM at the end. */
  rssReadyBytes?: number;
  rssAfterLoadBytes?: number;
  peakRssBytes?: number;
  requests: number;
  rps: number;
  latencyMs: Latency;
  /** IPClaim creates posted straight to the API server after the reviews, as many and as concurrent: what each review waits on. */
  apiserverCreateMs: Latency;
  /** Each reconciler round seen in the profiled window, every claim past its grace period and none to release. */
  sweeps: StackRun[];
}

export interface ScaleReport {
  kubernetes: string;
  memory: MemoryLimit;
  pools: number;
  namespaces: number;
  statefulSets: number;
  fill: { objects: number; seconds: number; concurrency: number };
  sweepWindowSeconds: number;
  phases: ScalePhase[];
}

const NAMESPACE_PREFIX = 'scale';
const POOL_PREFIX = 'scale';
const PODS_PER_NAMESPACE = 200;
const ORDINALS_PER_STATEFULSET = 100;
/** Claims per /16 pool, about 40 % of it: room for the reviews, and firstFree works past a long held stretch. */
const CLAIMS_PER_POOL = 25_000;
// Reviews' claims have no pod: released this long after they are made, which is after their phase ends.
const CLAIM_GRACE_SECONDS = 30;
// The reconciler runs every 5 s (kube-backend.ts): three runs or more.
const SWEEP_WINDOW_MS = 16_000;
const LEASE = '/apis/coordination.k8s.io/v1/namespaces/default/leases/netpin-reconciler';
const CLAIMS_PATH = `/apis/${GROUP}/${VERSION}/ipclaims`;
// The round's own functions: the reconciler's one-second IPPool status refresh is left out.
const SWEEP = {
  label: 'reconciler round',
  file: 'dist/src/cluster/reconciler.js',
  functions: ['round', 'sweep', 'staleClaims', 'bind'],
};
const POD_SHAPE = { kind: 'Pod', replicas: 1, statefulSet: false } as const;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Where every object goes: claim j is in pool j mod P at offset j div P + 1, pod j holds claim j. */
class Layout {
  readonly pools: number;
  readonly namespaces: number;
  readonly statefulSets: number;
  private readonly base = toBigInt(parseAddress('10.64.0.0')!);

  constructor(
    readonly claims: number,
    readonly pods: number,
  ) {
    if (pods > claims)
      throw new Error(`--scale-pods ${pods} is more than --scale-claims ${claims}: each pinned pod holds one claim`);
    this.pools = Math.max(1, Math.ceil(claims / CLAIMS_PER_POOL));
    this.namespaces = Math.max(1, Math.ceil(pods / PODS_PER_NAMESPACE));
    this.statefulSets = Math.ceil((claims - pods) / ORDINALS_PER_STATEFULSET);
  }

  pool(i: number): string {
    return `${POOL_PREFIX}-${i}`;
  }

  cidr(i: number): string {
    return `${fromBigInt(this.base + (BigInt(i) << 16n), 'ipv4').toString()}/16`;
  }

  namespace(i: number): string {
    return `${NAMESPACE_PREFIX}-${i % this.namespaces}`;
  }

  claim(j: number): { pool: string; ip: Address } {
    const p = j % this.pools;
    return {
      pool: this.pool(p),
      ip: fromBigInt(this.base + (BigInt(p) << 16n) + BigInt(Math.floor(j / this.pools) + 1), 'ipv4'),
    };
  }
}

const calico = dialectFor('calico');

/** The small benchmark pod, named, as netpin's mutating webhook leaves it when it pins `ip` from `pool`. */
function pinnedPod(name: string, namespace: string, pool: string, ip: IPv4): Record<string, unknown> {
  const intent = { [KEYS.pool]: pool };
  const pod = replicaSetPod(intent, namespace) as {
    metadata: { generateName: string; labels: Record<string, string> };
    spec: unknown;
  };
  const { generateName: _, ...metadata } = pod.metadata;
  const addresses = { ipv4: ip };
  const rendering = calico.render(parseIntent(intent).intent, POD_SHAPE, { pools: [], addresses });
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...metadata,
      name,
      annotations: { ...intent, ...rendering.annotations, [ALLOCATED_KEY]: formatDual(addresses) },
      labels: { ...metadata.labels, ...rendering.labels, [PINNED_LABEL]: 'true' },
    },
    spec: pod.spec,
  };
}

interface Named {
  metadata?: { name?: string };
}

/** A POST that survives a slow API server: retried on no answer, 429 and 5xx; a create that landed on an earlier try is read back. */
async function create<T extends Named>(rest: Client, path: string, body: T): Promise<{ metadata: { uid: string } }> {
  const name = body.metadata?.name ?? '';
  for (let attempt = 1; ; attempt++) {
    const r = await kube(rest, 'POST', path, body).catch((e: unknown) => ({ status: 0, json: String(e) }));
    if (r.status === 201) return r.json;
    if (r.status === 409 && attempt > 1) return (await kube(rest, 'GET', `${path}/${name}`)).json;
    const retry = r.status === 0 || r.status === 429 || r.status >= 500;
    if (!retry || attempt === 5) {
      throw new Error(
        `POST ${path} ${name}: ${r.status ? `HTTP ${r.status}` : 'no answer'}: ${JSON.stringify(r.json).slice(0, 300)}`,
      );
    }
    await sleep(250 * attempt);
  }
}

/** Creates the pinned pods with their claims, the StatefulSets (no replicas) and their reservations; returns the objects made. */
async function fillLedger(
  rest: Client,
  layout: Layout,
  concurrency: number,
  log: (line: string) => void,
): Promise<number> {
  const podTemplate = replicaSetPod({}).spec;
  let made = 0;
  const progress = () => {
    if (++made % 5_000 === 0) log(`scale: ${made} objects created`);
  };
  const statefulSets = Array.from({ length: layout.statefulSets }, (_, s) => ({
    name: `db-${s}`,
    namespace: layout.namespace(s),
  }));
  await inParallel(statefulSets, concurrency, async ({ name, namespace }) => {
    await create(rest, `/apis/apps/v1/namespaces/${namespace}/statefulsets`, {
      metadata: { name },
      spec: {
        replicas: 0,
        serviceName: name,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name }, annotations: { [KEYS.pool]: layout.pool(0) } },
          spec: podTemplate,
        },
      },
    });
    progress();
  });
  await inParallel(
    Array.from({ length: layout.claims }, (_, j) => j),
    concurrency,
    async (j) => {
      const { pool, ip } = layout.claim(j);
      let owner: Owner;
      if (j < layout.pods) {
        // The pod first: its claim names it by uid, as netpin's reconciler binds a claim once its pod shows the address.
        const namespace = layout.namespace(j);
        const name = `web-5d8f7c9b4-${j.toString(36).padStart(5, '0')}`;
        const pod = await create(
          rest,
          `/api/v1/namespaces/${namespace}/pods`,
          pinnedPod(name, namespace, pool, ip as IPv4),
        );
        progress();
        owner = { kind: 'Pod', namespace, name, uid: pod.metadata.uid };
      } else {
        const r = j - layout.pods;
        const sts = statefulSets[Math.floor(r / ORDINALS_PER_STATEFULSET)]!;
        owner = {
          kind: 'StatefulSet',
          namespace: sts.namespace,
          name: sts.name,
          ordinal: r % ORDINALS_PER_STATEFULSET,
        };
      }
      const claim = toObject({ pool, ip, owner, createdAt: Date.now() });
      await create(rest, CLAIMS_PATH, claim);
      progress();
    },
  );
  return made;
}

// A pool no IPPool names, far from the scale pools: the API server's own creates, apart from netpin's.
const PROBE_POOL = 'scale-probe';
const PROBE_BASE = toBigInt(parseAddress('10.250.0.0')!);

/**
 * The API server's latency for what an allocating review waits on, one IPClaim create, posted straight to
 * it at the reviews' concurrency while netpin watches: the floor under the reviews' latency at this size
 * of ledger. The probe claims are deleted afterwards.
 */
async function apiserverCreates(rest: Client, count: number, concurrency: number): Promise<Latency> {
  const latencies = new Float64Array(count);
  let next = 0;
  const loop = async () => {
    for (let j = next++; j < count; j = next++) {
      const ip = fromBigInt(PROBE_BASE + BigInt(j + 1), 'ipv4');
      const owner: Owner = { kind: 'StatefulSet', namespace: PROBE_POOL, name: PROBE_POOL, ordinal: j };
      const t = performance.now();
      const r = await kube(rest, 'POST', CLAIMS_PATH, toObject({ pool: PROBE_POOL, ip, owner, createdAt: Date.now() }));
      latencies[j] = performance.now() - t;
      if (r.status !== 201)
        throw new Error(`probe IPClaim create: HTTP ${r.status}: ${JSON.stringify(r.json).slice(0, 300)}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  const gone = await kube(
    rest,
    'DELETE',
    `${CLAIMS_PATH}?labelSelector=${encodeURIComponent(`netpin.io/pool=${PROBE_POOL}`)}`,
  );
  if (gone.status !== 200) throw new Error(`deleting the probe IPClaims: HTTP ${gone.status}`);
  return summarize(latencies);
}

/** Runs one netpin against the ledger as it stands, and measures it. `claimsOldAt`: when every claim is past the grace period. */
async function measure(
  o: ScaleOptions,
  cp: cps.ControlPlane,
  rest: Client,
  memory: MemoryLimit,
  ledger: ScaleLedger,
  layout: Layout,
  claimsOldAt: number,
): Promise<ScalePhase> {
  const dir = mkdtempSync(join(tmpdir(), 'netpin-bench-scale-'));
  const profile = join(dir, 'netpin.cpuprofile');
  const cgroup = memoryCgroup(memory);
  const t0 = performance.now();
  const netpin = await np
    .startNetpin({
      kubeconfig: cp.kubeconfigPath,
      claimGraceSeconds: CLAIM_GRACE_SECONDS,
      launcher: cgroup?.launcher,
      env: profilePreloadEnv(o.root, profile),
    })
    .catch(async (e: unknown) => {
      // startNetpin gives no handle on a child that never said it serves: it is the one process in the cgroup.
      if (cgroup) await killCgroup(cgroup);
      rmSync(dir, { recursive: true, force: true });
      throw e;
    });
  try {
    const pid = netpin.child.pid!;
    await k.waitFor(
      'netpin ready',
      async () => (await httpsText(netpin.url, '/readyz', netpin.caPem)).status === 200,
      120_000,
      50,
    );
    const readySeconds = (performance.now() - t0) / 1000;
    const rssReadyBytes = residentBytes(pid);
    o.log(`scale ${ledger}: netpin ready in ${readySeconds.toFixed(2)} s, RSS ${mib(rssReadyBytes)}`);

    // The reconciler runs on the lease holder only; then every claim is to be judged, none young.
    await k.waitFor(
      'netpin to hold the reconciler lease',
      async () =>
        ((await kube(rest, 'GET', LEASE)).json?.spec?.holderIdentity as string | undefined)?.endsWith(`-${pid}`),
      60_000,
      200,
    );
    await sleep(Math.max(0, claimsOldAt - performance.now()));
    netpin.child.kill('SIGUSR2');
    await sleep(SWEEP_WINDOW_MS);
    netpin.child.kill('SIGUSR2');
    await k.waitFor('the profile to be written', async () => existsSync(profile), 30_000, 100);
    const sweeps = stackRuns(readProfile(profile), o.root, SWEEP);
    const seen = sweeps.map((x) => `${x.busyMs.toFixed(1)}/${x.wallMs.toFixed(1)}`).join(', ') || 'none seen';
    o.log(`scale ${ledger}: reconciler rounds over ${SWEEP_WINDOW_MS / 1000} s, busy/wall ms: ${seen}`);

    const review = reviewBody(replicaSetPod({ [KEYS.pool]: layout.pool(0) }, layout.namespace(0)));
    const r = await runLoad({
      origin: netpin.url,
      path: '/mutate',
      ca: netpin.caPem,
      connections: o.connections,
      warmupMs: 1000,
      durationMs: 600_000,
      maxRequests: o.requests,
      body: review,
    });
    if (cgroup && cgroup.oomKills() > 0)
      throw new Error(`scale ${ledger}: netpin OOM-killed under its ${mib(cgroup.limitBytes)} limit`);
    const answer = (JSON.parse(r.sample || '{}') as { response?: { patch?: string } }).response;
    const patch = Buffer.from(answer?.patch ?? '', 'base64').toString('utf8');
    if (r.errors > 0 || !patch.includes('cni.projectcalico.org~1ipAddrs')) {
      const tail = netpin.output().slice(-1500);
      throw new Error(`scale ${ledger}: ${r.errors} failed reviews; first answer ${r.sample.slice(0, 500)}\n${tail}`);
    }
    const { text: metrics } = await httpsText(netpin.url, '/metrics', netpin.caPem);
    const created = metricSum(metrics, 'netpin_claim_writes_total', { op: 'create', outcome: 'ok' });
    if (created !== r.sent)
      throw new Error(`scale ${ledger}: netpin created ${created} IPClaims for ${r.sent} allocating reviews`);
    const rssAfterLoadBytes = residentBytes(pid);
    const apiserverCreateMs = await apiserverCreates(rest, o.requests, o.connections);
    const phase: ScalePhase = {
      ledger,
      claims: ledger === 'empty' ? 0 : layout.claims,
      pods: ledger === 'empty' ? 0 : layout.pods,
      readySeconds,
      rssReadyBytes,
      rssAfterLoadBytes,
      peakRssBytes: peakRss(pid),
      requests: r.requests,
      rps: r.rps,
      latencyMs: r.latencyMs,
      apiserverCreateMs,
      sweeps,
    };
    o.log(
      `scale ${ledger}: ${r.requests} reviews at ${r.rps.toFixed(0)} req/s, ` +
        `p50 ${r.latencyMs.p50.toFixed(2)} ms, p99 ${r.latencyMs.p99.toFixed(2)} ms; ` +
        `API server's own creates p50 ${apiserverCreateMs.p50.toFixed(2)} ms, p99 ${apiserverCreateMs.p99.toFixed(2)} ms; ` +
        `RSS ${mib(phase.rssAfterLoadBytes)}, peak ${mib(phase.peakRssBytes)}`,
    );
    return phase;
  } finally {
    await netpin.stop();
    await cgroup?.remove();
    rmSync(dir, { recursive: true, force: true });
    rmSync(netpin.certDir, { recursive: true, force: true });
  }
}

export async function benchScale(o: ScaleOptions): Promise<ScaleReport> {
  const layout = new Layout(o.claims, o.pods);
  const cp = await cps.startControlPlane({
    // No pod here has a live owner, and nothing needs a controller: the garbage collector would delete the pods.
    controllers: ['namespace-controller'],
    // The fill keeps fillConcurrency writes in flight beside netpin's lists and watches.
    apiserverArgs: ['--max-requests-inflight=800', '--max-mutating-requests-inflight=400'],
  });
  try {
    const c = k.clients(cp.kubeconfigPath);
    const rest = clientFromKubeconfig(cp.kubeconfigPath);
    await k.applyCrds(c);
    for (let i = 0; i < layout.pools; i++) await k.createPool(c, layout.pool(i), { cidr: layout.cidr(i) });
    for (let i = 0; i < layout.namespaces; i++)
      await k.createNamespace(c, layout.namespace(i), { 'netpin.io/enabled': 'true' });
    const memory = await chartMemoryCgroups(o.root);
    if (memory.notApplied) o.log(`scale: netpin runs without the chart's memory limit: ${memory.notApplied}`);

    const empty = await measure(o, cp, rest, memory, 'empty', layout, 0);
    // The empty phase's claims go, so that the loaded ledger holds exactly what the fill makes.
    const gone = await kube(rest, 'DELETE', CLAIMS_PATH);
    if (gone.status !== 200) throw new Error(`deleting the empty phase's IPClaims: HTTP ${gone.status}`);

    const t0 = performance.now();
    o.log(
      `scale: creating ${layout.pods} pinned pods, ${layout.claims} IPClaims and ${layout.statefulSets} StatefulSets, ` +
        `${o.fillConcurrency} at a time`,
    );
    const objects = await fillLedger(rest, layout, o.fillConcurrency, o.log);
    const filled = performance.now();
    o.log(`scale: ${objects} objects in ${((filled - t0) / 1000).toFixed(1)} s`);
    const loaded = await measure(o, cp, rest, memory, 'loaded', layout, filled + CLAIM_GRACE_SECONDS * 1000);

    return {
      kubernetes: (await c.kc.makeApiClient(VersionApi).getCode()).gitVersion,
      memory,
      pools: layout.pools,
      namespaces: layout.namespaces,
      statefulSets: layout.statefulSets,
      fill: { objects, seconds: Math.round((filled - t0) / 100) / 10, concurrency: o.fillConcurrency },
      sweepWindowSeconds: SWEEP_WINDOW_MS / 1000,
      phases: [empty, loaded],
    };
  } finally {
    await cp.stop();
  }
}
