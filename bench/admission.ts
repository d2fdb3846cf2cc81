// Part 1: admission throughput and latency of `netpin serve --ledger memory` against a bare
// fastify handler with the same stack, at 1, 16 and 64 keep-alive connections and two review
// sizes; and the servers' memory, each in a memory cgroup with the chart's limit.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Admission } from '../src/admission/handler.js';
import { dialectFor } from '../src/cni/index.js';
import { StaticClusterView } from '../src/cluster/view.js';
import { parsePools } from '../src/config/pools-file.js';
import { Allocator } from '../src/ipam/allocator.js';
import { MemoryLedger } from '../src/ipam/memory-ledger.js';
import { ensureCerts } from '../src/transport/certs.js';
import { runLoad, summarize, type Latency, type LoadResult } from './load.js';
import { summarizeProfileDir, type ProfileSummary } from './profile.js';
import {
  chartMemoryCgroups,
  cpuSeconds,
  httpsText,
  memoryCgroup,
  metricSum,
  mib,
  peakRss,
  residentBytes,
  splitCores,
  type MemoryLimit,
} from './proc.js';
import { startChild, type Child } from '../harness/process.js';
import { deploymentPod, POOL, POOLS_YAML, replicaSetPod, reviewBody } from './review.js';

export type ServerCase = 'bare' | 'rate' | 'alloc';

export const CASES: Record<ServerCase, { title: string; annotations: Record<string, string> }> = {
  bare: {
    title: 'bare fastify (ceiling)',
    annotations: { 'netpin.io/egress-rate': '10M', 'netpin.io/ingress-rate': '10M' },
  },
  rate: {
    title: 'netpin, rate only',
    annotations: { 'netpin.io/egress-rate': '10M', 'netpin.io/ingress-rate': '10M' },
  },
  alloc: { title: 'netpin, allocating', annotations: { 'netpin.io/pool': POOL } },
};

export type ReviewSize = 'small' | 'large';

export const SIZES: Record<
  ReviewSize,
  { title: string; pod: (annotations: Record<string, string>) => Record<string, unknown> }
> = {
  small: { title: 'one container', pod: replicaSetPod },
  large: { title: 'init container, sidecar, env, probes', pod: deploymentPod },
};

export interface AdmissionOptions {
  root: string;
  connections: number[];
  warmupMs: number;
  durationMs: number;
  /** Each round runs every server once per size; odd rounds in reverse order, so that drift hits all alike. */
  rounds: number;
  /** Length of the profiled runs; 0 for none. */
  profileMs: number;
  log: (line: string) => void;
}

export interface AdmissionRow {
  size: ReviewSize;
  case: ServerCase;
  connections: number;
  rps: number;
  latencyMs: Latency;
  requests: number;
  errors: number;
  /** Largest VmHWM of the server over the rounds (a fresh process each run). */
  peakRssBytes: number | undefined;
  /** Server CPU time per request, and the share of one core the server used: below ~95 %, the load generator was the limit. */
  cpuUsPerRequest: number;
  serverCpuPercent: number;
  /** Server CPU seconds over the measured windows of every round, for ratios pooled over connection counts. */
  cpuSeconds: number;
  /** Against the bare handler at the same size and connection count, in the same run. */
  rpsRatio: number;
  p50Ratio: number;
  p99Ratio: number;
  /** Each round's figures, to show the spread. */
  rounds: Array<{ rps: number; p50: number; p99: number }>;
}

/** netpin's own work per review, in the runner's process: no HTTP, no TLS, no other process. */
export interface InProcessRow {
  size: ReviewSize;
  case: Exclude<ServerCase, 'bare'>;
  /** `Admission.review` of an already parsed review, median over the repeats. */
  reviewUs: number;
  /** `JSON.parse` of the same body, the largest part of what every server does per request. */
  parseUs: number;
}

export interface AdmissionReport {
  /** Bytes of the rate-only review of each size (the allocating one differs by its annotation). */
  bodyBytes: Record<ReviewSize, number>;
  rows: AdmissionRow[];
  inProcess: InProcessRow[];
  /** The cores the load generator and the servers ran on. */
  cores: { runner?: number; server?: number; notApplied?: string };
  /** The cgroup every server ran in, and the resident memory of each server idle (started, no request yet). */
  memory: { limit: MemoryLimit; idleSeconds: number; idleRssBytes: Partial<Record<ServerCase, number>> };
  profiles: Array<{
    size: ReviewSize;
    case: ServerCase;
    connections: number;
    seconds: number;
    summary: ProfileSummary;
  }>;
}

type Run = LoadResult & { peakRss?: number; cpuSeconds: number };

interface Server {
  proc: Child;
  origin: string;
}

// Long enough for start-up work (module loading, the first GCs) to settle, as in a pod that waits for traffic.
const IDLE_MS = 3_000;

async function startServer(
  o: AdmissionOptions,
  c: ServerCase,
  certDir: string,
  poolsFile: string,
  launcher?: string[],
  profileDir?: string,
): Promise<Server> {
  const nodeFlags = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  if (c === 'bare') {
    const args = [...nodeFlags, join(o.root, 'dist/bench/bare-server.js'), '--cert-dir', certDir];
    const { proc, match } = await startChild('bare-server', args, /bare serving (https:\/\/\S+)/, { launcher });
    return { proc, origin: match[1]! };
  }
  // The real binary, as an operator runs it.
  const { proc, match } = await startChild(
    'netpin',
    [
      ...nodeFlags,
      join(o.root, 'dist/src/cli/main.js'),
      'serve',
      '--cni',
      'calico',
      '--ledger',
      'memory',
      '--pools',
      poolsFile,
      '--listen',
      '127.0.0.1:0',
      '--cert-dir',
      certDir,
      '--log-level',
      'warn',
    ],
    /netpin serving (https:\/\/\S+)/,
    { launcher },
  );
  return { proc, origin: match[1]! };
}

const IN_PROCESS_REVIEWS = 20_000;
const IN_PROCESS_REPEATS = 5;

/**
 * What netpin's admission costs on its own: `Admission.review` (the same code `netpin serve` runs, on a
 * memory ledger) over reviews parsed beforehand, each with a fresh uid, against parsing those bodies.
 * Stable where the HTTPS figures drift, it bounds the ratio netpin can reach against the bare handler,
 * whose per-request work is what is left.
 */
async function inProcess(size: ReviewSize, c: InProcessRow['case']): Promise<InProcessRow> {
  const pools = parsePools(POOLS_YAML);
  const cluster = new StaticClusterView();
  for (const [name, labels] of pools.namespaces) cluster.setNamespace(name, labels);
  const admission = new Admission({
    dialect: dialectFor('calico'),
    allocator: new Allocator(new MemoryLedger(pools.pools)),
    cluster,
    releaseOnDelete: true,
  });
  const body = reviewBody(SIZES[size].pod(CASES[c].annotations));
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  let seq = 0;
  const reviewUs: number[] = [];
  const parseUs: number[] = [];
  // The first repeat warms the JIT and is not counted.
  for (let r = 0; r <= IN_PROCESS_REPEATS; r++) {
    const texts = Array.from({ length: IN_PROCESS_REVIEWS }, () => body(seq++));
    // Parsed one at a time, so that each review dies young as it does in a server.
    let parsed = 0;
    let reviewed = 0;
    for (const text of texts) {
      const t0 = performance.now();
      const review = JSON.parse(text) as unknown;
      const t1 = performance.now();
      await admission.review('mutate', review);
      parsed += t1 - t0;
      reviewed += performance.now() - t1;
    }
    if (r > 0) {
      parseUs.push((1000 * parsed) / IN_PROCESS_REVIEWS);
      reviewUs.push((1000 * reviewed) / IN_PROCESS_REVIEWS);
    }
  }
  return { size, case: c, reviewUs: median(reviewUs), parseUs: median(parseUs) };
}

/** Throws unless the first answer is what this case must answer: the load would otherwise measure errors. */
function checkSample(c: ServerCase, sample: string): void {
  const res = (JSON.parse(sample) as { response?: { allowed?: boolean; patch?: string } }).response;
  if (!res?.allowed) throw new Error(`${c}: the review was not allowed: ${sample.slice(0, 500)}`);
  if (c === 'bare') return;
  const patch = Buffer.from(res.patch ?? '', 'base64').toString('utf8');
  const want = c === 'rate' ? 'kubernetes.io~1egress-bandwidth' : 'cni.projectcalico.org~1ipAddrs';
  if (!patch.includes(want)) throw new Error(`${c}: the patch lacks ${want}: ${patch}`);
}

/** netpin's own count of held addresses: every allocating request must have claimed one. */
async function allocatedByNetpin(origin: string, ca: string): Promise<number> {
  const { text } = await httpsText(origin, '/metrics', ca);
  const held = metricSum(text, 'netpin_pool_allocated_addresses', { pool: POOL, family: 'ipv4' });
  if (held === undefined) throw new Error(`no allocated gauge for pool ${POOL} in /metrics`);
  return held;
}

export async function benchAdmission(o: AdmissionOptions): Promise<AdmissionReport> {
  const tmp = mkdtempSync(join(tmpdir(), 'netpin-bench-admission-'));
  const split = splitCores();
  try {
    const certDir = join(tmp, 'certs');
    const { paths } = await ensureCerts(certDir, ['localhost', '127.0.0.1']);
    const ca = readFileSync(paths.ca, 'utf8');
    const poolsFile = join(tmp, 'pools.yaml');
    writeFileSync(poolsFile, POOLS_YAML);
    const sizes = Object.keys(SIZES) as ReviewSize[];
    const cases = Object.keys(CASES) as ServerCase[];
    const bodies = new Map(
      sizes.flatMap((size) => cases.map((c) => [`${size}/${c}`, reviewBody(SIZES[size].pod(CASES[c].annotations))])),
    );
    const body = (size: ReviewSize, c: ServerCase) => bodies.get(`${size}/${c}`)!;
    // Every server in a memory cgroup of its own with the chart's limit, so that Node sizes its heap as in the
    // container: this costs nothing measurable per run, and then every figure is taken as netpin is deployed.
    const limit = await chartMemoryCgroups(o.root);
    if (limit.notApplied) o.log(`admission: servers run without the chart's memory limit: ${limit.notApplied}`);
    if (split.notApplied) o.log(`admission: servers and load generator share the cores: ${split.notApplied}`);

    // At one connection the load generator and the server take turns and never compete for a core: there
    // they share both, since apart every request waits for the other core to wake (the bare handler's p99
    // at one connection was 3.3–4.2 ms apart, 0.9 ms together).
    const placed = (connections: number) => (connections > 1 ? split.apart() : split.together());
    const withServer = async <T>(
      c: ServerCase,
      connections: number,
      fn: (server: Server) => Promise<T>,
      profileDir?: string,
    ): Promise<T> => {
      const cgroup = memoryCgroup(limit);
      try {
        const launcher = [...placed(connections), ...(cgroup?.launcher ?? [])];
        const server = await startServer(o, c, certDir, poolsFile, launcher, profileDir);
        try {
          return await fn(server);
        } finally {
          await server.proc.stop();
        }
      } finally {
        await cgroup?.remove();
      }
    };

    type RunOne = (
      size: ReviewSize,
      c: ServerCase,
      connections: number,
      warmupMs: number,
      durationMs: number,
      profileDir?: string,
    ) => Promise<Run>;
    const runOne: RunOne = (size, c, connections, warmupMs, durationMs, profileDir) =>
      withServer(
        c,
        connections,
        async (server) => {
          // The server's CPU time over the measured window (timers in this process: a few ms late at worst).
          const pid = server.proc.child.pid;
          let cpuFrom = 0;
          let cpuTo = 0;
          const t1 = setTimeout(() => (cpuFrom = cpuSeconds(pid) ?? 0), warmupMs);
          const t2 = setTimeout(() => (cpuTo = cpuSeconds(pid) ?? 0), warmupMs + durationMs);
          const r = await runLoad({
            origin: server.origin,
            path: '/mutate',
            ca,
            connections,
            warmupMs,
            durationMs,
            body: body(size, c),
          });
          clearTimeout(t1);
          clearTimeout(t2);
          checkSample(c, r.sample);
          if (r.errors > 0)
            throw new Error(`${c} at ${connections} connections: ${r.errors} failed requests\n${server.proc.output()}`);
          if (c === 'alloc') {
            const held = await allocatedByNetpin(server.origin, ca);
            if (held !== r.sent)
              throw new Error(`alloc: netpin holds ${held} addresses after ${r.sent} allocating requests`);
          }
          return { ...r, peakRss: peakRss(pid), cpuSeconds: cpuTo - cpuFrom };
        },
        profileDir,
      );

    const inProcessRows: InProcessRow[] = [];
    for (const size of sizes) {
      for (const c of ['rate', 'alloc'] as const) {
        inProcessRows.push(await inProcess(size, c));
        const x = inProcessRows.at(-1)!;
        o.log(
          `admission in-process ${size} ${c}: review ${x.reviewUs.toFixed(1)} µs, JSON.parse ${x.parseUs.toFixed(1)} µs`,
        );
      }
    }

    // Idle: started, then left alone; the rate-only and allocating servers are the same process until a request comes.
    const idleRssBytes: AdmissionReport['memory']['idleRssBytes'] = {};
    for (const c of ['bare', 'rate'] as const) {
      idleRssBytes[c] = await withServer(c, 16, async (server) => {
        await new Promise((r) => setTimeout(r, IDLE_MS));
        return residentBytes(server.proc.child.pid);
      });
    }
    o.log(`admission idle RSS: bare ${mib(idleRssBytes.bare)}, netpin ${mib(idleRssBytes.rate)}`);

    const combos = sizes.flatMap((size) => cases.map((c) => ({ size, c })));
    const raw = new Map<string, Run[]>();
    for (const connections of o.connections) {
      for (let round = 0; round < o.rounds; round++) {
        for (const { size, c } of round % 2 === 0 ? combos : [...combos].reverse()) {
          const r = await runOne(size, c, connections, o.warmupMs, o.durationMs);
          o.log(
            `admission ${size} ${c.padEnd(5)} c=${String(connections).padStart(2)} round ${round + 1}: ${r.rps.toFixed(0)} req/s, ` +
              `p50 ${r.latencyMs.p50.toFixed(3)} ms, p99 ${r.latencyMs.p99.toFixed(3)} ms, ` +
              `server CPU ${((100 * r.cpuSeconds) / r.seconds).toFixed(0)} %, peak RSS ${mib(r.peakRss)}`,
          );
          const key = `${size}/${c}/${connections}`;
          raw.set(key, [...(raw.get(key) ?? []), r]);
        }
      }
    }

    const rows: AdmissionRow[] = [];
    for (const size of sizes) {
      for (const connections of o.connections) {
        const merged = (c: ServerCase) => {
          const runs = raw.get(`${size}/${c}/${connections}`)!;
          const all = new Float64Array(runs.reduce((n, r) => n + r.samples.length, 0));
          let at = 0;
          for (const r of runs) {
            all.set(r.samples, at);
            at += r.samples.length;
          }
          const requests = runs.reduce((n, r) => n + r.requests, 0);
          const seconds = runs.reduce((n, r) => n + r.seconds, 0);
          const cpu = runs.reduce((n, r) => n + r.cpuSeconds, 0);
          return {
            rps: requests / seconds,
            cpuUsPerRequest: (1e6 * cpu) / requests,
            serverCpuPercent: (100 * cpu) / seconds,
            cpuSeconds: cpu,
            latencyMs: summarize(all),
            requests,
            errors: runs.reduce((n, r) => n + r.errors, 0),
            peakRssBytes: runs.map((r) => r.peakRss ?? 0).reduce((a, b) => Math.max(a, b), 0) || undefined,
            rounds: runs.map((r) => ({ rps: r.rps, p50: r.latencyMs.p50, p99: r.latencyMs.p99 })),
          };
        };
        const bare = merged('bare');
        for (const c of cases) {
          const m = c === 'bare' ? bare : merged(c);
          rows.push({
            size,
            case: c,
            connections,
            ...m,
            rpsRatio: m.rps / bare.rps,
            p50Ratio: m.latencyMs.p50 / bare.latencyMs.p50,
            p99Ratio: m.latencyMs.p99 / bare.latencyMs.p99,
          });
        }
      }
    }

    // Profiles apart from the measured runs: the profiler's sampling costs throughput of its own.
    const profiles: AdmissionReport['profiles'] = [];
    if (o.profileMs > 0) {
      const connections = 16;
      for (const { size, c } of combos) {
        const dir = join(tmp, `profile-${size}-${c}`);
        mkdirSync(dir);
        await runOne(size, c, connections, o.warmupMs, o.profileMs, dir);
        profiles.push({
          size,
          case: c,
          connections,
          seconds: o.profileMs / 1000,
          summary: summarizeProfileDir(dir, o.root),
        });
        const top = profiles
          .at(-1)!
          .summary.topFunctions.slice(0, 3)
          .map((f) => `${f.name} ${f.percent}%`);
        o.log(`admission profile ${size} ${c}: ${top.join(', ')}`);
      }
    }

    const bodyBytes = Object.fromEntries(sizes.map((size) => [size, Buffer.byteLength(body(size, 'rate')(0))]));
    const memory = { limit, idleSeconds: IDLE_MS / 1000, idleRssBytes };
    const cores = { runner: split.runnerCore, server: split.serverCore, notApplied: split.notApplied };
    return {
      bodyBytes: bodyBytes as Record<ReviewSize, number>,
      rows,
      inProcess: inProcessRows,
      cores,
      memory,
      profiles,
    };
  } finally {
    split.together();
    rmSync(tmp, { recursive: true, force: true });
  }
}
