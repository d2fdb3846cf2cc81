// netpin as an operator installs it: its image built by `npm run image`, imported into the test
// node's containerd, and the chart installed with helm; the webhooks reach its pods in-cluster.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { repoPath, type ControlPlane } from './controlplane.js';
import { CHART_DIR, Helm, setArgs } from './helm.js';
import type { Node } from './node.js';

const execFileP = promisify(execFile);
const IMAGE_SCRIPT = repoPath('scripts/image.sh');

const IMAGE = { repository: 'netpin.test/netpin', tag: 'e2e' };

let built: Promise<string> | undefined;

/** Runs `npm run image` once per process; returns the archive. */
export function netpinImage(): Promise<string> {
  built ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'netpin-image-'));
    const archive = join(dir, 'netpin.tar');
    try {
      await execFileP('bash', [IMAGE_SCRIPT, '--tag', `${IMAGE.repository}:${IMAGE.tag}`, '--out', archive], {
        maxBuffer: 64 << 20,
        timeout: 600_000,
      });
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    return archive;
  })();
  return built;
}

/** Removes the archive netpinImage() wrote (and its temp dir), once nothing will import it again. */
export async function removeNetpinImage(): Promise<void> {
  const archive = await built?.catch(() => undefined);
  built = undefined;
  if (archive) rmSync(dirname(archive), { recursive: true, force: true });
}

export interface Installed {
  namespace: string;
  helm: Helm;
  uninstall(): Promise<void>;
  /** Removes helm's own dirs without uninstalling, when the cluster goes away with the release. */
  discard(): void;
}

/** Imports the image into the node and installs the chart, waiting until netpin's pods are Ready. */
export async function installNetpin(
  cp: ControlPlane,
  node: Node,
  values: Record<string, string | number | boolean>,
): Promise<Installed> {
  await node.ctr(['images', 'import', await netpinImage()]);
  const home = mkdtempSync(join(tmpdir(), 'netpin-helm-'));
  const helm = new Helm(cp.binDir, home, cp.kubeconfigPath);
  const namespace = 'netpin-system';
  const env = [
    { name: 'KUBERNETES_SERVICE_HOST', value: node.podApiServer.host },
    { name: 'KUBERNETES_SERVICE_PORT', value: String(node.podApiServer.port) },
  ];
  try {
    await helm.ok([
      'install',
      'netpin',
      CHART_DIR,
      '-n',
      namespace,
      '--create-namespace',
      '--wait',
      '--timeout',
      '180s',
      ...setArgs({
        'image.repository': IMAGE.repository,
        'image.tag': IMAGE.tag,
        'image.pullPolicy': 'Never',
        // The node's conflist names netpin-ipam: the chart's DaemonSet puts it where containerd looks first.
        'ipamPlugin.enabled': true,
        'ipamPlugin.cniBinDir': node.cniDir,
        ...values,
      }),
      '--set-json',
      `extraEnv=${JSON.stringify(env)}`,
    ]);
  } catch (err) {
    rmSync(home, { recursive: true, force: true });
    throw err;
  }
  return {
    namespace,
    helm,
    async uninstall() {
      try {
        await helm.ok(['uninstall', 'netpin', '-n', namespace, '--wait', '--timeout', '120s']);
      } finally {
        rmSync(home, { recursive: true, force: true });
      }
    },
    discard() {
      rmSync(home, { recursive: true, force: true });
    },
  };
}
