// The node's daemons, each started as one step of startNode (node.ts): containerd, kubelet and
// kube-scheduler, then the wait until the Node is Ready and schedulable.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { issueClientKubeconfig, type ControlPlane } from '../controlplane.js';
import { freePort, sleep, startProc, waitFor, type Proc } from '../daemon.js';
import type { WireJson } from '../json.js';
import type { Api } from './api.js';
import { containerdConfig, kubeletConfig } from './configs.js';
import { exists } from './host.js';

/** What the steps of one node's start share. */
export interface NodeRun {
  cp: ControlPlane;
  name: string;
  /** per-run dir: configs, logs, containerd root/state, kubelet root, CNI IPAM data */
  dir: string;
  binDir: string;
  socket: string;
  timeoutMs: number;
  api: Api;
  ctr(args: string[]): Promise<string>;
  /** records a started daemon, so that stop() and a later run's cleanup find it */
  daemon(p: Proc): Promise<Proc>;
}

export async function startContainerd(r: NodeRun): Promise<void> {
  const toml = path.join(r.dir, 'containerd.toml');
  await fsp.writeFile(toml, containerdConfig(r.dir, r.binDir, r.socket));
  // containerd finds containerd-shim-runc-v2 on its PATH.
  const containerd = await r.daemon(
    startProc('containerd', path.join(r.binDir, 'containerd'), ['--config', toml, '--log-level', 'info'], r.dir, {
      PATH: `${r.binDir}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
    }),
  );
  await waitFor(containerd, 'containerd to serve', r.timeoutMs, async () => {
    if (!(await exists(r.socket))) return false;
    await r.ctr(['version']);
    return true;
  });
}

export async function startKubelet(r: NodeRun, extraArgs: string[]): Promise<Proc> {
  // kubelet's identity: O=system:nodes, CN=system:node:<name> (Node authorizer).
  const kubeconfig = await issueClientKubeconfig(r.cp, `kubelet-${r.name}`, {
    cn: `system:node:${r.name}`,
    o: ['system:nodes'],
  });
  await fsp.copyFile(kubeconfig, path.join(r.dir, 'kubelet.kubeconfig'));
  const caFile = path.join(r.dir, 'ca.crt');
  await fsp.writeFile(caFile, r.cp.caPem);
  const [port, healthzPort] = [await freePort(), await freePort()];
  const yaml = path.join(r.dir, 'kubelet.yaml');
  await fsp.writeFile(yaml, kubeletConfig(r.dir, r.socket, port, healthzPort, caFile));
  return r.daemon(
    startProc(
      'kubelet',
      path.join(r.binDir, 'kubelet'),
      [
        `--config=${yaml}`,
        `--kubeconfig=${path.join(r.dir, 'kubelet.kubeconfig')}`,
        `--root-dir=${path.join(r.dir, 'kubelet')}`,
        `--cert-dir=${path.join(r.dir, 'kubelet-pki')}`,
        `--hostname-override=${r.name}`,
        '--v=1',
        ...extraArgs,
      ],
      r.dir,
    ),
  );
}

export function startScheduler(r: NodeRun, extraArgs: string[]): Promise<Proc> {
  return r.daemon(
    startProc(
      'kube-scheduler',
      path.join(r.binDir, 'kube-scheduler'),
      [`--kubeconfig=${r.cp.kubeconfigPath}`, '--leader-elect=false', '--secure-port=0', ...extraArgs],
      r.dir,
    ),
  );
}

/** Waits until the Node is Ready and has lost the not-ready taint it is registered with. */
export async function waitNodeReady(r: NodeRun, kubelet: Proc, scheduler: Proc): Promise<void> {
  await waitFor(kubelet, `Node ${r.name} Ready`, r.timeoutMs, async () => {
    if (scheduler.exitInfo !== undefined) throw new Error('kube-scheduler exited');
    const res = await r.api('GET', `/api/v1/nodes/${r.name}`);
    if (res.status !== 200) return false;
    return (res.json.status?.conditions ?? []).some((c: WireJson) => c.type === 'Ready' && c.status === 'True');
  });
  if (scheduler.exitInfo !== undefined) {
    throw new Error(`kube-scheduler ${scheduler.exitInfo}; log ${scheduler.logPath}`);
  }
  // Without node-lifecycle-controller the not-ready taint set at registration stays forever.
  const taintDeadline = Date.now() + r.timeoutMs;
  for (;;) {
    const res = await r.api('GET', `/api/v1/nodes/${r.name}`);
    const taints: WireJson[] = res.json?.spec?.taints ?? [];
    if (res.status === 200 && !taints.some((t) => t.key === 'node.kubernetes.io/not-ready')) return;
    if (Date.now() > taintDeadline) {
      throw new Error(
        `Node ${r.name} is Ready but keeps taints ${JSON.stringify(taints)}: is node-lifecycle-controller running ` +
          '(start the control plane with nodeControlPlaneOptions())?',
      );
    }
    await sleep(250);
  }
}
