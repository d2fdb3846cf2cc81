// One phase of the scale part: a netpin started afresh against the ledger as it stands, measured as
// named steps: until ready, the reconciler's rounds, allocating reviews, and the API server's floor.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toObject } from '../../src/cluster/kube-ledger.js';
import type { Owner } from '../../src/ipam/claim.js';
import { KEYS } from '../../src/intent/keys.js';
import { fromBigInt, parseAddress, toBigInt } from '../../src/net/address.js';
import * as k from '../../harness/cluster.js';
import type * as cps from '../../harness/controlplane.js';
import type { MemoryCgroup } from '../../harness/memory.js';
import * as np from '../../harness/netpin.js';
import { kube, type Client } from '../../harness/rest.js';
import { runLoad, summarize, type Latency, type LoadResult } from '../load.js';
import {
  httpsText,
  killCgroup,
  memoryCgroup,
  metricSum,
  mib,
  peakRss,
  residentBytes,
  type MemoryLimit,
} from '../proc.js';
import { profilePreloadEnv, readProfile, stackRuns, type StackRun } from '../profile.js';
import { replicaSetPod, reviewBody } from '../review.js';
import { CLAIMS_PATH, type Layout } from './fill.js';
import type { ScaleLedger, ScaleOptions, ScalePhase } from './types.js';

// Reviews' claims have no pod: released this long after they are made, which is after their phase ends.
export const CLAIM_GRACE_SECONDS = 30;
// The reconciler runs every 5 s (kube-backend.ts): three runs or more.
export const SWEEP_WINDOW_MS = 16_000;
const LEASE = '/apis/coordination.k8s.io/v1/namespaces/default/leases/netpin-reconciler';
// The round's own functions: the reconciler's one-second IPPool status refresh is left out.
const SWEEP = {
  label: 'reconciler round',
  file: 'dist/src/cluster/reconciler.js',
  functions: ['round', 'sweep', 'staleClaims', 'bind'],
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

/** A netpin in its memory cgroup, with the profiler preloaded (started by SIGUSR2). */
async function startNetpin(
  o: ScaleOptions,
  cp: cps.ControlPlane,
  cgroup: MemoryCgroup | undefined,
  dir: string,
  profile: string,
): Promise<np.Netpin> {
  return np
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
}

/** The reconciler's rounds in a profiled window, once netpin holds the Lease and every claim is past its grace. */
async function sweepRounds(
  o: ScaleOptions,
  rest: Client,
  netpin: np.Netpin,
  ledger: ScaleLedger,
  claimsOldAt: number,
  profile: string,
): Promise<StackRun[]> {
  const pid = netpin.child.pid!;
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
  return sweeps;
}

/** Allocating reviews posted to netpin; each must have pinned an address and made one IPClaim. */
async function reviews(
  o: ScaleOptions,
  netpin: np.Netpin,
  cgroup: MemoryCgroup | undefined,
  ledger: ScaleLedger,
  layout: Layout,
): Promise<LoadResult> {
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
  return r;
}

/** Runs one netpin against the ledger as it stands, and measures it. `claimsOldAt`: when every claim is past the grace period. */
export async function measure(
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
  const netpin = await startNetpin(o, cp, cgroup, dir, profile);
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
    const sweeps = await sweepRounds(o, rest, netpin, ledger, claimsOldAt, profile);
    const r = await reviews(o, netpin, cgroup, ledger, layout);
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
