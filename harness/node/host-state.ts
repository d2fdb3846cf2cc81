// What a node changes on this machine, recorded before it starts (also on disk, so that a run
// that died is cleaned up by the next one), undone when it stops, and what is left over.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { sleep } from '../controlplane.js';
import {
  cgroupPids,
  cgroupTree,
  kill,
  kubepodsCgroups,
  links,
  listDir,
  mountPoints,
  ourShims,
  pidAlive,
  processGone,
  processStart,
  readSysctls,
  run,
  sysctlPath,
} from './host.js';
import { BRIDGE, isOurIfb, isOurVeth } from './network.js';

/** Host-wide: one test node at a time. Under /run, so a reboot forgets it. */
export const STATE_DIR = '/run/netpin-node';
/** The running node's HostSnapshot; gone after a clean stop(). */
export const STATE_FILE = path.join(STATE_DIR, 'state.json');

/**
 * Fixed host paths that kubelet, containerd or the CNI library write whatever we configure
 * (dataplane.md "Paths kubelet and containerd use"): absent ones are removed after the run,
 * present ones lose the entries that the run added.
 */
const GUARDED_DIRS = [
  '/var/lib/kubelet', // device-plugins/ (k8s.io/kubelet/pkg/apis/deviceplugin DevicePluginPath is fixed)
  '/var/log/containers', // kubelet's container log symlinks (ContainerLogsDir is fixed)
  '/var/log/pods',
  '/var/lib/cni', // libcni's result cache (go-cni default cache dir)
  '/run/containerd', // shim sockets: /run/containerd/s (containerd defaults.DefaultStateDir)
  '/run/netns', // CRI's default netns mounts, in case netns_mounts_under_state_dir is ignored
  '/run/nri',
  '/run/cdi',
  '/etc/cdi',
  '/etc/cni',
  '/opt/cni',
  '/opt/containerd',
  '/var/lib/containerd',
  '/usr/libexec/kubernetes',
  '/etc/kubernetes',
  '/run/mount', // libmount's utab, written by our own `umount` calls
];

export interface HostSnapshot {
  pid: number;
  runDir: string;
  binDir: string;
  containerdSocket: string;
  sysctls: Record<string, string>;
  links: string[];
  /** guarded dir -> its entries before the run, or null if it did not exist */
  dirs: Record<string, string[] | null>;
  /** the daemons started (pid + start time, as pids get reused), so that a run killed outright is cleaned up too */
  daemons: { pid: number; start: string }[];
}

/** Whether a path is inside the run dir (never matches the run dir's parent). */
function under(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir + '/');
}

/** Mounts this node may have made: under the run dir, CRI netns mounts, kubelet's fixed dir. */
function ourMount(p: string, snap: HostSnapshot): boolean {
  if (under(p, snap.runDir)) return true;
  if (/^\/run\/netns\/cni-/.test(p) && !(snap.dirs['/run/netns'] ?? []).includes(path.basename(p))) return true;
  return snap.dirs['/var/lib/kubelet'] === null && under(p, '/var/lib/kubelet');
}

/** Polls `fn` until it returns true, and fails with its own message past the deadline. */
async function until(deadline: number, fn: () => Promise<string | true>, pauseMs = 0): Promise<void> {
  for (;;) {
    const left = await fn();
    if (left === true) return;
    if (Date.now() > deadline) throw new Error(left);
    if (pauseMs > 0) await sleep(pauseMs);
  }
}

/** Daemons of a run that died without stop(). */
async function killDaemons(snap: HostSnapshot, deadline: number): Promise<void> {
  for (const { pid, start } of snap.daemons) {
    if ((await processStart(pid)) !== start) continue;
    kill(pid, 'SIGKILL');
    await until(deadline, async () => (await processGone(pid)) || `pid ${pid} did not exit`, 50);
  }
}

/** Container processes (every pid in kubepods), then the shims. */
async function killPodsAndShims(snap: HostSnapshot, deadline: number): Promise<void> {
  await until(deadline, async () => {
    const pids = [
      ...(await cgroupPids((await Promise.all((await kubepodsCgroups()).map(cgroupTree))).flat())),
      ...(await ourShims(snap.containerdSocket)),
    ];
    if (pids.length === 0) return true;
    for (const pid of pids) kill(pid, 'SIGKILL');
    await sleep(200);
    return `still running: ${pids.join(' ')}`;
  });
}

/** Rootfs overlays, netns bind mounts, kubelet's rshared root and pod volumes. */
async function unmountOurs(snap: HostSnapshot, deadline: number): Promise<void> {
  await until(deadline, async () => {
    const ours = (await mountPoints()).filter((p) => ourMount(p, snap));
    if (ours.length === 0) return true;
    for (const p of ours) {
      // Lazy: a mount still held by a dying process is detached now and freed later.
      await run('umount', ['-l', p]).catch(() => undefined);
    }
    return `still mounted: ${ours.join(' ')}`;
  });
}

/** kubepods cgroups, leaves first (rmdir only works on an empty cgroup). */
async function removeKubepods(deadline: number): Promise<void> {
  await until(deadline, async () => {
    const trees = (await Promise.all((await kubepodsCgroups()).map(cgroupTree))).flat();
    if (trees.length === 0) return true;
    for (const pid of await cgroupPids(trees)) kill(pid, 'SIGKILL');
    for (const d of trees.sort((a, b) => b.length - a.length)) await fsp.rmdir(d).catch(() => undefined);
    await sleep(100);
    return `still present: ${trees.join(' ')}`;
  });
}

/** Pod veths (normally gone with their netns), ifbs, then the bridge. */
async function deleteLinks(snap: HostSnapshot): Promise<void> {
  const before = new Set(snap.links);
  for (const l of await links()) {
    if (isOurVeth(l, before) || isOurIfb(l, before))
      await run('ip', ['link', 'delete', l.ifname]).catch(() => undefined);
  }
  if (!before.has(BRIDGE) && (await links()).some((l) => l.ifname === BRIDGE)) {
    await run('ip', ['link', 'delete', BRIDGE]);
  }
}

async function removeHostPaths(snap: HostSnapshot): Promise<void> {
  for (const [dir, entries] of Object.entries(snap.dirs)) {
    if (entries === null) {
      await fsp.rm(dir, { recursive: true, force: true });
      continue;
    }
    const now = (await listDir(dir)) ?? [];
    for (const e of now.filter((x) => !entries.includes(x))) {
      await fsp.rm(path.join(dir, e), { recursive: true, force: true });
    }
  }
}

async function restoreSysctls(snap: HostSnapshot): Promise<void> {
  const now = await readSysctls();
  for (const [k, v] of Object.entries(snap.sysctls)) {
    if (now[k] !== v) await fsp.writeFile(sysctlPath(k), v + '\n');
  }
}

/**
 * Undoes every host change of a run, from its snapshot alone (so that it also works for a
 * run that died). Daemons are expected to be stopped already; container processes and
 * shims are killed here. Best effort: returns the errors instead of stopping at the first.
 */
export async function undoHost(snap: HostSnapshot, timeoutMs = 30_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  // In this order: processes hold mounts, mounts hold cgroups; sysctls last, as deleting the
  // bridge no longer needs forwarding.
  const steps: [string, () => Promise<void>][] = [
    ['kill daemons', () => killDaemons(snap, deadline)],
    ['kill pods and shims', () => killPodsAndShims(snap, deadline)],
    ['unmount', () => unmountOurs(snap, deadline)],
    ['remove kubepods cgroups', () => removeKubepods(deadline)],
    ['delete links', () => deleteLinks(snap)],
    ['remove host paths', () => removeHostPaths(snap)],
    ['restore sysctls', () => restoreSysctls(snap)],
  ];
  const errors: string[] = [];
  for (const [what, fn] of steps) {
    try {
      await fn();
    } catch (err) {
      errors.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return errors;
}

/** The host state before a node at `runDir` touches anything. */
export async function snapshotHost(runDir: string, binDir: string, containerdSocket: string): Promise<HostSnapshot> {
  return {
    pid: process.pid,
    runDir,
    binDir,
    containerdSocket,
    sysctls: await readSysctls(),
    links: (await links()).map((l) => l.ifname),
    dirs: Object.fromEntries(await Promise.all(GUARDED_DIRS.map(async (d) => [d, await listDir(d)] as const))),
    daemons: [],
  };
}

/** Host changes of a run that are still present (also usable by another process, from STATE_FILE's snapshot). */
export async function findLeftovers(snap: HostSnapshot): Promise<string[]> {
  const out: string[] = [];
  for (const cg of await kubepodsCgroups()) out.push(`cgroup ${cg}`);
  for (const pid of await ourShims(snap.containerdSocket)) out.push(`shim process ${pid}`);
  const before = new Set(snap.links);
  for (const l of await links()) {
    if (l.ifname === BRIDGE && !before.has(BRIDGE)) out.push(`bridge ${l.ifname}`);
    else if (isOurVeth(l, before)) out.push(`veth ${l.ifname}`);
    else if (isOurIfb(l, before)) out.push(`ifb ${l.ifname}`);
  }
  for (const p of await mountPoints()) if (ourMount(p, snap)) out.push(`mount ${p}`);
  for (const [dir, entries] of Object.entries(snap.dirs)) {
    const now = await listDir(dir);
    if (entries === null) {
      if (now !== null) out.push(`path ${dir}`);
    } else {
      for (const e of (now ?? []).filter((x) => !entries.includes(x))) out.push(`path ${path.join(dir, e)}`);
    }
  }
  const sysctls = await readSysctls();
  for (const [k, v] of Object.entries(snap.sysctls)) {
    if (sysctls[k] !== v) out.push(`sysctl ${k}=${sysctls[k]} (was ${v})`);
  }
  return out;
}

/**
 * Takes the host-wide slot. A state file left by a dead run is cleaned up from its
 * snapshot first; one held by a live process means another node is running.
 */
export async function claimHost(): Promise<void> {
  await fsp.mkdir(STATE_DIR, { recursive: true, mode: 0o700 });
  let stale: HostSnapshot | undefined;
  try {
    stale = JSON.parse(await fsp.readFile(STATE_FILE, 'utf8')) as HostSnapshot;
  } catch {
    stale = undefined;
  }
  if (stale) {
    if (stale.pid !== process.pid && pidAlive(stale.pid)) {
      throw new Error(`another test node is running (pid ${stale.pid}, ${STATE_FILE}); one node per machine`);
    }
    process.stderr.write(`node: cleaning up after a test node that did not stop (pid ${stale.pid}, ${stale.runDir})\n`);
    const errors = await undoHost(stale);
    if (errors.length > 0) throw new Error(`cleaning up the previous test node failed:\n${errors.join('\n')}`);
    await fsp.rm(stale.runDir, { recursive: true, force: true }).catch(() => undefined);
    await fsp.rm(STATE_FILE, { force: true });
  }
  // Anything else kubelet-like on the host would be mixed up with ours: refuse, do not guess.
  const foreign = [
    ...(await kubepodsCgroups()).map((c) => `cgroup ${c}`),
    ...((await links()).some((l) => l.ifname === BRIDGE) ? [`bridge ${BRIDGE}`] : []),
  ];
  if (foreign.length > 0) {
    throw new Error(`the host already has node state this harness did not record: ${foreign.join(', ')}`);
  }
}
