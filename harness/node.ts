// A real single Kubernetes node for end-to-end tests, next to the control plane of
// controlplane.ts: containerd (+ shim) with runc, the CNI reference plugins (bridge,
// host-local, bandwidth), kubelet and kube-scheduler, all built from Go modules by
// test/node/build.sh, with OCI images built locally (never pulled).
//
// The traps it avoids are explained where they are avoided, with the upstream code behind each.
//
// Unlike the control plane, a node changes the host: cgroups, a bridge, veths, ifb
// devices, netns mounts, sysctls and a few fixed paths. startNode() records the host
// state first (also in STATE_DIR, so that a run that died is cleaned up by the next one)
// and stop() undoes all of it; leftovers() says what is still there.

import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as https from 'node:https';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import {
  DEFAULT_CONTROLLERS,
  freePort,
  runBuildScript,
  issueClientKubeconfig,
  repoPath,
  sleep,
  startProc,
  stopProc,
  waitFor,
  type ControlPlane,
  type Proc,
  type StartOptions,
} from './controlplane.js';
import type { WireJson } from './json.js';

const execFileP = promisify(execFile);

/** Image references: local-looking names no registry serves, imported with ctr. */
const PAUSE_IMAGE = 'netpin.test/pause:1';
export const APP_IMAGE = 'netpin.test/app:1';
/** The app image serves HTTP here ($PORT); GET /healthz answers 200. */
export const APP_PORT = 8080;
/**
 * The node's name, and so its Hostname address. kubelet rejects a loopback --node-ip
 * ("nodeIP can't be loopback address", pkg/kubelet/kubelet_node_status.go validateNodeIP),
 * so the apiserver reaches the loopback-only kubelet through the Hostname address instead:
 * "localhost" resolves to 127.0.0.1 without touching /etc/hosts. InternalIP (and so
 * status.hostIP) stays the address kubelet detects on the default-route interface.
 */
const NODE_NAME = 'localhost';
/** host-local range of the bridge network; the host is .1 (isGateway) */
const POD_CIDR = '10.244.0.0/24';
/** Our own bridge name, so that a host's cni0 is never touched. */
export const BRIDGE = 'netpin0';
/** The bridge's address, the pods' gateway; the host side of the pod network. */
const GATEWAY = '10.244.0.1';
/**
 * Where pods reach the API server. Service IPs do not route here (no kube-proxy), so a
 * forwarder on the gateway stands in for the `kubernetes` Service; pods that talk to the API
 * server (netpin) are given this address as KUBERNETES_SERVICE_HOST/PORT.
 */
const POD_API_PORT = 6443;

const BUILD_SCRIPT = repoPath('test/node/build.sh');
/** Host-wide: one test node at a time. Under /run, so a reboot forgets it. */
const STATE_DIR = '/run/netpin-node';
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

export interface NodeOptions {
  /** node name (default netpin-node) */
  nodeName?: string;
  /** per-step timeout in ms (default 120 s; env NETPIN_NODE_START_TIMEOUT_MS) */
  startTimeoutMs?: number;
  /** extra kubelet flags, appended last */
  kubeletArgs?: string[];
  /** extra kube-scheduler flags, appended last */
  schedulerArgs?: string[];
}

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

export interface Node {
  name: string;
  /** per-run dir: configs, logs (*.log), containerd root/state, kubelet root, CNI IPAM data */
  dir: string;
  binDir: string;
  containerdSocket: string;
  images: { pause: string; app: string };
  /** ms since startNode() was called (binaries already built) */
  timings: { containerdUp: number; imagesImported: number; kubeletStarted: number; nodeReady: number };
  /** host state recorded before the node touched anything */
  before: HostSnapshot;
  /** runs ctr against this node's containerd, in the k8s.io namespace */
  ctr(args: string[]): Promise<string>;
  /** host-side veth of a running pod (by metadata.uid), found through its netns */
  podHostVeth(podUid: string): Promise<string>;
  /**
   * The tbf rates shaping a running pod, as tc prints them ("20Mbit"). Traffic into the pod
   * leaves the host through its veth, where ingress-bandwidth shapes it; traffic out of the pod
   * enters on the veth and is redirected to an ifb, where egress-bandwidth shapes it.
   */
  podShaping(podUid: string): Promise<{ ingress?: string; egress?: string; ifb?: string }>;
  /** deletes the node's pods, stops everything and undoes every host change; throws if some remain */
  stop(): Promise<void>;
  /** host changes still present (empty after a clean stop()) */
  leftovers(): Promise<string[]>;
  /** The API server as pods reach it (the control plane's certificate is valid for it). */
  podApiServer: { host: string; port: number };
}

/**
 * StartOptions that a control plane needs to serve a real node (dataplane.md "A working
 * configuration"): the Node authorizer for the kubelet's identity, an apiserver-to-kubelet
 * client cert for logs/exec, apiserver -> pod IPs for webhooks behind Services, and the
 * node-lifecycle-controller, without which the not-ready taint never leaves.
 */
export function nodeControlPlaneOptions(base: StartOptions = {}): StartOptions {
  const controllers = [...(base.controllers ?? DEFAULT_CONTROLLERS)];
  // Pods that talk to the API server (netpin) need a service account token and the cluster's CA;
  // the API server reaches a webhook Service through its endpoints (--enable-aggregator-routing).
  for (const c of [
    'node-lifecycle-controller',
    'serviceaccount-controller',
    'root-ca-certificate-publisher-controller',
    'endpoints-controller',
    'endpointslice-controller',
  ]) {
    if (!controllers.includes(c)) controllers.push(c);
  }
  return {
    ...base,
    controllers,
    authorizationMode: 'Node,RBAC',
    kubeletClientCert: true,
    serviceAccounts: true,
    apiserverIPs: [GATEWAY, ...(base.apiserverIPs ?? [])],
    apiserverArgs: [
      '--enable-aggregator-routing=true',
      // kubelet listens on loopback only: dial it by its Hostname address (see NODE_NAME).
      '--kubelet-preferred-address-types=Hostname',
      ...(base.apiserverArgs ?? []),
    ],
  };
}

let binariesPromise: Promise<string> | undefined;

/** Runs test/node/build.sh (stderr inherited) and returns the bin dir it prints last. */
export function nodeBinaries(): Promise<string> {
  binariesPromise ??= runBuildScript(BUILD_SCRIPT, [
    'kubelet',
    'containerd',
    'runc',
    'bridge',
    'images/pause.tar',
    'images/app.tar',
  ]).catch((err: unknown) => {
    binariesPromise = undefined; // allow a retry
    throw err;
  });
  return binariesPromise;
}

// ---------------------------------------------------------------------------
// small host helpers

async function run(cmd: string, args: string[], timeoutMs = 30_000): Promise<string> {
  try {
    const { stdout } = await execFileP(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`, { cause: err });
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch {
    return false;
  }
}

function sysctlPath(key: string): string {
  return path.join('/proc/sys', ...key.split('.'));
}

async function readSysctls(): Promise<Record<string, string>> {
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

interface Link {
  ifindex: number;
  ifname: string;
  master?: string;
  link_index?: number;
  linkinfo?: { info_kind?: string };
}

async function links(): Promise<Link[]> {
  return JSON.parse(await run('ip', ['-j', '-d', 'link', 'show'])) as Link[];
}

async function listDir(p: string): Promise<string[] | null> {
  try {
    return (await fsp.readdir(p)).sort();
  } catch {
    return null;
  }
}

/** Mount points, deepest first (mountinfo field 5, with its octal escapes undone). */
async function mountPoints(): Promise<string[]> {
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
async function cgroupRoots(): Promise<string[]> {
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

async function cgroupTree(dir: string): Promise<string[]> {
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

async function cgroupPids(dirs: string[]): Promise<number[]> {
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

function kill(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** containerd-shim-runc-v2 processes serving our containerd (they outlive it by design). */
async function ourShims(socket: string): Promise<number[]> {
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
async function processStart(pid: number): Promise<string | undefined> {
  try {
    const stat = await fsp.readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may itself hold spaces: state is field 3.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Exited (no /proc entry) or a zombie waiting for its parent. */
async function processGone(pid: number): Promise<boolean> {
  try {
    return /\) Z /.test(await fsp.readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

function isOurVeth(l: Link, before: Set<string>): boolean {
  // The bridge plugin names host veths veth<8 hex> (plugins/pkg/ip link_linux.go RandomVethName).
  return (
    l.linkinfo?.info_kind === 'veth' &&
    (l.master === BRIDGE || (!before.has(l.ifname) && /^veth[0-9a-f]{8}$/.test(l.ifname)))
  );
}

function isOurIfb(l: Link, before: Set<string>): boolean {
  // The bandwidth plugin names its ifb "bwp" + a hash of the container id (plugins/meta/bandwidth).
  return l.linkinfo?.info_kind === 'ifb' && !before.has(l.ifname) && l.ifname.startsWith('bwp');
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

/**
 * Undoes every host change of a run, from its snapshot alone (so that it also works for a
 * run that died). Daemons are expected to be stopped already; container processes and
 * shims are killed here. Best effort: returns the errors instead of stopping at the first.
 */
async function undoHost(snap: HostSnapshot, timeoutMs = 30_000): Promise<string[]> {
  const errors: string[] = [];
  const step = async (what: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      errors.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  const deadline = Date.now() + timeoutMs;

  // 0. daemons of a run that died without stop().
  await step('kill daemons', async () => {
    for (const { pid, start } of snap.daemons) {
      if ((await processStart(pid)) !== start) continue;
      kill(pid, 'SIGKILL');
      while (!(await processGone(pid))) {
        if (Date.now() > deadline) throw new Error(`pid ${pid} did not exit`);
        await sleep(50);
      }
    }
  });

  // 1. container processes (every pid in kubepods), then the shims.
  await step('kill pods and shims', async () => {
    for (;;) {
      const pids = [
        ...(await cgroupPids((await Promise.all((await kubepodsCgroups()).map(cgroupTree))).flat())),
        ...(await ourShims(snap.containerdSocket)),
      ];
      if (pids.length === 0) return;
      if (Date.now() > deadline) throw new Error(`still running: ${pids.join(' ')}`);
      for (const pid of pids) kill(pid, 'SIGKILL');
      await sleep(200);
    }
  });

  // 2. mounts: rootfs overlays, netns bind mounts, kubelet's rshared root and pod volumes.
  await step('unmount', async () => {
    for (;;) {
      const ours = (await mountPoints()).filter((p) => ourMount(p, snap));
      if (ours.length === 0) return;
      if (Date.now() > deadline) throw new Error(`still mounted: ${ours.join(' ')}`);
      for (const p of ours) {
        // Lazy: a mount still held by a dying process is detached now and freed later.
        await run('umount', ['-l', p]).catch(() => undefined);
      }
    }
  });

  // 3. kubepods cgroups, leaves first (rmdir only works on an empty cgroup).
  await step('remove kubepods cgroups', async () => {
    for (;;) {
      const trees = (await Promise.all((await kubepodsCgroups()).map(cgroupTree))).flat();
      if (trees.length === 0) return;
      if (Date.now() > deadline) throw new Error(`still present: ${trees.join(' ')}`);
      for (const pid of await cgroupPids(trees)) kill(pid, 'SIGKILL');
      for (const d of trees.sort((a, b) => b.length - a.length)) await fsp.rmdir(d).catch(() => undefined);
      await sleep(100);
    }
  });

  // 4. network devices: pod veths (normally gone with their netns), ifbs, then the bridge.
  await step('delete links', async () => {
    const before = new Set(snap.links);
    for (const l of await links()) {
      if (isOurVeth(l, before) || isOurIfb(l, before))
        await run('ip', ['link', 'delete', l.ifname]).catch(() => undefined);
    }
    if (!before.has(BRIDGE) && (await links()).some((l) => l.ifname === BRIDGE)) {
      await run('ip', ['link', 'delete', BRIDGE]);
    }
  });

  // 5. fixed paths.
  await step('remove host paths', async () => {
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
  });

  // 6. sysctls, last: deleting the bridge no longer needs forwarding.
  await step('restore sysctls', async () => {
    const now = await readSysctls();
    for (const [k, v] of Object.entries(snap.sysctls)) {
      if (now[k] !== v) await fsp.writeFile(sysctlPath(k), v + '\n');
    }
  });

  return errors;
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

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the host-wide slot. A state file left by a dead run is cleaned up from its
 * snapshot first; one held by a live process means another node is running.
 */
async function claimHost(): Promise<void> {
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

// ---------------------------------------------------------------------------
// API helper (admin client certificate)

interface Api {
  (method: string, urlPath: string, body?: unknown, contentType?: string): Promise<{ status: number; json: WireJson }>;
  destroy(): void;
}

function adminApi(cp: ControlPlane): Api {
  const agent = new https.Agent({
    ca: cp.caPem,
    cert: fs.readFileSync(path.join(cp.dir, 'admin.crt')),
    key: fs.readFileSync(path.join(cp.dir, 'admin.key')),
    keepAlive: true,
  });
  const call = (method: string, urlPath: string, body?: unknown, contentType = 'application/json') =>
    new Promise<{ status: number; json: WireJson }>((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = https.request(
        new URL(urlPath, cp.url),
        {
          method,
          agent,
          timeout: 10_000,
          headers: {
            accept: 'application/json',
            // Explicit: Node sends a DELETE body without a length, which breaks the kept-alive connection.
            ...(payload ? { 'content-type': contentType, 'content-length': Buffer.byteLength(payload) } : {}),
          },
        },
        (res) => {
          let data = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (data += c));
          res.on('end', () => {
            let json: unknown;
            try {
              json = data ? JSON.parse(data) : undefined;
            } catch {
              json = data;
            }
            resolve({ status: res.statusCode ?? 0, json });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath}: timeout`)));
      req.on('error', reject);
      req.end(payload);
    });
  return Object.assign(call, { destroy: () => agent.destroy() });
}

// ---------------------------------------------------------------------------
// configs

function containerdConfig(dir: string, binDir: string, socket: string): string {
  const q = (s: string): string => `'${s}'`; // TOML literal strings: no escapes in our paths
  return [
    '# containerd 2.x config, version 3 (dataplane.md "A working configuration").',
    'version = 3',
    `root = ${q(path.join(dir, 'containerd', 'root'))}`,
    `state = ${q(path.join(dir, 'containerd', 'state'))}`,
    '',
    '[grpc]',
    `  address = ${q(socket)}`,
    '',
    '[ttrpc]',
    `  address = ${q(socket + '.ttrpc')}`,
    '',
    "[plugins.'io.containerd.cri.v1.images']",
    "  snapshotter = 'overlayfs'",
    "  [plugins.'io.containerd.cri.v1.images'.pinned_images]",
    `    sandbox = ${q(PAUSE_IMAGE)}`,
    '',
    "[plugins.'io.containerd.cri.v1.runtime']",
    '  # This VM lacks CAP_SYS_RESOURCE: runc could not lower oom_score_adj below our own.',
    '  restrict_oom_score_adj = true',
    "  # Keep the pods' netns mounts in our state dir, not /run/netns.",
    '  netns_mounts_under_state_dir = true',
    `  cdi_spec_dirs = [${q(path.join(dir, 'cdi'))}]`,
    "  [plugins.'io.containerd.cri.v1.runtime'.containerd]",
    "    default_runtime_name = 'runc'",
    "    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]",
    "      runtime_type = 'io.containerd.runc.v2'",
    "      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]",
    '        # Built with cgo and the seccomp tag: containerd always gives sandboxes a seccomp profile.',
    `        BinaryName = ${q(path.join(binDir, 'runc'))}`,
    `        Root = ${q(path.join(dir, 'runc'))}`,
    '        SystemdCgroup = false',
    "  [plugins.'io.containerd.cri.v1.runtime'.cni]",
    `    bin_dirs = [${q(binDir)}]`,
    `    conf_dir = ${q(path.join(dir, 'cni', 'net.d'))}`,
    '',
    "[plugins.'io.containerd.grpc.v1.cri']",
    "  stream_server_address = '127.0.0.1'",
    '',
    '# Its default path is /opt/containerd.',
    "[plugins.'io.containerd.internal.v1.opt']",
    `  path = ${q(path.join(dir, 'containerd', 'opt'))}`,
    '',
    '# NRI would listen on /var/run/nri/nri.sock; nothing here uses it.',
    "[plugins.'io.containerd.nri.v1.nri']",
    '  disable = true',
    '',
  ].join('\n');
}

function cniConflist(dir: string): string {
  return JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: 'netpin-test',
      plugins: [
        {
          type: 'bridge',
          bridge: BRIDGE,
          isGateway: true,
          // No ipMasq: this machine has no iptables, and nothing leaves the host anyway.
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: POD_CIDR }]],
            routes: [{ dst: '0.0.0.0/0' }],
            dataDir: path.join(dir, 'cni', 'ipam'),
          },
        },
        // containerd's CRI turns kubernetes.io/{ingress,egress}-bandwidth into this
        // plugin's runtimeConfig.bandwidth (internal/cri/server bandwidth annotations).
        { type: 'bandwidth', capabilities: { bandwidth: true } },
      ],
    },
    null,
    2,
  );
}

function kubeletConfig(dir: string, socket: string, port: number, healthzPort: number, caFile: string): string {
  // JSON is YAML; kubelet's lenient decoding ignores misspelled fields, so these names
  // were checked against k8s.io/kubelet/config/v1beta1 (e.g. podLogsDir, not podLogsDirectory).
  return JSON.stringify(
    {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      failCgroupV1: false, // kubelet >= 1.35 refuses cgroup v1 otherwise
      cgroupDriver: 'cgroupfs',
      containerRuntimeEndpoint: `unix://${socket}`,
      address: '127.0.0.1',
      port,
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      healthzPort,
      authentication: {
        x509: { clientCAFile: caFile },
        anonymous: { enabled: false },
        webhook: { enabled: false },
      },
      authorization: { mode: 'AlwaysAllow' },
      podLogsDir: path.join(dir, 'pod-logs'),
      volumePluginDir: path.join(dir, 'volume-plugins'),
      failSwapOn: false,
      resolvConf: '',
      evictionHard: {
        'memory.available': '100Mi',
        'nodefs.available': '1%',
        'imagefs.available': '1%',
        'nodefs.inodesFree': '1%',
      },
      // The images exist only locally: image GC must never remove them.
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      serializeImagePulls: false,
      nodeStatusUpdateFrequency: '2s',
      nodeStatusReportFrequency: '10s',
    },
    null,
    2,
  );
}

// ---------------------------------------------------------------------------

export async function startNode(cp: ControlPlane, opts: NodeOptions = {}): Promise<Node> {
  const binDir = await nodeBinaries();
  const t0 = Date.now();
  const timeoutMs = opts.startTimeoutMs ?? (Number(process.env.NETPIN_NODE_START_TIMEOUT_MS) || 120_000);
  const name = opts.nodeName ?? NODE_NAME;
  if (process.getuid?.() !== 0) throw new Error('startNode: a real node needs root (cgroups, netns, mounts)');

  await claimHost();
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'netpin-node-'));
  const socket = path.join(dir, 'containerd', 'containerd.sock');
  const before: HostSnapshot = {
    pid: process.pid,
    runDir: dir,
    binDir,
    containerdSocket: socket,
    sysctls: await readSysctls(),
    links: (await links()).map((l) => l.ifname),
    dirs: Object.fromEntries(await Promise.all(GUARDED_DIRS.map(async (d) => [d, await listDir(d)] as const))),
    daemons: [],
  };
  const procs: Proc[] = [];
  const saveState = (): Promise<void> => fsp.writeFile(STATE_FILE, JSON.stringify(before, null, 2));
  await saveState();
  const daemon = async (p: Proc): Promise<Proc> => {
    procs.push(p);
    const pid = p.child.pid;
    const start = pid === undefined ? undefined : await processStart(pid);
    if (pid !== undefined && start !== undefined) before.daemons.push({ pid, start });
    await saveState();
    return p;
  };

  const api = adminApi(cp);
  const ctr = async (args: string[]): Promise<string> =>
    run(path.join(binDir, 'ctr'), ['--address', socket, '--namespace', 'k8s.io', ...args], 120_000);

  let apiForwarder: net.Server | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const errors: string[] = [];
      // Let kubelet tear the pods down the real way (CNI DEL), if the API is still there.
      const kubelet = procs.find((p) => p.name === 'kubelet');
      if (kubelet && kubelet.exitInfo === undefined) {
        try {
          await drain(api, name, Math.min(timeoutMs, 30_000));
        } catch (err) {
          // A control plane stopped first is fine: undoHost below tears the pods down by force.
          if ((err as NodeJS.ErrnoException).code === 'ECONNREFUSED') {
            process.stderr.write('node: control plane already stopped; tearing pods down without kubelet\n');
          } else {
            errors.push(`drain: ${err instanceof Error ? err.message : String(err)}`);
          }
        }
      }
      for (const p of [...procs].reverse()) await stopProc(p, 10_000);
      await new Promise((r) => apiForwarder?.close(r) ?? r(undefined));
      errors.push(...(await undoHost(before)));
      api.destroy();
      const left = await findLeftovers(before);
      if (left.length === 0) {
        await fsp.rm(STATE_FILE, { force: true });
        await fsp.rmdir(STATE_DIR).catch(() => undefined);
        if (!process.env.NETPIN_NODE_KEEP) await fsp.rm(dir, { recursive: true, force: true, maxRetries: 3 });
      }
      if (left.length > 0 || errors.length > 0) {
        throw new Error(
          `node stop left host changes behind:\n${[...errors, ...left.map((l) => `left: ${l}`)].join('\n')}`,
        );
      }
    })();
    return stopping;
  };

  try {
    for (const d of [
      'containerd',
      'cni/net.d',
      'cni/ipam',
      'kubelet',
      'kubelet-pki',
      'pod-logs',
      'volume-plugins',
      'runc',
      'cdi',
    ]) {
      await fsp.mkdir(path.join(dir, d), { recursive: true });
    }
    await fsp.writeFile(path.join(dir, 'cni', 'net.d', '10-netpin.conflist'), cniConflist(dir));
    // The bridge exists before any pod, so that the forwarder to the API server can listen on its address.
    await run('ip', ['link', 'add', BRIDGE, 'type', 'bridge']);
    await run('ip', ['addr', 'add', `${GATEWAY}/${POD_CIDR.split('/')[1]}`, 'dev', BRIDGE]);
    await run('ip', ['link', 'set', BRIDGE, 'up']);
    apiForwarder = await forwardToApiServer(new URL(cp.url));
    const containerdToml = path.join(dir, 'containerd.toml');
    await fsp.writeFile(containerdToml, containerdConfig(dir, binDir, socket));

    // containerd finds containerd-shim-runc-v2 on its PATH.
    const containerd = await daemon(
      startProc(
        'containerd',
        path.join(binDir, 'containerd'),
        ['--config', containerdToml, '--log-level', 'info'],
        dir,
        {
          PATH: `${binDir}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
        },
      ),
    );
    await waitFor(containerd, 'containerd to serve', timeoutMs, async () => {
      if (!(await exists(socket))) return false;
      await ctr(['version']);
      return true;
    });
    const containerdUp = Date.now() - t0;

    const images = { pause: PAUSE_IMAGE, app: APP_IMAGE };
    for (const tar of ['pause.tar', 'app.tar']) {
      await ctr(['images', 'import', path.join(binDir, 'images', tar)]);
    }
    const listed = await ctr(['images', 'ls', '-q']);
    for (const ref of Object.values(images)) {
      if (!listed.split('\n').includes(ref))
        throw new Error(`image ${ref} missing after import; ctr images ls:\n${listed}`);
    }
    const imagesImported = Date.now() - t0;

    // kubelet's identity: O=system:nodes, CN=system:node:<name> (Node authorizer).
    const kubeletKubeconfig = await issueClientKubeconfig(cp, `kubelet-${name}`, {
      cn: `system:node:${name}`,
      o: ['system:nodes'],
    });
    await fsp.copyFile(kubeletKubeconfig, path.join(dir, 'kubelet.kubeconfig'));
    const caFile = path.join(dir, 'ca.crt');
    await fsp.writeFile(caFile, cp.caPem);
    const [kubeletPort, healthzPort] = [await freePort(), await freePort()];
    const kubeletYaml = path.join(dir, 'kubelet.yaml');
    await fsp.writeFile(kubeletYaml, kubeletConfig(dir, socket, kubeletPort, healthzPort, caFile));
    const kubelet = await daemon(
      startProc(
        'kubelet',
        path.join(binDir, 'kubelet'),
        [
          `--config=${kubeletYaml}`,
          `--kubeconfig=${path.join(dir, 'kubelet.kubeconfig')}`,
          `--root-dir=${path.join(dir, 'kubelet')}`,
          `--cert-dir=${path.join(dir, 'kubelet-pki')}`,
          `--hostname-override=${name}`,
          '--v=1',
          ...(opts.kubeletArgs ?? []),
        ],
        dir,
      ),
    );
    const kubeletStarted = Date.now() - t0;

    const scheduler = await daemon(
      startProc(
        'kube-scheduler',
        path.join(binDir, 'kube-scheduler'),
        [`--kubeconfig=${cp.kubeconfigPath}`, '--leader-elect=false', '--secure-port=0', ...(opts.schedulerArgs ?? [])],
        dir,
      ),
    );

    await waitFor(kubelet, `Node ${name} Ready`, timeoutMs, async () => {
      if (scheduler.exitInfo !== undefined) throw new Error('kube-scheduler exited');
      const r = await api('GET', `/api/v1/nodes/${name}`);
      if (r.status !== 200) return false;
      return (r.json.status?.conditions ?? []).some((c: WireJson) => c.type === 'Ready' && c.status === 'True');
    });
    if (scheduler.exitInfo !== undefined) {
      throw new Error(`kube-scheduler ${scheduler.exitInfo}; log ${scheduler.logPath}`);
    }
    // Without node-lifecycle-controller the not-ready taint set at registration stays forever.
    const taintDeadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await api('GET', `/api/v1/nodes/${name}`);
      const taints: WireJson[] = r.json?.spec?.taints ?? [];
      if (r.status === 200 && !taints.some((t) => t.key === 'node.kubernetes.io/not-ready')) break;
      if (Date.now() > taintDeadline) {
        throw new Error(
          `Node ${name} is Ready but keeps taints ${JSON.stringify(taints)}: is node-lifecycle-controller running ` +
            '(start the control plane with nodeControlPlaneOptions())?',
        );
      }
      await sleep(250);
    }
    const nodeReady = Date.now() - t0;

    return {
      name,
      dir,
      binDir,
      containerdSocket: socket,
      images,
      timings: { containerdUp, imagesImported, kubeletStarted, nodeReady },
      before,
      ctr,
      podHostVeth: (uid) => podHostVeth(uid),
      podShaping: (uid) => podShaping(uid),
      stop,
      leftovers: () => findLeftovers(before),
      podApiServer: { host: GATEWAY, port: POD_API_PORT },
    };
  } catch (err) {
    await stop().catch((e: unknown) => process.stderr.write(`node: ${String(e)}\n`));
    throw err;
  }
}

/** Node.podShaping, for a node run by another process (the host is the same). */
export async function podShaping(podUid: string): Promise<{ ingress?: string; egress?: string; ifb?: string }> {
  const veth = await podHostVeth(podUid);
  const rate = (qdiscs: string) => /qdisc tbf .*rate (\S+)/.exec(qdiscs)?.[1];
  const ingress = rate(await run('tc', ['qdisc', 'show', 'dev', veth]));
  const filters = await run('tc', ['filter', 'show', 'dev', veth, 'parent', 'ffff:']);
  const ifb = /redirect to device (\S+?)\)/i.exec(filters)?.[1];
  const egress = ifb ? rate(await run('tc', ['qdisc', 'show', 'dev', ifb])) : undefined;
  return { ingress, egress, ifb };
}

/** A TCP forwarder from the gateway to the API server on loopback: the `kubernetes` Service for pods. */
function forwardToApiServer(api: URL): Promise<net.Server> {
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(api.port), api.hostname);
    client.pipe(upstream).pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(POD_API_PORT, GATEWAY, () => resolve(server));
  });
}

/** Cordons the node and force-deletes its pods, then waits until kubelet has torn their networks down. */
async function drain(api: Api, node: string, timeoutMs: number): Promise<void> {
  const cordon = await api(
    'PATCH',
    `/api/v1/nodes/${node}`,
    { spec: { unschedulable: true } },
    'application/strategic-merge-patch+json',
  );
  if (cordon.status !== 200) throw new Error(`cordoning: ${cordon.status} ${JSON.stringify(cordon.json)}`);
  const list = await api('GET', `/api/v1/pods?fieldSelector=spec.nodeName%3D${encodeURIComponent(node)}`);
  if (list.status !== 200) throw new Error(`listing pods: ${list.status} ${JSON.stringify(list.json)}`);
  for (const p of list.json.items ?? []) {
    const del = await api('DELETE', `/api/v1/namespaces/${p.metadata.namespace}/pods/${p.metadata.name}`, {
      gracePeriodSeconds: 0,
    });
    if (del.status !== 200 && del.status !== 404)
      throw new Error(`deleting pod ${p.metadata.name}: ${del.status} ${JSON.stringify(del.json)}`);
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const veths = (await links()).filter((l) => l.master === BRIDGE && l.linkinfo?.info_kind === 'veth');
    if (veths.length === 0) return;
    if (Date.now() > deadline)
      throw new Error(`pod veths still attached after ${timeoutMs} ms: ${veths.map((l) => l.ifname).join(' ')}`);
    await sleep(250);
  }
}

/** The host end of the pod's eth0: the link whose ifindex is eth0's peer index in the pod's netns. */
async function podHostVeth(podUid: string): Promise<string> {
  const memory = (await cgroupRoots()).find((r) => path.basename(r) === 'memory') ?? '/sys/fs/cgroup/memory';
  const trees = (
    await Promise.all((await kubepodsCgroups()).filter((c) => c.startsWith(memory)).map(cgroupTree))
  ).flat();
  const podDirs = trees.filter((d) => path.basename(d) === `pod${podUid}`);
  const pids = await cgroupPids((await Promise.all(podDirs.map(cgroupTree))).flat());
  const pid = pids[0];
  if (pid === undefined) throw new Error(`no process of pod ${podUid} in ${memory}/kubepods`);
  const inPod = JSON.parse(
    await run('nsenter', ['-t', String(pid), '-n', 'ip', '-j', 'link', 'show', 'dev', 'eth0']),
  ) as Link[];
  const peer = inPod[0]?.link_index;
  if (peer === undefined) throw new Error(`pod ${podUid}: eth0 has no peer index`);
  const host = (await links()).find((l) => l.ifindex === peer);
  if (!host) throw new Error(`pod ${podUid}: no host link with ifindex ${peer}`);
  return host.ifname;
}
