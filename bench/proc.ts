// Child processes of the benchmarks: the servers under load, and what is read off them.
import { execFileSync } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { parse } from 'yaml';
import { parseQuantity } from '../src/intent/quantity.js';
import { createMemoryCgroup, rss, type MemoryCgroup } from '../harness/memory.js';

export function peakRss(pid: number | undefined): number | undefined {
  return rss(pid)?.peak;
}

/** Resident set size of a live process now (VmRSS), in bytes. */
export function residentBytes(pid: number | undefined): number | undefined {
  return rss(pid)?.now;
}

interface ChartValues {
  resources?: { limits?: { memory?: string } };
}

/** The memory limit the chart gives netpin's container by default (values.yaml resources.limits.memory), in bytes. */
function chartMemoryLimit(root: string): number {
  const values = parse(readFileSync(join(root, 'charts/netpin/values.yaml'), 'utf8')) as ChartValues;
  const q = parseQuantity(String(values.resources?.limits?.memory ?? ''));
  if (!q) throw new Error('charts/netpin/values.yaml has no resources.limits.memory');
  return Number(q.num / q.den);
}

/** Children run under the chart's memory limit, each in a memory cgroup of its own; or why they cannot be. */
export interface MemoryLimit {
  limitBytes: number;
  /** Node's heap limit inside such a cgroup (v8 heap_size_limit): Node sizes its heap from the cgroup's limit. */
  heapLimitBytes?: number;
  /** Set when no cgroup could be made (not root, no cgroup v1 memory controller): the children ran unconfined. */
  notApplied?: string;
}

/** Whether memory cgroups with the chart's limit can be made here, and the heap Node gives itself in one. */
export async function chartMemoryCgroups(root: string): Promise<MemoryLimit> {
  const limitBytes = chartMemoryLimit(root);
  const probe = createMemoryCgroup(limitBytes);
  if (typeof probe === 'string') return { limitBytes, notApplied: probe };
  try {
    return { limitBytes, heapLimitBytes: (await probe.nodeView()).heapSizeLimitBytes };
  } finally {
    await probe.remove();
  }
}

/** A fresh cgroup for one child under `limit`; none when the limit could not be applied. Removed by the caller once the child is gone. */
export function memoryCgroup(limit: MemoryLimit): MemoryCgroup | undefined {
  if (limit.notApplied) return undefined;
  const cg = createMemoryCgroup(limit.limitBytes);
  if (typeof cg === 'string') throw new Error(cg);
  return cg;
}

/** The runner (the load generator) on one core and the servers on another, or why not. */
export interface CoreSplit {
  runnerCore?: number;
  serverCore?: number;
  /** Set when the cores could not be split (one core, no taskset): all shared every core. */
  notApplied?: string;
  /** Puts the runner on its core; returns the prefix of a server's command line that puts it on the other. */
  apart(): string[];
  /** Gives the runner every core again; a server started now may run on any (no prefix). */
  together(): string[];
}

/**
 * The runner's threads on core 0 and the servers on core 1, when asked. Sharing both cores under load,
 * the load generator and the server took CPU from each other by turns, and a server's CPU per request
 * moved by half from run to run; apart, each server has one whole core, as a pod with a one-CPU limit.
 */
export function splitCores(): CoreSplit {
  const n = cpus().length;
  const none = (why: string): CoreSplit => ({ notApplied: why, apart: () => [], together: () => [] });
  if (n < 2) return none(`${n} core`);
  const pin = (cores: string) =>
    execFileSync('taskset', ['-a', '-p', '-c', cores, String(process.pid)], { stdio: 'ignore' });
  try {
    pin(`0-${n - 1}`);
  } catch (e) {
    return none(`taskset failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  return {
    runnerCore: 0,
    serverCore: 1,
    apart: () => {
      pin('0');
      return ['taskset', '-c', '1'];
    },
    together: () => {
      pin(`0-${n - 1}`);
      return [];
    },
  };
}

/** Kills every process in a memory cgroup (the one child the bench started in it), and removes the cgroup. */
export async function killCgroup(cg: MemoryCgroup): Promise<void> {
  const pids = readFileSync(join(cg.dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
  for (const pid of pids) process.kill(Number(pid), 'SIGKILL');
  await cg.remove();
}

export function mib(bytes: number | undefined): string {
  return bytes === undefined ? '–' : `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

/** Calls `fn` on every item, `width` calls at a time. */
export async function inParallel<T>(
  items: readonly T[],
  width: number,
  fn: (item: T) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** GET of `path` on an HTTPS server whose certificate `ca` signs, as text. */
export async function httpsText(origin: string, path: string, ca: string): Promise<{ status: number; text: string }> {
  const agent = new Agent({ connect: { ca } });
  try {
    const { statusCode, body } = await request(`${origin}${path}`, { dispatcher: agent });
    return { status: statusCode, text: await body.text() };
  } finally {
    await agent.close();
  }
}

/** The sum of a metric's samples, in a Prometheus exposition, whose labels include `labels`; undefined when none. */
export function metricSum(exposition: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let sum: number | undefined;
  for (const m of exposition.matchAll(new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)$`, 'gm'))) {
    const have = new Map([...(m[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) sum = (sum ?? 0) + Number(m[2]);
  }
  return sum;
}

// Linux reports CPU times in clock ticks of 1/100 s (USER_HZ) on every platform Node runs on.
const TICKS_PER_SECOND = 100;

/** CPU time (user + system) a live process has used so far, in seconds. */
export function cpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may itself hold spaces and parentheses.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** Direct children of this process by command name (etcd, kube-apiserver, ...). */
export function childPids(): Map<string, number> {
  const out = new Map<string, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid) out.set(comm, Number(entry));
    } catch {
      // gone between readdir and read
    }
  }
  return out;
}

/** CPU time the whole machine has spent busy (all cores, not idle or waiting), in seconds. */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const [, ...ticks] = line.trim().split(/\s+/).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = ticks;
  return (user + nice + system + irq + softirq + steal) / TICKS_PER_SECOND;
}

/** The machine and checkout a run measured on, for the reports' headers. */
export interface RunEnvironment {
  node: string;
  cpu: string;
  cores: number;
  memoryGiB: number;
  loadAverage: { start: number[]; end: number[] };
  commit: string;
  dirty: boolean;
}

export function gitIn(root: string, ...args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}

export function runEnvironment(root: string): RunEnvironment {
  return {
    node: process.version,
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    loadAverage: { start: loadavg(), end: [] },
    commit: gitIn(root, 'rev-parse', '--short', 'HEAD') || 'unknown',
    dirty: gitIn(root, 'status', '--porcelain', '--untracked-files=no') !== '',
  };
}
