// The servers of the admission part, each a fresh process in a memory cgroup of its own, placed on
// its core, and one measured run of load against one of them.
import { join } from 'node:path';
import { startChild, type Child } from '../../harness/process.js';
import { runLoad, type LoadResult } from '../load.js';
import {
  cpuSeconds,
  httpsText,
  memoryCgroup,
  metricSum,
  peakRss,
  residentBytes,
  splitCores,
  type MemoryLimit,
} from '../proc.js';
import { POOL } from '../review.js';
import type { AdmissionOptions, ServerCase } from './types.js';

export type Run = LoadResult & { peakRss?: number; cpuSeconds: number };

interface Server {
  proc: Child;
  origin: string;
}

// Long enough for start-up work (module loading, the first GCs) to settle, as in a pod that waits for traffic.
export const IDLE_MS = 3_000;

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

/** What every server of one run shares: the options, the certificates, the pools, the cgroup limit and the cores. */
export class Servers {
  constructor(
    private readonly o: AdmissionOptions,
    private readonly certDir: string,
    private readonly poolsFile: string,
    private readonly ca: string,
    private readonly limit: MemoryLimit,
    private readonly split: ReturnType<typeof splitCores>,
  ) {}

  /**
   * At one connection the load generator and the server take turns and never compete for a core: there
   * they share both, since apart every request waits for the other core to wake (the bare handler's p99
   * at one connection was 3.3–4.2 ms apart, 0.9 ms together).
   */
  private placed(connections: number): string[] {
    return connections > 1 ? this.split.apart() : this.split.together();
  }

  async with<T>(
    c: ServerCase,
    connections: number,
    fn: (server: Server) => Promise<T>,
    profileDir?: string,
  ): Promise<T> {
    const cgroup = memoryCgroup(this.limit);
    try {
      const launcher = [...this.placed(connections), ...(cgroup?.launcher ?? [])];
      const server = await startServer(this.o, c, this.certDir, this.poolsFile, launcher, profileDir);
      try {
        return await fn(server);
      } finally {
        await server.proc.stop();
      }
    } finally {
      await cgroup?.remove();
    }
  }

  /** Resident memory once started and left alone. */
  idleRss(c: ServerCase): Promise<number | undefined> {
    return this.with(c, 16, async (server) => {
      await new Promise((r) => setTimeout(r, IDLE_MS));
      return residentBytes(server.proc.child.pid);
    });
  }

  /** One server under load; its answers checked, and its CPU time over the measured window. */
  run(
    c: ServerCase,
    body: (seq: number) => string,
    connections: number,
    window: { warmupMs: number; durationMs: number },
    profileDir?: string,
  ): Promise<Run> {
    return this.with(
      c,
      connections,
      async (server) => {
        // The server's CPU time over the measured window (timers in this process: a few ms late at worst).
        const pid = server.proc.child.pid;
        let cpuFrom = 0;
        let cpuTo = 0;
        const t1 = setTimeout(() => (cpuFrom = cpuSeconds(pid) ?? 0), window.warmupMs);
        const t2 = setTimeout(() => (cpuTo = cpuSeconds(pid) ?? 0), window.warmupMs + window.durationMs);
        const r = await runLoad({
          origin: server.origin,
          path: '/mutate',
          ca: this.ca,
          connections,
          warmupMs: window.warmupMs,
          durationMs: window.durationMs,
          body,
        });
        clearTimeout(t1);
        clearTimeout(t2);
        checkSample(c, r.sample);
        if (r.errors > 0)
          throw new Error(`${c} at ${connections} connections: ${r.errors} failed requests\n${server.proc.output()}`);
        if (c === 'alloc') {
          const held = await allocatedByNetpin(server.origin, this.ca);
          if (held !== r.sent)
            throw new Error(`alloc: netpin holds ${held} addresses after ${r.sent} allocating requests`);
        }
        return { ...r, peakRss: peakRss(pid), cpuSeconds: cpuTo - cpuFrom };
      },
      profileDir,
    );
  }
}
