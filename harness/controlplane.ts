// Real Kubernetes control plane for end-to-end tests: etcd + kube-apiserver +
// kube-controller-manager on loopback, built from Go modules by
// test/controlplane/build.sh (see docs in that directory's go.mod files).
//
// There is no scheduler and no kubelet: Pods are created by the controllers but
// stay Pending.

import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { kubeconfig, makePki, makeWebhookClient } from './controlplane/certs.js';
import { apiserverArgs, startApiserver, startControllerManager, startEtcd, type Run } from './controlplane/daemons.js';
import type { ControlPlane, StartOptions } from './controlplane/types.js';
import { freePort, stopProc, type TlsClient } from './daemon.js';
import { repoPath, runBuildScript } from './repo.js';

export type { ControlPlane, StartOptions, WebhookClient } from './controlplane/types.js';
export { issueClientKubeconfig } from './controlplane/certs.js';
// Where they lived before harness/ was split; the tests import them from here.
export { freePort, sleep } from './daemon.js';
export { repoPath } from './repo.js';

export const DEFAULT_CONTROLLERS: readonly string[] = [
  'statefulset-controller',
  'replicaset-controller',
  'deployment-controller',
  'garbage-collector-controller',
  'namespace-controller',
];

const BUILD_SCRIPT = repoPath('test/controlplane/build.sh');

let binariesPromise: Promise<string> | undefined;

/** Runs test/controlplane/build.sh (stderr inherited) and returns the bin dir it prints last. */
export function binaries(): Promise<string> {
  binariesPromise ??= runBuildScript(BUILD_SCRIPT, ['kube-apiserver']).catch((err: unknown) => {
    binariesPromise = undefined; // allow a retry
    throw err;
  });
  return binariesPromise;
}

export async function startControlPlane(opts: StartOptions = {}): Promise<ControlPlane> {
  const binDir = await binaries();
  const timeoutMs = opts.startTimeoutMs ?? (Number(process.env.NETPIN_CONTROLPLANE_START_TIMEOUT_MS) || 120_000);
  const controllers = opts.controllers ?? [...DEFAULT_CONTROLLERS];
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'netpin-cp-'));
  const r: Run = { binDir, dir, timeoutMs, procs: [] };

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      for (const p of [...r.procs].reverse()) await stopProc(p);
      if (!process.env.NETPIN_CONTROLPLANE_KEEP) {
        await fsp.rm(dir, { recursive: true, force: true, maxRetries: 3 });
      }
    })();
    return stopping;
  };

  try {
    const [, webhooks] = await Promise.all([
      makePki(dir, opts.kubeletClientCert ?? false, opts.apiserverIPs),
      opts.webhookClientCert === false ? undefined : makeWebhookClient(dir),
    ]);
    const [caPem, adminCert, adminKey] = (await Promise.all(
      ['ca.crt', 'admin.crt', 'admin.key'].map((f) => fsp.readFile(path.join(dir, f), 'utf8')),
    )) as [string, string, string];
    const tls: TlsClient = { ca: caPem, cert: adminCert, key: adminKey };

    const etcdUrl = await startEtcd(r);
    const url = `https://127.0.0.1:${await freePort()}`;
    const args = await apiserverArgs(r, opts, etcdUrl, url, webhooks?.admissionConfig);
    let apiserver = await startApiserver(r, args, url, tls);
    const kubeconfigPath = path.join(dir, 'admin.kubeconfig');
    await fsp.writeFile(kubeconfigPath, kubeconfig(url, caPem, adminCert, adminKey), { mode: 0o600 });
    await startControllerManager(r, opts, controllers, kubeconfigPath);

    return {
      url,
      kubeconfigPath,
      caPem,
      dir,
      binDir,
      stop,
      signalApiserver: (signal) => void apiserver.child.kill(signal),
      stopApiserver: () => stopProc(apiserver),
      startApiserver: async () => {
        apiserver = await startApiserver(r, args, url, tls, apiserver);
      },
      ...(webhooks ? { webhookClient: webhooks.client } : {}),
    };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}
