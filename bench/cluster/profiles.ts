// The profiles of one more Deployments round in webhook-only and in netpin mode, outside the
// figures: kube-apiserver's (its /debug/pprof) in both, netpin's own (V8) in the second.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as k from '../../harness/cluster.js';
import type * as cps from '../../harness/controlplane.js';
import { profilePreloadEnv, summarizeProfileDir, type FrameMatch } from '../profile.js';
import type { ClusterRun } from './run.js';
import { round2, type ApiserverProfile, type ClusterReport, type Mode } from './types.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const execFileP = promisify(execFile);

// Long enough for a Deployments round (about 9 s here under netpin); a longer round is profiled in part.
const APISERVER_PROFILE_SECONDS = 12;

/** Where kube-apiserver spends CPU, by the frames on the stack (k8s.io names of v1.36). */
const APISERVER_CATEGORIES: Array<[string, string]> = [
  ['everything', '.'],
  ['custom resources: IPClaim creates, IPPool status', 'crdHandler'],
  ['mutating webhook calls: review out, patch applied', 'mutatingDispatcher'],
  ['validating webhook calls', 'validatingDispatcher'],
  ['managed fields, on every write', 'managedfields'],
  ['etcd writes', 'etcd3.*store.*(Create|GuaranteedUpdate)'],
  ['watches served', 'WatchServer|cacheWatcher'],
  ['Go garbage collector', 'gcBgMarkWorker'],
];

/** The API server's own CPU profile (its /debug/pprof endpoint, on by default) over the next `seconds`. */
function apiserverPprof(cp: cps.ControlPlane, seconds: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const tls = {
      ca: cp.caPem,
      cert: readFileSync(join(cp.dir, 'admin.crt')),
      key: readFileSync(join(cp.dir, 'admin.key')),
    };
    https
      .get(`${cp.url}/debug/pprof/profile?seconds=${seconds}`, { ...tls, timeout: (seconds + 30) * 1000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`pprof: HTTP ${res.statusCode}`)),
        );
      })
      .on('error', reject);
  });
}

/** Per category, the CPU of the samples whose stack matches (go tool pprof -focus); undefined without go. */
async function summarizeGoProfile(file: string, pods: number): Promise<ApiserverProfile | undefined> {
  const focused = async (re: string): Promise<number> => {
    const { stdout } = await execFileP('go', [
      'tool',
      'pprof',
      '-top',
      '-nodecount=100000',
      '-nodefraction=0',
      '-edgefraction=0',
      `-focus=${re}`,
      file,
    ]);
    // "Showing nodes accounting for 1.23s, 45.6% of 2.70s total": with every node shown, the focused total.
    const m = /Showing nodes accounting for ([\d.]+)(m?s)/.exec(stdout);
    return m ? Number(m[1]) / (m[2] === 'ms' ? 1000 : 1) : 0;
  };
  try {
    const msPerPod: ApiserverProfile['msPerPod'] = [];
    for (const [what, re] of APISERVER_CATEGORIES)
      msPerPod.push({ what, ms: round2((1000 * (await focused(re))) / pods) });
    return { seconds: APISERVER_PROFILE_SECONDS, msPerPod };
  } catch {
    return undefined; // no go on the PATH: the summary is left out, the figures stand
  }
}

/**
 * KubeLedger's calls that write an IPClaim, up to the request going out: the sampling profiler sees no
 * caller under the response's processing (undici and client-node frames on a fresh stack), so the share
 * of the samples with one of these on the stack is a lower bound of what the writes cost netpin.
 */
const CLAIM_WRITE_FRAMES: FrameMatch[] = [
  {
    label: 'IPClaim writes (KubeLedger claim, bind, renew, release; until the request is sent)',
    file: 'dist/src/cluster/kube-ledger.js',
    functions: ['claim', 'bind', 'renew', 'release', 'patchClaim'],
  },
];

/**
 * Two more Deployments rounds, outside the figures: the API server profiled in webhook-only and
 * netpin mode (where its extra CPU goes), and netpin itself in netpin mode.
 */
export async function profileRounds(run: ClusterRun, root: string): Promise<NonNullable<ClusterReport['profile']>> {
  const dir = mkdtempSync(join(tmpdir(), 'netpin-bench-cluster-profile-'));
  const apiserver: Partial<Record<Mode, ApiserverProfile>> = {};
  // The profile is collected before the teardown starts, so that namespace deletion stays out of it.
  const profileApiserver = (mode: Mode) => {
    let pending: Promise<Buffer> | undefined;
    const file = join(dir, `apiserver-${mode}.pprof`);
    return {
      start: async () => void (pending = apiserverPprof(run.cp, APISERVER_PROFILE_SECONDS)),
      collect: async () => writeFileSync(file, await pending!),
      summarize: async (pods: number) => {
        const summary = await summarizeGoProfile(file, pods);
        if (summary) apiserver[mode] = summary;
      },
    };
  };

  const webhook = profileApiserver('webhook');
  const w = await run.round('deployments', 'webhook', 0, { start: webhook.start, beforeTeardown: webhook.collect });
  await webhook.summarize(w.pods);

  const file = join(dir, 'netpin.cpuprofile');
  await run.replaceNetpin({ env: profilePreloadEnv(root, file) });
  const child = run.netpin.child;
  const withNetpin = profileApiserver('netpin');
  const r = await run.round('deployments', 'netpin', 0, {
    start: async () => {
      child.kill('SIGUSR2');
      await sleep(200); // the profiler starts on the child's event loop
      await withNetpin.start();
    },
    // Stopped while its pods still exist, so that it exits at once: with the pods gone, stop()
    // would wait for the reconciler to release every claim.
    beforeTeardown: async () => {
      child.kill('SIGUSR2');
      await k.waitFor('the profile to be written', async () => existsSync(file), 30_000, 100);
      await run.netpin.stop();
      await withNetpin.collect();
    },
  });
  await withNetpin.summarize(r.pods);
  const profile = {
    netpin: {
      ...summarizeProfileDir(dir, root, 15, CLAIM_WRITE_FRAMES),
      cpuUsPerPod: (1e6 * (r.cpu.netpin ?? 0)) / r.pods,
    },
    ...(apiserver.webhook && apiserver.netpin
      ? { apiserver: { webhook: apiserver.webhook, netpin: apiserver.netpin } }
      : {}),
  };
  rmSync(dir, { recursive: true, force: true });
  return profile;
}
