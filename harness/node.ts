// A real single Kubernetes node for end-to-end tests, next to the control plane of
// controlplane.ts: containerd (+ shim) with runc, the CNI reference plugins (bridge,
// host-local, bandwidth), kubelet and kube-scheduler, all built from Go modules by
// test/node/build.sh, with OCI images built locally (never pulled). This module starts and stops
// it; node/ holds the steps by concern (images, configs, daemons, network, host state).
//
// The traps it avoids are explained where they are avoided, with the upstream code behind each.
//
// Unlike the control plane, a node changes the host: cgroups, a bridge, veths, ifb
// devices, netns mounts, sysctls and a few fixed paths. startNode() records the host
// state first (also in STATE_DIR, so that a run that died is cleaned up by the next one)
// and stop() undoes all of it; leftovers() says what is still there.

import * as fsp from 'node:fs/promises';
import type * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { DEFAULT_CONTROLLERS, type ControlPlane, type StartOptions } from './controlplane.js';
import { stopProc, type Proc } from './daemon.js';
import { adminApi, drain, type Api } from './node/api.js';
import { CNI_NETWORK, cniConflist, installedCniDir, type HostLocalRange, type NodeIpam } from './node/configs.js';
import { startContainerd, startKubelet, startScheduler, waitNodeReady, type NodeRun } from './node/daemons.js';
import { processStart, run } from './node/host.js';
import {
  claimHost,
  findLeftovers,
  snapshotHost,
  STATE_DIR,
  STATE_FILE,
  undoHost,
  type HostSnapshot,
} from './node/host-state.js';
import { importImages, nodeBinaries } from './node/images.js';
import {
  BRIDGE,
  forwardToApiServer,
  GATEWAY,
  POD_API_PORT,
  POD_CIDR,
  podHostVeth,
  podShaping,
} from './node/network.js';

export { APP_IMAGE, APP_PORT, kubectlBinDir, nodeBinaries } from './node/images.js';
export { BRIDGE, podShaping, POOL_SUBNETS } from './node/network.js';
export { findLeftovers, STATE_FILE, type HostSnapshot } from './node/host-state.js';
export { kubepodsCgroups } from './node/host.js';

/**
 * The node's name, and so its Hostname address. kubelet rejects a loopback --node-ip
 * ("nodeIP can't be loopback address", pkg/kubelet/kubelet_node_status.go validateNodeIP),
 * so the apiserver reaches the loopback-only kubelet through the Hostname address instead:
 * "localhost" resolves to 127.0.0.1 without touching /etc/hosts. InternalIP (and so
 * status.hostIP) stays the address kubelet detects on the default-route interface.
 */
const NODE_NAME = 'localhost';

export interface NodeOptions {
  /** node name (default netpin-node) */
  nodeName?: string;
  /** per-step timeout in ms (default 120 s; env NETPIN_NODE_START_TIMEOUT_MS) */
  startTimeoutMs?: number;
  /** extra kubelet flags, appended last */
  kubeletArgs?: string[];
  /** extra kube-scheduler flags, appended last */
  schedulerArgs?: string[];
  /** The conflist's IPAM: netpin-ipam delegating to host-local (default), or host-local alone. */
  ipam?: NodeIpam;
  /**
   * What host-local hands out (default HOST_LOCAL_RANGE, 253 addresses): the benchmarks run hundreds of
   * pods on host-local alone, outside netpin's pools.
   */
  hostLocalRange?: HostLocalRange;
}

export interface Node {
  name: string;
  /** per-run dir: configs, logs (*.log), containerd root/state, kubelet root, CNI IPAM data */
  dir: string;
  binDir: string;
  /** The CNI bin dir the chart's DaemonSet installs netpin-ipam into; containerd looks there first. */
  cniDir: string;
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
  /**
   * Rewrites the conflist with this IPAM (same host-local range): containerd reloads it on the write
   * (internal/cri/server/cni_conf_syncer.go), and pods started from then on use it.
   */
  useIpam(ipam: NodeIpam): Promise<void>;
  /** host-local's data dir: one file per address it holds, under the network's name. */
  hostLocalDir: string;
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
 * node-lifecycle-controller, without which the not-ready taint never leaves; the daemonset-controller
 * for the chart's DaemonSet.
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
    // The chart's DaemonSet that installs netpin-ipam on the node.
    'daemonset-controller',
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

const RUN_DIRS = [
  'containerd',
  'cni/net.d',
  'cni/ipam',
  'cni/bin',
  'kubelet',
  'kubelet-pki',
  'pod-logs',
  'volume-plugins',
  'runc',
  'cdi',
];

/** The run dir's layout, the CNI config, and the bridge with the forwarder to the API server. */
async function prepareHost(dir: string, cp: ControlPlane, ipam: NodeIpam, range?: HostLocalRange): Promise<net.Server> {
  for (const d of RUN_DIRS) await fsp.mkdir(path.join(dir, d), { recursive: true });
  await fsp.writeFile(conflistPath(dir), cniConflist(dir, ipam, range));
  // The bridge exists before any pod, so that the forwarder to the API server can listen on its address.
  await run('ip', ['link', 'add', BRIDGE, 'type', 'bridge']);
  await run('ip', ['addr', 'add', `${GATEWAY}/${POD_CIDR.split('/')[1]}`, 'dev', BRIDGE]);
  await run('ip', ['link', 'set', BRIDGE, 'up']);
  return forwardToApiServer(new URL(cp.url));
}

const conflistPath = (dir: string): string => path.join(dir, 'cni', 'net.d', '10-netpin.conflist');

interface Stoppable {
  name: string;
  dir: string;
  timeoutMs: number;
  api: Api;
  before: HostSnapshot;
  procs: Proc[];
  apiForwarder(): net.Server | undefined;
}

/** Lets kubelet tear the pods down the real way (CNI DEL), if the API is still there. */
async function drainIfKubelet(s: Stoppable): Promise<string[]> {
  const kubelet = s.procs.find((p) => p.name === 'kubelet');
  if (!kubelet || kubelet.exitInfo !== undefined) return [];
  try {
    await drain(s.api, s.name, Math.min(s.timeoutMs, 30_000));
    return [];
  } catch (err) {
    // A control plane stopped first is fine: undoHost below tears the pods down by force.
    if ((err as NodeJS.ErrnoException).code === 'ECONNREFUSED') {
      process.stderr.write('node: control plane already stopped; tearing pods down without kubelet\n');
      return [];
    }
    return [`drain: ${err instanceof Error ? err.message : String(err)}`];
  }
}

async function stopNode(s: Stoppable): Promise<void> {
  const errors = await drainIfKubelet(s);
  for (const p of [...s.procs].reverse()) await stopProc(p, 10_000);
  await new Promise((r) => s.apiForwarder()?.close(r) ?? r(undefined));
  errors.push(...(await undoHost(s.before)));
  s.api.destroy();
  const left = await findLeftovers(s.before);
  if (left.length === 0) {
    await fsp.rm(STATE_FILE, { force: true });
    await fsp.rmdir(STATE_DIR).catch(() => undefined);
    if (!process.env.NETPIN_NODE_KEEP) await fsp.rm(s.dir, { recursive: true, force: true, maxRetries: 3 });
  }
  if (left.length > 0 || errors.length > 0) {
    throw new Error(`node stop left host changes behind:\n${[...errors, ...left.map((l) => `left: ${l}`)].join('\n')}`);
  }
}

export async function startNode(cp: ControlPlane, opts: NodeOptions = {}): Promise<Node> {
  const binDir = await nodeBinaries();
  const t0 = Date.now();
  const timeoutMs = opts.startTimeoutMs ?? (Number(process.env.NETPIN_NODE_START_TIMEOUT_MS) || 120_000);
  const name = opts.nodeName ?? NODE_NAME;
  if (process.getuid?.() !== 0) throw new Error('startNode: a real node needs root (cgroups, netns, mounts)');

  await claimHost();
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'netpin-node-'));
  const socket = path.join(dir, 'containerd', 'containerd.sock');
  const before = await snapshotHost(dir, binDir, socket);
  const procs: Proc[] = [];
  const saveState = (): Promise<void> => fsp.writeFile(STATE_FILE, JSON.stringify(before, null, 2));
  await saveState();
  const api = adminApi(cp);
  const r: NodeRun = {
    cp,
    name,
    dir,
    binDir,
    socket,
    timeoutMs,
    api,
    ctr: (args) => run(path.join(binDir, 'ctr'), ['--address', socket, '--namespace', 'k8s.io', ...args], 120_000),
    daemon: async (p) => {
      procs.push(p);
      const pid = p.child.pid;
      const start = pid === undefined ? undefined : await processStart(pid);
      if (pid !== undefined && start !== undefined) before.daemons.push({ pid, start });
      await saveState();
      return p;
    },
  };

  let apiForwarder: net.Server | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= stopNode({ name, dir, timeoutMs, api, before, procs, apiForwarder: () => apiForwarder }));

  try {
    apiForwarder = await prepareHost(dir, cp, opts.ipam ?? 'netpin-ipam', opts.hostLocalRange);
    await startContainerd(r);
    const containerdUp = Date.now() - t0;
    const images = await importImages(r.ctr, binDir);
    const imagesImported = Date.now() - t0;
    const kubelet = await startKubelet(r, opts.kubeletArgs ?? []);
    const kubeletStarted = Date.now() - t0;
    const scheduler = await startScheduler(r, opts.schedulerArgs ?? []);
    await waitNodeReady(r, kubelet, scheduler);
    const nodeReady = Date.now() - t0;

    return {
      name,
      dir,
      binDir,
      cniDir: installedCniDir(dir),
      containerdSocket: socket,
      images,
      timings: { containerdUp, imagesImported, kubeletStarted, nodeReady },
      before,
      ctr: r.ctr,
      podHostVeth: (uid) => podHostVeth(uid),
      podShaping: (uid) => podShaping(uid),
      useIpam: (ipam) => fsp.writeFile(conflistPath(dir), cniConflist(dir, ipam, opts.hostLocalRange)),
      hostLocalDir: path.join(dir, 'cni', 'ipam', CNI_NETWORK),
      stop,
      leftovers: () => findLeftovers(before),
      podApiServer: { host: GATEWAY, port: POD_API_PORT },
    };
  } catch (err) {
    await stop().catch((e: unknown) => process.stderr.write(`node: ${String(e)}\n`));
    throw err;
  }
}
