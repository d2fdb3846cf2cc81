// A replica under the chart's memory limit: a cgroup v1 memory cgroup with that limit, nested in
// the cgroup this process runs in (so whatever accounts for this process accounts for it too),
// made for one run and removed after it. The replica joins it before Node starts, so that Node
// sizes its heap from the limit as it would in the container, and its memory is charged there.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
const V1_ROOT = '/sys/fs/cgroup/memory';

export interface MemoryCgroup {
  dir: string;
  limitBytes: number;
  /** argv prefix for startNetpin: a shell that joins the cgroup, then execs node. */
  launcher: string[];
  /** memory.max_usage_in_bytes: the cgroup's peak charge (RSS and page cache of its processes). */
  peakBytes(): number;
  /** Times the cgroup hit its limit, and whether the kernel OOM-killed a process in it. */
  failcnt(): number;
  oomKills(): number;
  /** Node's own view inside the cgroup: v8 heap_size_limit and process.constrainedMemory(). */
  nodeView(): Promise<{ heapSizeLimitBytes: number; constrainedMemoryBytes: number }>;
  remove(): Promise<void>;
}

/** Creates the cgroup, or says why it cannot (not root, no cgroup v1 memory controller). */
export function createMemoryCgroup(limitBytes: number): MemoryCgroup | string {
  let own: string | undefined;
  try {
    own = fs
      .readFileSync('/proc/self/cgroup', 'utf8')
      .split('\n')
      .map((l) => l.split(':'))
      .find((f) => f[1] === 'memory')?.[2];
  } catch (e) {
    return `no /proc/self/cgroup: ${String(e)}`;
  }
  if (own === undefined || !fs.existsSync(V1_ROOT)) return 'no cgroup v1 memory controller on this machine';
  const dir = path.join(V1_ROOT, own, `netpin-reliability-${randomBytes(4).toString('hex')}`);
  try {
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'memory.limit_in_bytes'), String(limitBytes));
  } catch (e) {
    try {
      fs.rmdirSync(dir);
    } catch {
      // never made
    }
    return `cannot make a memory cgroup: ${(e as Error).message}`;
  }
  const read = (f: string) => fs.readFileSync(path.join(dir, f), 'utf8');
  const join = `echo $$ > ${path.join(dir, 'cgroup.procs')} && exec "$0" "$@"`;
  return {
    dir,
    limitBytes,
    launcher: ['sh', '-c', join],
    peakBytes: () => Number(read('memory.max_usage_in_bytes')),
    failcnt: () => Number(read('memory.failcnt')),
    oomKills: () => Number(/^oom_kill (\d+)$/m.exec(read('memory.oom_control'))?.[1] ?? 0),
    async nodeView() {
      const script =
        'console.log(JSON.stringify({ heapSizeLimitBytes: require("v8").getHeapStatistics().heap_size_limit, constrainedMemoryBytes: process.constrainedMemory() }))';
      const { stdout } = await execFileP('sh', ['-c', join, process.execPath, '-e', script]);
      return JSON.parse(stdout) as { heapSizeLimitBytes: number; constrainedMemoryBytes: number };
    },
    async remove() {
      // rmdir fails while a process is in it: the caller stops the replica first; retry briefly for the kernel to let go.
      for (let i = 0; i < 20; i++) {
        try {
          fs.rmdirSync(dir);
          return;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
          await new Promise((r) => setTimeout(r, 250));
        }
      }
      fs.rmdirSync(dir);
    },
  };
}

/** Resident set size now and at its peak (VmRSS, VmHWM) of a live process, in bytes. */
export function rss(pid: number | undefined): { now: number; peak: number } | undefined {
  if (pid === undefined) return undefined;
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    return { now: kb('VmRSS'), peak: kb('VmHWM') };
  } catch {
    return undefined;
  }
}
