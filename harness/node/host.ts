// Reading and changing this machine's state: commands, processes, cgroups, mounts, links and
// sysctls. The node's own bookkeeping of what it changed is host-state.ts.
import { execFile } from 'node:child_process';
import type * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/**
 * Sysctls that kubelet sets (pkg/kubelet/cm/container_manager_linux.go setupKernelTunables)
 * and that the bridge plugin sets for isGateway (plugins/main/bridge enableIPForward).
 */
const SYSCTLS = [
  'vm.overcommit_memory',
  'vm.panic_on_oom',
  'kernel.panic',
  'kernel.panic_on_oops',
  'kernel.keys.root_maxkeys',
  'kernel.keys.root_maxbytes',
  'net.ipv4.ip_forward',
  'net.ipv4.conf.all.forwarding',
  'net.ipv4.conf.default.forwarding',
  'net.ipv6.conf.all.forwarding',
  'net.ipv6.conf.default.forwarding',
];

export async function run(cmd: string, args: string[], timeoutMs = 30_000): Promise<string> {
  try {
    const { stdout } = await execFileP(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`, { cause: err });
  }
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch {
    return false;
  }
}

export function sysctlPath(key: string): string {
  return path.join('/proc/sys', ...key.split('.'));
}

export async function readSysctls(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const k of SYSCTLS) {
    try {
      out[k] = (await fsp.readFile(sysctlPath(k), 'utf8')).trim();
    } catch {
      // not on this kernel (e.g. IPv6 disabled): nothing to restore
    }
  }
  return out;
}

export interface Link {
  ifindex: number;
  ifname: string;
  master?: string;
  link_index?: number;
  linkinfo?: { info_kind?: string };
}

export async function links(): Promise<Link[]> {
  return JSON.parse(await run('ip', ['-j', '-d', 'link', 'show'])) as Link[];
}

export async function listDir(p: string): Promise<string[] | null> {
  try {
    return (await fsp.readdir(p)).sort();
  } catch {
    return null;
  }
}

/** Mount points, deepest first (mountinfo field 5, with its octal escapes undone). */
export async function mountPoints(): Promise<string[]> {
  const text = await fsp.readFile('/proc/self/mountinfo', 'utf8');
  const points = text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) =>
      (l.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))),
    );
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** Mount points of every cgroup v1 hierarchy and of the v2 one, if mounted. */
export async function cgroupRoots(): Promise<string[]> {
  const text = await fsp.readFile('/proc/self/mountinfo', 'utf8');
  const roots: string[] = [];
  for (const l of text.split('\n')) {
    const [pre, post] = l.split(' - ');
    const fstype = post?.split(' ')[0];
    if (fstype === 'cgroup' || fstype === 'cgroup2') roots.push(pre?.split(' ')[4] ?? '');
  }
  return roots.filter((r) => r.length > 0);
}

/** kubelet's cgroupfs tree: /kubepods (cgroupsPerQOS, cgroupRoot "/") in each hierarchy. */
export async function kubepodsCgroups(): Promise<string[]> {
  const found: string[] = [];
  for (const root of await cgroupRoots()) {
    for (const e of (await listDir(root)) ?? []) {
      if (e.startsWith('kubepods')) found.push(path.join(root, e));
    }
  }
  return found;
}

export async function cgroupTree(dir: string): Promise<string[]> {
  const out = [dir];
  let entries: fs.Dirent[];
  try {
    entries = await fsp.readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  for (const e of entries) if (e.isDirectory()) out.push(...(await cgroupTree(path.join(dir, e.name))));
  return out;
}

export async function cgroupPids(dirs: string[]): Promise<number[]> {
  const pids = new Set<number>();
  for (const d of dirs) {
    try {
      for (const l of (await fsp.readFile(path.join(d, 'cgroup.procs'), 'utf8')).split('\n')) {
        const n = Number(l);
        if (n > 0) pids.add(n);
      }
    } catch {
      // removed meanwhile
    }
  }
  return [...pids];
}

export function kill(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** containerd-shim-runc-v2 processes serving our containerd (they outlive it by design). */
export async function ourShims(socket: string): Promise<number[]> {
  const pids: number[] = [];
  for (const e of (await listDir('/proc')) ?? []) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const argv = (await fsp.readFile(`/proc/${e}/cmdline`, 'utf8')).split('\0');
      if (path.basename(argv[0] ?? '') === 'containerd-shim-runc-v2' && argv.includes(socket)) pids.push(Number(e));
    } catch {
      // exited
    }
  }
  return pids;
}

/** Start time of a process (field 22 of /proc/PID/stat), or undefined if it is gone. */
export async function processStart(pid: number): Promise<string | undefined> {
  try {
    const stat = await fsp.readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may itself hold spaces: state is field 3.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Exited (no /proc entry) or a zombie waiting for its parent. */
export async function processGone(pid: number): Promise<boolean> {
  try {
    return /\) Z /.test(await fsp.readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
