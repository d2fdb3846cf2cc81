// Part 1: admission throughput and latency of `netpin serve --ledger memory` against a bare
// fastify handler with the same stack, at 1, 16 and 64 keep-alive connections and two review
// sizes; and the servers' memory, each in a memory cgroup with the chart's limit.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureCerts } from '../src/transport/certs.js';
import { summarizeProfileDir } from './profile.js';
import { chartMemoryCgroups, mib, splitCores } from './proc.js';
import { POOLS_YAML, reviewBody } from './review.js';
import { inProcess } from './admission/in-process.js';
import { toRows } from './admission/rows.js';
import { IDLE_MS, Servers, type Run } from './admission/servers.js';
import {
  CASES,
  SIZES,
  type AdmissionOptions,
  type AdmissionReport,
  type InProcessRow,
  type ReviewSize,
  type ServerCase,
} from './admission/types.js';

export { CASES, SIZES } from './admission/types.js';
export type { AdmissionReport, AdmissionRow, ReviewSize, ServerCase } from './admission/types.js';

const sizes = Object.keys(SIZES) as ReviewSize[];
const cases = Object.keys(CASES) as ServerCase[];
const combos = sizes.flatMap((size) => cases.map((c) => ({ size, c })));

/** A request body per size and case, each with a fresh uid from its sequence number. */
function bodies(): (size: ReviewSize, c: ServerCase) => (seq: number) => string {
  const byKey = new Map(
    combos.map(({ size, c }) => [`${size}/${c}`, reviewBody(SIZES[size].pod(CASES[c].annotations))]),
  );
  return (size, c) => byKey.get(`${size}/${c}`)!;
}

async function inProcessRows(o: AdmissionOptions): Promise<InProcessRow[]> {
  const rows: InProcessRow[] = [];
  for (const size of sizes) {
    for (const c of ['rate', 'alloc'] as const) {
      const x = await inProcess(size, c);
      rows.push(x);
      o.log(
        `admission in-process ${size} ${c}: review ${x.reviewUs.toFixed(1)} µs, JSON.parse ${x.parseUs.toFixed(1)} µs`,
      );
    }
  }
  return rows;
}

/** Every server at every connection count, `o.rounds` times; odd rounds in reverse order. */
async function measuredRuns(o: AdmissionOptions, servers: Servers, body: ReturnType<typeof bodies>) {
  const raw = new Map<string, Run[]>();
  for (const connections of o.connections) {
    for (let round = 0; round < o.rounds; round++) {
      for (const { size, c } of round % 2 === 0 ? combos : [...combos].reverse()) {
        const r = await servers.run(c, body(size, c), connections, { warmupMs: o.warmupMs, durationMs: o.durationMs });
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
  return raw;
}

async function profiledRuns(
  o: AdmissionOptions,
  servers: Servers,
  body: ReturnType<typeof bodies>,
  tmp: string,
): Promise<AdmissionReport['profiles']> {
  // Profiles apart from the measured runs: the profiler's sampling costs throughput of its own.
  const profiles: AdmissionReport['profiles'] = [];
  if (o.profileMs > 0) {
    const connections = 16;
    for (const { size, c } of combos) {
      const dir = join(tmp, `profile-${size}-${c}`);
      mkdirSync(dir);
      await servers.run(c, body(size, c), connections, { warmupMs: o.warmupMs, durationMs: o.profileMs }, dir);
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
  return profiles;
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
    const body = bodies();
    // Every server in a memory cgroup of its own with the chart's limit, so that Node sizes its heap as in the
    // container: this costs nothing measurable per run, and then every figure is taken as netpin is deployed.
    const limit = await chartMemoryCgroups(o.root);
    if (limit.notApplied) o.log(`admission: servers run without the chart's memory limit: ${limit.notApplied}`);
    if (split.notApplied) o.log(`admission: servers and load generator share the cores: ${split.notApplied}`);
    const servers = new Servers(o, certDir, poolsFile, ca, limit, split);

    const inProcess = await inProcessRows(o);
    // Idle: started, then left alone; the rate-only and allocating servers are the same process until a request comes.
    const idleRssBytes: AdmissionReport['memory']['idleRssBytes'] = {};
    for (const c of ['bare', 'rate'] as const) idleRssBytes[c] = await servers.idleRss(c);
    o.log(`admission idle RSS: bare ${mib(idleRssBytes.bare)}, netpin ${mib(idleRssBytes.rate)}`);
    const rows = toRows(await measuredRuns(o, servers, body), sizes, cases, o.connections);
    const profiles = await profiledRuns(o, servers, body, tmp);

    const bodyBytes = Object.fromEntries(sizes.map((size) => [size, Buffer.byteLength(body(size, 'rate')(0))]));
    return {
      bodyBytes: bodyBytes as Record<ReviewSize, number>,
      rows,
      inProcess,
      cores: { runner: split.runnerCore, server: split.serverCore, notApplied: split.notApplied },
      memory: { limit, idleSeconds: IDLE_MS / 1000, idleRssBytes },
      profiles,
    };
  } finally {
    split.together();
    rmSync(tmp, { recursive: true, force: true });
  }
}
