// Part 1: admission throughput and latency of `netpin serve --ledger memory` against a bare
// fastify handler with the same stack, at 1, 16 and 64 keep-alive connections.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { ensureCerts } from '../src/transport/certs.js';
import { runLoad, summarize, type Latency, type LoadResult } from './load.js';
import { summarizeProfileDir, type ProfileSummary } from './profile.js';
import { cpuSeconds, peakRss, startChild, type Child } from './proc.js';
import { POOL, POOLS_YAML, reviewBody } from './review.js';

export type ServerCase = 'bare' | 'rate' | 'alloc';

export const CASES: Record<ServerCase, { title: string; annotations: Record<string, string> }> = {
  bare: { title: 'bare fastify (ceiling)', annotations: { 'netpin.io/egress-rate': '10M' } },
  rate: { title: 'netpin, rate only', annotations: { 'netpin.io/egress-rate': '10M' } },
  alloc: { title: 'netpin, allocating', annotations: { 'netpin.io/pool': POOL } },
};

export interface AdmissionOptions {
  root: string;
  connections: number[];
  warmupMs: number;
  durationMs: number;
  /** Each round runs every server once; odd rounds in reverse order, so that drift hits all alike. */
  rounds: number;
  /** Length of the profiled runs; 0 for none. */
  profileMs: number;
  log: (line: string) => void;
}

export interface AdmissionRow {
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
  /** Against the bare handler at the same connection count, in the same run. */
  rpsRatio: number;
  p50Ratio: number;
  p99Ratio: number;
  /** Each round's figures, to show the spread. */
  rounds: Array<{ rps: number; p50: number; p99: number }>;
}

export interface AdmissionReport {
  bodyBytes: Record<ServerCase, number>;
  rows: AdmissionRow[];
  profiles: Array<{ case: ServerCase; connections: number; seconds: number; summary: ProfileSummary }>;
}

type Run = LoadResult & { peakRss?: number; cpuSeconds: number };

interface Server {
  proc: Child;
  origin: string;
}

async function startServer(o: AdmissionOptions, c: ServerCase, certDir: string, poolsFile: string, profileDir?: string): Promise<Server> {
  const nodeFlags = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  if (c === 'bare') {
    const { proc, match } = await startChild('bare-server', [...nodeFlags, join(o.root, 'dist/bench/bare-server.js'), '--cert-dir', certDir], /bare serving (https:\/\/\S+)/);
    return { proc, origin: match[1]! };
  }
  // The real binary, as an operator runs it.
  const { proc, match } = await startChild('netpin', [
    ...nodeFlags, join(o.root, 'dist/src/cli/main.js'), 'serve', '--cni', 'calico', '--ledger', 'memory', '--pools', poolsFile,
    '--listen', '127.0.0.1:0', '--cert-dir', certDir, '--log-level', 'warn',
  ], /netpin serving (https:\/\/\S+)/);
  return { proc, origin: match[1]! };
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
  const agent = new Agent({ connect: { ca } });
  try {
    const { body } = await request(`${origin}/metrics`, { dispatcher: agent });
    const text = await body.text();
    const m = new RegExp(`^netpin_pool_allocated_addresses\\{pool="${POOL}",family="ipv4"\\} (\\d+)$`, 'm').exec(text);
    if (!m) throw new Error(`no allocated gauge for pool ${POOL} in /metrics`);
    return Number(m[1]);
  } finally {
    await agent.close();
  }
}

export async function benchAdmission(o: AdmissionOptions): Promise<AdmissionReport> {
  const tmp = mkdtempSync(join(tmpdir(), 'netpin-bench-admission-'));
  try {
    const certDir = join(tmp, 'certs');
    const { paths } = await ensureCerts(certDir, ['localhost', '127.0.0.1']);
    const ca = readFileSync(paths.ca, 'utf8');
    const poolsFile = join(tmp, 'pools.yaml');
    writeFileSync(poolsFile, POOLS_YAML);
    const bodies = Object.fromEntries((Object.keys(CASES) as ServerCase[]).map((c) => [c, reviewBody(CASES[c].annotations)])) as Record<ServerCase, (seq: number) => string>;

    const runOne = async (c: ServerCase, connections: number, warmupMs: number, durationMs: number, profileDir?: string): Promise<Run> => {
      const server = await startServer(o, c, certDir, poolsFile, profileDir);
      try {
        // The server's CPU time over the measured window (timers in this process: a few ms late at worst).
        const pid = server.proc.child.pid;
        let cpuFrom = 0;
        let cpuTo = 0;
        const t1 = setTimeout(() => (cpuFrom = cpuSeconds(pid) ?? 0), warmupMs);
        const t2 = setTimeout(() => (cpuTo = cpuSeconds(pid) ?? 0), warmupMs + durationMs);
        const r = await runLoad({ origin: server.origin, path: '/mutate', ca, connections, warmupMs, durationMs, body: bodies[c] });
        clearTimeout(t1);
        clearTimeout(t2);
        checkSample(c, r.sample);
        if (r.errors > 0) throw new Error(`${c} at ${connections} connections: ${r.errors} failed requests\n${server.proc.output()}`);
        if (c === 'alloc') {
          const held = await allocatedByNetpin(server.origin, ca);
          if (held !== r.sent) throw new Error(`alloc: netpin holds ${held} addresses after ${r.sent} allocating requests`);
        }
        return { ...r, peakRss: peakRss(pid), cpuSeconds: cpuTo - cpuFrom };
      } finally {
        await server.proc.stop();
      }
    };

    const raw = new Map<string, Run[]>();
    for (const connections of o.connections) {
      for (let round = 0; round < o.rounds; round++) {
        const order: ServerCase[] = round % 2 === 0 ? ['bare', 'rate', 'alloc'] : ['alloc', 'rate', 'bare'];
        for (const c of order) {
          const r = await runOne(c, connections, o.warmupMs, o.durationMs);
          o.log(`admission ${c.padEnd(5)} c=${String(connections).padStart(2)} round ${round + 1}: ${r.rps.toFixed(0)} req/s, p50 ${r.latencyMs.p50.toFixed(3)} ms, p99 ${r.latencyMs.p99.toFixed(3)} ms, server CPU ${((100 * r.cpuSeconds) / r.seconds).toFixed(0)} %`);
          const key = `${c}/${connections}`;
          raw.set(key, [...(raw.get(key) ?? []), r]);
        }
      }
    }

    const rows: AdmissionRow[] = [];
    for (const connections of o.connections) {
      const merged = (c: ServerCase) => {
        const runs = raw.get(`${c}/${connections}`)!;
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
          latencyMs: summarize(all),
          requests,
          errors: runs.reduce((n, r) => n + r.errors, 0),
          peakRssBytes: runs.map((r) => r.peakRss ?? 0).reduce((a, b) => Math.max(a, b), 0) || undefined,
          rounds: runs.map((r) => ({ rps: r.rps, p50: r.latencyMs.p50, p99: r.latencyMs.p99 })),
        };
      };
      const bare = merged('bare');
      for (const c of ['bare', 'rate', 'alloc'] as ServerCase[]) {
        const m = c === 'bare' ? bare : merged(c);
        rows.push({
          case: c,
          connections,
          ...m,
          rpsRatio: m.rps / bare.rps,
          p50Ratio: m.latencyMs.p50 / bare.latencyMs.p50,
          p99Ratio: m.latencyMs.p99 / bare.latencyMs.p99,
        });
      }
    }

    // Profiles apart from the measured runs: the profiler's sampling costs throughput of its own.
    const profiles: AdmissionReport['profiles'] = [];
    if (o.profileMs > 0) {
      const connections = 16;
      for (const c of ['bare', 'rate', 'alloc'] as ServerCase[]) {
        const dir = join(tmp, `profile-${c}`);
        mkdirSync(dir);
        await runOne(c, connections, 1000, o.profileMs, dir);
        profiles.push({ case: c, connections, seconds: o.profileMs / 1000, summary: summarizeProfileDir(dir, o.root) });
        o.log(`admission profile ${c}: ${profiles.at(-1)!.summary.topFunctions.slice(0, 3).map((f) => `${f.name} ${f.percent}%`).join(', ')}`);
      }
    }

    const bodyBytes = Object.fromEntries((Object.keys(CASES) as ServerCase[]).map((c) => [c, Buffer.byteLength(bodies[c](0))])) as Record<ServerCase, number>;
    return { bodyBytes, rows, profiles };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
