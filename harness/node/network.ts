// The pod network of the node: the bridge, the links the CNI plugins make, the pods' way to the
// API server, and what shapes a pod's traffic.
import * as net from 'node:net';
import * as path from 'node:path';
import { cgroupPids, cgroupRoots, cgroupTree, kubepodsCgroups, links, run, type Link } from './host.js';

/**
 * The bridge's subnet. An IPv4 bridge carries one gateway address (the bridge plugin refuses a second:
 * plugins/main/bridge ensureAddr), so netpin's pools lie in this subnet too, as its spec.subnets says
 * (POOL_SUBNETS), and host-local keeps to HOST_LOCAL_RANGE, apart from them.
 */
export const POD_CIDR = '10.244.0.0/16';
/** What host-local hands out: pods netpin gives no address, such as netpin's own. */
export const HOST_LOCAL_RANGE = { start: '10.244.0.2', end: '10.244.0.254' };
/** The IPv6 subnet netpin's dual-stack pools lie in; the bridge plugin adds its gateway to the bridge. */
const POD_CIDR_V6 = 'fd00:244::/64';
/** Our own bridge name, so that a host's cni0 is never touched. */
export const BRIDGE = 'netpin0';
/** The bridge's address, the pods' gateway; the host side of the pod network. */
export const GATEWAY = '10.244.0.1';
const GATEWAY_V6 = 'fd00:244::1';
/** spec.subnets of a netpin IPPool on this node: the bridge's subnets and gateways. */
export const POOL_SUBNETS = [
  { cidr: POD_CIDR, gateway: GATEWAY },
  { cidr: POD_CIDR_V6, gateway: GATEWAY_V6 },
];
/**
 * Where pods reach the API server. Service IPs do not route here (no kube-proxy), so a
 * forwarder on the gateway stands in for the `kubernetes` Service; pods that talk to the API
 * server (netpin) are given this address as KUBERNETES_SERVICE_HOST/PORT.
 */
export const POD_API_PORT = 6443;

export function isOurVeth(l: Link, before: Set<string>): boolean {
  // The bridge plugin names host veths veth<8 hex> (plugins/pkg/ip link_linux.go RandomVethName).
  return (
    l.linkinfo?.info_kind === 'veth' &&
    (l.master === BRIDGE || (!before.has(l.ifname) && /^veth[0-9a-f]{8}$/.test(l.ifname)))
  );
}

export function isOurIfb(l: Link, before: Set<string>): boolean {
  // The bandwidth plugin names its ifb "bwp" + a hash of the container id (plugins/meta/bandwidth).
  return l.linkinfo?.info_kind === 'ifb' && !before.has(l.ifname) && l.ifname.startsWith('bwp');
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
export function forwardToApiServer(api: URL): Promise<net.Server> {
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

/** The host end of the pod's eth0: the link whose ifindex is eth0's peer index in the pod's netns. */
export async function podHostVeth(podUid: string): Promise<string> {
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
