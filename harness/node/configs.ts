// The node's configuration files: containerd's TOML, the CNI conflist and kubelet's config.
import * as path from 'node:path';
import { PAUSE_IMAGE } from './images.js';
import { BRIDGE, GATEWAY, HOST_LOCAL_RANGE, POD_CIDR } from './network.js';

/** The IPAM of the node's conflist. */
export type NodeIpam = 'netpin-ipam' | 'host-local';

/** The conflist's network name: host-local keeps its addresses in a dir of that name. */
export const CNI_NETWORK = 'netpin-test';

/** The addresses host-local hands out, first and last, in the bridge's subnet. */
export interface HostLocalRange {
  start: string;
  end: string;
}

/** Where the chart's DaemonSet installs netpin-ipam: containerd looks here before the built plugins. */
export function installedCniDir(dir: string): string {
  return path.join(dir, 'cni', 'bin');
}

export function containerdConfig(dir: string, binDir: string, socket: string): string {
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
    `    bin_dirs = [${q(installedCniDir(dir))}, ${q(binDir)}]`,
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

/**
 * The node's CNI chain: bridge, then bandwidth. Its IPAM is netpin-ipam delegating to host-local, or
 * host-local alone (`host-local`), for a netpin that writes another CNI's annotations: netpin-ipam fails a
 * pod that has netpin.io/allocated without the netpin.io/ipam only --cni netpin-ipam writes.
 */
export function cniConflist(dir: string, ipam: NodeIpam, range: HostLocalRange = HOST_LOCAL_RANGE): string {
  const hostLocal = {
    type: 'host-local',
    ranges: [[{ subnet: POD_CIDR, rangeStart: range.start, rangeEnd: range.end, gateway: GATEWAY }]],
    routes: [{ dst: '0.0.0.0/0' }],
    dataDir: path.join(dir, 'cni', 'ipam'),
  };
  return JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: CNI_NETWORK,
      plugins: [
        {
          type: 'bridge',
          bridge: BRIDGE,
          isGateway: true,
          // No ipMasq: this machine has no iptables, and nothing leaves the host anyway.
          ipMasq: false,
          hairpinMode: true,
          ...(ipam === 'netpin-ipam'
            ? {
                // containerd hands the pod's annotations to this plugin and its IPAM (internal/cri/server/sandbox_run.go).
                capabilities: { 'io.kubernetes.cri.pod-annotations': true },
                // Pods netpin gives no address get host-local's, in its part of the bridge's subnet.
                ipam: { type: 'netpin-ipam', delegate: hostLocal },
              }
            : { ipam: hostLocal }),
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

export function kubeletConfig(dir: string, socket: string, port: number, healthzPort: number, caFile: string): string {
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
