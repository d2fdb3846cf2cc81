// The node's binaries, built from Go modules by test/node/build.sh, and its OCI images, built
// locally by the same script and imported with ctr (never pulled).
import * as path from 'node:path';
import { repoPath, runBuildScript } from '../repo.js';

/** Image references: local-looking names no registry serves, imported with ctr. */
export const PAUSE_IMAGE = 'netpin.test/pause:1';
export const APP_IMAGE = 'netpin.test/app:1';
/** The app image serves HTTP here ($PORT); GET /healthz answers 200. */
export const APP_PORT = 8080;

const BUILD_SCRIPT = repoPath('test/node/build.sh');

let binariesPromise: Promise<string> | undefined;

/** Runs test/node/build.sh (stderr inherited) and returns the bin dir it prints last. */
export function nodeBinaries(): Promise<string> {
  binariesPromise ??= runBuildScript(BUILD_SCRIPT, [
    'kubelet',
    'containerd',
    'runc',
    'bridge',
    'netpin-ipam',
    'images/pause.tar',
    'images/app.tar',
  ]).catch((err: unknown) => {
    binariesPromise = undefined; // allow a retry
    throw err;
  });
  return binariesPromise;
}

let kubectlPromise: Promise<string> | undefined;

/**
 * The bin dir of the node's kubectl, building only kubectl (test/node/build.sh kubectl): for
 * control planes without a node (`npm run clusterset`), whose users need a kubectl of their version.
 */
export function kubectlBinDir(): Promise<string> {
  kubectlPromise ??= runBuildScript(BUILD_SCRIPT, ['kubectl'], ['kubectl']).catch((err: unknown) => {
    kubectlPromise = undefined; // allow a retry
    throw err;
  });
  return kubectlPromise;
}

/** Imports the pause and app images into the node's containerd, and checks that both are there. */
export async function importImages(
  ctr: (args: string[]) => Promise<string>,
  binDir: string,
): Promise<{ pause: string; app: string }> {
  const images = { pause: PAUSE_IMAGE, app: APP_IMAGE };
  for (const tar of ['pause.tar', 'app.tar']) {
    await ctr(['images', 'import', path.join(binDir, 'images', tar)]);
  }
  const listed = await ctr(['images', 'ls', '-q']);
  for (const ref of Object.values(images)) {
    if (!listed.split('\n').includes(ref))
      throw new Error(`image ${ref} missing after import; ctr images ls:\n${listed}`);
  }
  return images;
}
