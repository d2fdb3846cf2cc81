// Part 3: a real etcd + kube-apiserver + kube-controller-manager (harness/), and the time
// until every pod of 100 Deployments x 10 replicas, or of one StatefulSet of 300, exists with its
// IP, with netpin's webhooks in the path and without them, on the same API server in the same run.
//
// The harness (control plane, clients, netpin processes) finds its files from the
// repository root (repoPath), so its compiled copy under dist/ serves the benchmarks as it is.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { VersionApi, Watch, type V1Pod, type V1PodTemplateSpec } from '@kubernetes/client-node';
import type { ClaimWrite } from '../src/cluster/kube-ledger.js';
import * as k from '../harness/cluster.js';
import * as cps from '../harness/controlplane.js';
import * as np from '../harness/netpin.js';
import { profilePreloadEnv, summarizeProfileDir, type FrameMatch, type ProfileSummary } from './profile.js';
import { childPids, cpuSeconds, httpsText, inParallel, machineBusySeconds, metricSum, peakRss } from './proc.js';
import { deploymentPod } from './review.js';

/**
 * baseline: namespaces not selected by netpin's webhooks. webhook: selected, but the pods carry no
 * netpin.io/ intent, so the API server calls both webhooks and netpin only answers "allowed": the
 * cost of being an admission webhook at all. memory: the pods of netpin mode, admitted by a netpin
 * with the memory ledger (`--ledger memory`, the same pools from a file): every step of admission
 * and the same patches, but no IPClaim write and no reconciler. netpin: selected, each pod draws an
 * address from a pool, claimed in the API server.
 */
export type Mode = 'baseline' | 'webhook' | 'memory' | 'netpin';
export const MODES: readonly Mode[] = ['baseline', 'webhook', 'memory', 'netpin'];
/** The modes whose pods carry netpin.io/pool and must get an address. */
const PINNED: ReadonlySet<Mode> = new Set(['memory', 'netpin']);
export type Scenario = 'deployments' | 'statefulset';

export interface ClusterOptions {
  root: string;
  /** Rounds of each mode per scenario, in the order baseline, webhook, netpin, then reversed, and so on. */
  rounds: number;
  deployments: number;
  replicas: number;
  /** One /24 per group of Deployments; each namespace draws from one pool. */
  pools: number;
  statefulSetReplicas: number;
  /** kube-controller-manager --kube-api-qps and --kube-api-burst; undefined keeps its defaults (20/30). */
  controllerQps?: { qps: number; burst: number };
  /**
   * Two more Deployments rounds, outside the figures: kube-apiserver profiled in webhook-only and in
   * netpin mode, and netpin profiled in the second.
   */
  profile: boolean;
  log: (line: string) => void;
}

export interface ClusterRound {
  scenario: Scenario;
  mode: Mode;
  round: number;
  pods: number;
  /** From the first create to the last pod's ADDED event (with its IP under netpin). */
  seconds: number;
  /** Until the create calls of the Deployments or the StatefulSet returned (netpin reserves a StatefulSet's addresses in that call). */
  createSeconds: number;
  podsWithoutIp: number;
  duplicateIps: number;
  /** Pod addresses that no IPClaim holds. */
  unclaimedIps: number;
  claims: number;
  /** CPU seconds each process used during the round, and the machine's busy seconds (two cores: at most 2 per second). */
  cpu: Record<string, number>;
  teardownSeconds: number;
  /** netpin's VmHWM at the end of the round: one process serves every round, so this is the peak so far. */
  netpinPeakRssBytes?: number;
  /**
   * IPClaim writes netpin made (netpin_claim_writes_total, any outcome) from the first create until the
   * round's claims were released: creates in admission, patches naming the pod, deletes by the reconciler.
   */
  claimWrites?: Record<ClaimWrite, number>;
}

export interface ClusterSummary {
  scenario: Scenario;
  pods: number;
  baselineSeconds: number;
  webhookSeconds: number;
  memorySeconds: number;
  netpinSeconds: number;
  /** netpin over baseline. */
  ratio: number;
  webhookRatio: number;
  /** netpin over webhook only: what netpin's work costs beyond being an admission webhook at all. */
  overWebhook: number;
  /** The memory ledger over webhook only: netpin's admission without its ledger in the API server. */
  memoryOverWebhook: number;
  /** netpin over the memory ledger: what keeping the ledger in the API server costs (IPClaim writes, reconciler). */
  overMemory: number;
  /** Mean IPClaim writes per pod over the netpin rounds, by kind of write. */
  claimWritesPerPod?: Record<ClaimWrite, number>;
  /** Mean CPU milliseconds per pod of each process, by mode. */
  cpuMsPerPod: Record<Mode, Record<string, number>>;
  duplicateIps: number;
  unclaimedIps: number;
  podsWithoutIp: number;
}

export interface ClusterReport {
  kubernetes: string;
  controllerQps: { qps: number; burst: number } | 'default';
  rounds: ClusterRound[];
  summary: ClusterSummary[];
  profile?: {
    /**
     * netpin during one more Deployments round, outside the figures: from the first create until every pod
     * exists. `focused` holds the share of its busy time in KubeLedger's write calls (CLAIM_WRITE_FRAMES).
     */
    netpin: ProfileSummary & { cpuUsPerPod: number };
    /** kube-apiserver over one more Deployments round in each of these modes (absent without `go` on the PATH). */
    apiserver?: Record<'webhook' | 'netpin', ApiserverProfile>;
  };
}

export interface ApiserverProfile {
  seconds: number;
  /** CPU milliseconds per pod of the samples whose stack holds the category's frames; categories overlap. */
  msPerPod: Array<{ what: string; ms: number }>;
}

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

const execFileP = promisify(execFile);

const WRITES: readonly ClaimWrite[] = ['create', 'patch', 'delete'];

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

function byOp(value: (op: ClaimWrite) => number): Record<ClaimWrite, number> {
  return Object.fromEntries(WRITES.map((op) => [op, value(op)])) as Record<ClaimWrite, number>;
}

/** netpin's IPClaim writes so far, by kind, whatever their outcome. */
async function claimWrites(netpin: np.Netpin): Promise<Record<ClaimWrite, number>> {
  const { text } = await httpsText(netpin.url, '/metrics', netpin.caPem);
  return byOp((op) => metricSum(text, 'netpin_claim_writes_total', { op }) ?? 0);
}

interface RoundHooks {
  start?: () => Promise<void>;
  beforeTeardown?: () => Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const ROUND_LABEL = 'netpin-bench/round';
// Short, so that the claims of one round are released before the next; long enough for netpin's
// pod watch to see every pod it pinned, even on a loaded machine.
const CLAIM_GRACE_SECONDS = 10;
const ROUND_TIMEOUT_MS = 300_000;

/** Counts the pods of one round as the API server's watch reports them, from before the first create. */
class PodCounter {
  readonly names = new Set<string>();
  withoutIp = 0;
  private abort: AbortController | undefined;
  private stopped = false;
  private done: () => void = () => undefined;
  readonly complete: Promise<number>;

  constructor(
    private readonly c: k.Clients,
    private readonly tag: string,
    private readonly expected: number,
    private readonly needsIp: boolean,
  ) {
    this.complete = new Promise<number>((resolve) => (this.done = () => resolve(performance.now())));
  }

  async start(): Promise<void> {
    const list = await this.c.core.listPodForAllNamespaces({ labelSelector: `${ROUND_LABEL}=${this.tag}` });
    await this.watchFrom(list.metadata?.resourceVersion ?? '');
  }

  private async watchFrom(resourceVersion: string): Promise<void> {
    let last = resourceVersion;
    this.abort = await new Watch(this.c.kc).watch(
      '/api/v1/pods',
      { labelSelector: `${ROUND_LABEL}=${this.tag}`, resourceVersion, allowWatchBookmarks: true },
      (type: string, pod: V1Pod) => {
        last = pod.metadata?.resourceVersion ?? last;
        if (type !== 'ADDED') return;
        const name = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
        if (this.names.has(name)) return;
        this.names.add(name);
        if (this.needsIp && !pod.metadata?.annotations?.['cni.projectcalico.org/ipAddrs']) this.withoutIp++;
        if (this.names.size === this.expected) this.done();
      },
      () => {
        // The API server ends watches now and then: carry on from the last event seen.
        if (!this.stopped && this.names.size < this.expected) setTimeout(() => void this.watchFrom(last), 100);
      },
    );
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }
}

/** The pod of the admission benchmark (a few KB, as real pods are), drawing from `pool`. */
function podTemplate(tag: string, app: string, pool: string | undefined): V1PodTemplateSpec {
  const spec = deploymentPod({}).spec as V1PodTemplateSpec['spec'];
  return {
    metadata: { labels: { app, [ROUND_LABEL]: tag }, annotations: pool ? { 'netpin.io/pool': pool } : {} },
    spec: { ...spec!, terminationGracePeriodSeconds: 0 },
  };
}

export async function benchCluster(o: ClusterOptions): Promise<ClusterReport> {
  const cp = await cps.startControlPlane({
    controllerManagerArgs: o.controllerQps
      ? [`--kube-api-qps=${o.controllerQps.qps}`, `--kube-api-burst=${o.controllerQps.burst}`]
      : [],
  });
  let netpin: np.Netpin | undefined;
  const workDir = mkdtempSync(join(tmpdir(), 'netpin-bench-cluster-'));
  try {
    const c = k.clients(cp.kubeconfigPath);
    await k.applyCrds(c);
    const poolNames = Array.from({ length: o.pools }, (_, i) => `bench-${i}`);
    const pools = [
      ...poolNames.map((name, i) => ({ name, cidr: `10.100.${i}.0/24` })),
      { name: 'bench-sts', cidr: '10.101.0.0/23' },
    ];
    for (const { name, cidr } of pools) await k.createPool(c, name, { cidr });
    // The same pools for the memory ledger, which reads them from a file.
    const poolsFile = join(workDir, 'pools.yaml');
    writeFileSync(
      poolsFile,
      pools
        .map(
          ({ name, cidr }) =>
            `apiVersion: netpin.io/v1alpha1\nkind: IPPool\nmetadata: {name: ${name}}\nspec: {cidr: ${cidr}}\n`,
        )
        .join('---\n'),
    );
    netpin = await np.startNetpin({ kubeconfig: cp.kubeconfigPath, claimGraceSeconds: CLAIM_GRACE_SECONDS });
    await k.registerWebhooks(c, netpin, cp.binDir);
    /** Another netpin in place of the one serving: the same port and certificate, so that the registered webhooks reach it. */
    const replaceNetpin = async (extra: Partial<np.NetpinOptions>) => {
      const { port, certDir } = netpin!;
      await netpin!.stop();
      netpin = await np.startNetpin({
        kubeconfig: cp.kubeconfigPath,
        claimGraceSeconds: CLAIM_GRACE_SECONDS,
        port,
        certDir,
        ...extra,
      });
    };
    const version = (await c.kc.makeApiClient(VersionApi).getCode()).gitVersion;
    const procs = () => {
      const pids = childPids();
      return {
        'kube-apiserver': pids.get('kube-apiserver'),
        etcd: pids.get('etcd'),
        'kube-controller-manager': pids.get('kube-controller'), // comm is cut at 15 characters
        netpin: netpin?.child.pid,
      };
    };

    const rounds: ClusterRound[] = [];
    let seq = 0;
    /**
     * One round. `hooks.start` runs just before the first create; `hooks.beforeTeardown` once the pods
     * are counted and checked, before their namespaces go (and then the claims are not waited for:
     * only the last rounds of a run have hooks).
     */
    const runRound = async (
      scenario: Scenario,
      mode: Mode,
      round: number,
      hooks: RoundHooks = {},
    ): Promise<ClusterRound> => {
      const tag = `r${seq++}`;
      const labels = { [ROUND_LABEL]: tag, ...(mode !== 'baseline' ? { 'netpin.io/enabled': 'true' } : {}) };
      const intent = (pool: string) => (PINNED.has(mode) ? pool : undefined);
      // A fresh memory ledger for each such round: its claims are never released.
      if (mode === 'memory') await replaceNetpin({ extraArgs: ['--ledger', 'memory', '--pools', poolsFile] });
      const expected = scenario === 'deployments' ? o.deployments * o.replicas : o.statefulSetReplicas;
      // Namespaces first and outside the clock: what is timed is the workload, not namespace creation.
      const namespaces = scenario === 'deployments' ? poolNames.map((_, i) => `${tag}-d${i}`) : [`${tag}-sts`];
      for (const ns of namespaces) await k.createNamespace(c, ns, labels);
      const counter = new PodCounter(c, tag, expected, PINNED.has(mode));
      await counter.start();

      // Counted only where the round waits for its claims to be released: those are all the writes its pods cause.
      const writesBefore = mode === 'netpin' && !hooks.beforeTeardown ? await claimWrites(netpin!) : undefined;
      const pidsNow = procs();
      const cpuBefore = Object.fromEntries(Object.entries(pidsNow).map(([name, pid]) => [name, cpuSeconds(pid) ?? 0]));
      await hooks.start?.();
      const busyBefore = machineBusySeconds();
      const t0 = performance.now();
      if (scenario === 'deployments') {
        const work = Array.from({ length: o.deployments }, (_, d) => ({
          ns: namespaces[d % namespaces.length]!,
          pool: poolNames[d % poolNames.length]!,
          name: `app-${d}`,
        }));
        await inParallel(work, 10, ({ ns, pool, name }) =>
          c.apps.createNamespacedDeployment({
            namespace: ns,
            body: {
              metadata: { name },
              spec: {
                replicas: o.replicas,
                selector: { matchLabels: { app: name, [ROUND_LABEL]: tag } },
                template: podTemplate(tag, name, intent(pool)),
              },
            },
          }),
        );
      } else {
        await c.apps.createNamespacedStatefulSet({
          namespace: namespaces[0]!,
          body: {
            metadata: { name: 'db' },
            spec: {
              replicas: o.statefulSetReplicas,
              podManagementPolicy: 'Parallel',
              serviceName: 'db',
              selector: { matchLabels: { app: 'db', [ROUND_LABEL]: tag } },
              template: podTemplate(tag, 'db', intent('bench-sts')),
            },
          },
        });
      }
      const created = performance.now();
      let timer: NodeJS.Timeout | undefined;
      const t1 = await Promise.race([
        counter.complete,
        new Promise<never>(
          (_, reject) =>
            (timer = setTimeout(
              () =>
                reject(
                  new Error(
                    `${scenario}/${mode}: ${counter.names.size} of ${expected} pods after ${ROUND_TIMEOUT_MS / 1000} s`,
                  ),
                ),
              ROUND_TIMEOUT_MS,
            )),
        ),
      ]).finally(() => {
        clearTimeout(timer);
        counter.stop();
      });
      const cpu: Record<string, number> = {};
      for (const [name, pid] of Object.entries(pidsNow))
        cpu[name] = round2((cpuSeconds(pid) ?? 0) - (cpuBefore[name] ?? 0));
      cpu.machine = round2(machineBusySeconds() - busyBefore);
      const netpinPeakRssBytes = mode === 'netpin' ? peakRss(netpin?.child.pid) : undefined;

      // Every pod with one address, no address twice, among pods and among IPClaims.
      const pods = (await c.core.listPodForAllNamespaces({ labelSelector: `${ROUND_LABEL}=${tag}` })).items;
      let duplicateIps = 0;
      let unclaimedIps = 0;
      let claims = 0;
      let podsWithoutIp = counter.withoutIp;
      if (PINNED.has(mode)) {
        const podIps = pods.flatMap((p) => k.calicoIps(p));
        podsWithoutIp = Math.max(podsWithoutIp, pods.filter((p) => k.calicoIps(p).length !== 1).length);
        duplicateIps = podIps.length - new Set(podIps).size;
      }
      if (mode === 'netpin') {
        const podIps = pods.flatMap((p) => k.calicoIps(p));
        const held = await k.listClaims(c);
        claims = held.length;
        const claimIps = new Set(held.map((x) => x.ip));
        duplicateIps += held.length - claimIps.size;
        unclaimedIps = podIps.filter((ip) => !claimIps.has(ip)).length;
      }

      await hooks.beforeTeardown?.();
      const t2 = performance.now();
      for (const ns of namespaces) await c.core.deleteNamespace({ name: ns });
      await k.waitFor(
        `namespaces of round ${tag} gone`,
        async () => (await c.core.listNamespace({ labelSelector: `${ROUND_LABEL}=${tag}` })).items.length === 0,
        300_000,
        1000,
      );
      // netpin's reconciler releases the claims once their pods are gone and the grace has passed.
      if (!hooks.beforeTeardown)
        await k.waitFor(
          `claims of round ${tag} released`,
          async () => (await k.listClaims(c)).length === 0,
          120_000,
          1000,
        );
      const teardownSeconds = round2((performance.now() - t2) / 1000);
      if (mode === 'memory') await replaceNetpin({});
      let writes: ClusterRound['claimWrites'];
      if (writesBefore) {
        const after = await claimWrites(netpin!);
        writes = byOp((op) => after[op] - writesBefore[op]);
      }
      const r: ClusterRound = {
        scenario,
        mode,
        round,
        pods: pods.length,
        seconds: round2((t1 - t0) / 1000),
        createSeconds: round2((created - t0) / 1000),
        podsWithoutIp,
        duplicateIps,
        unclaimedIps,
        claims,
        cpu,
        teardownSeconds,
        netpinPeakRssBytes,
        ...(writes ? { claimWrites: writes } : {}),
      };
      o.log(
        `cluster ${scenario} ${mode.padEnd(8)} round ${round + 1}: ${r.pods} pods in ${r.seconds} s ` +
          `(created in ${r.createSeconds} s); duplicates ${r.duplicateIps}, unclaimed ${r.unclaimedIps}, without IP ${r.podsWithoutIp}; ` +
          `cpu ${JSON.stringify(cpu)}; teardown ${r.teardownSeconds} s${writes ? `; claim writes ${JSON.stringify(writes)}` : ''}`,
      );
      return r;
    };

    for (const scenario of ['deployments', 'statefulset'] as Scenario[]) {
      // Reversed every other round: a drift in the machine's speed falls on every mode alike.
      for (let round = 0; round < o.rounds; round++) {
        for (const mode of round % 2 === 0 ? MODES : [...MODES].reverse())
          rounds.push(await runRound(scenario, mode, round));
      }
    }

    const summary = (['deployments', 'statefulset'] as Scenario[]).map((scenario): ClusterSummary => {
      const of = (mode: Mode) => rounds.filter((r) => r.scenario === scenario && r.mode === mode);
      const mean = (rs: ClusterRound[]) => rs.reduce((n, r) => n + r.seconds, 0) / rs.length;
      const cpuMsPerPod = Object.fromEntries(
        MODES.map((mode) => {
          const rs = of(mode);
          const pods = rs.reduce((n, r) => n + r.pods, 0);
          const names = Object.keys(rs[0]?.cpu ?? {});
          return [
            mode,
            Object.fromEntries(
              names.map((name) => [name, round2((1000 * rs.reduce((n, r) => n + (r.cpu[name] ?? 0), 0)) / pods)]),
            ),
          ];
        }),
      ) as Record<Mode, Record<string, number>>;
      const sum = (f: (r: ClusterRound) => number) => of('netpin').reduce((n, r) => n + f(r), 0);
      const written = of('netpin').filter((r) => r.claimWrites);
      const writtenPods = written.reduce((n, r) => n + r.pods, 0);
      return {
        scenario,
        pods: of('netpin')[0]?.pods ?? 0,
        baselineSeconds: round2(mean(of('baseline'))),
        webhookSeconds: round2(mean(of('webhook'))),
        memorySeconds: round2(mean(of('memory'))),
        netpinSeconds: round2(mean(of('netpin'))),
        ratio: mean(of('netpin')) / mean(of('baseline')),
        webhookRatio: mean(of('webhook')) / mean(of('baseline')),
        overWebhook: mean(of('netpin')) / mean(of('webhook')),
        memoryOverWebhook: mean(of('memory')) / mean(of('webhook')),
        overMemory: mean(of('netpin')) / mean(of('memory')),
        ...(writtenPods
          ? {
              claimWritesPerPod: byOp((op) =>
                round2(written.reduce((n, r) => n + r.claimWrites![op], 0) / writtenPods),
              ),
            }
          : {}),
        cpuMsPerPod,
        duplicateIps: sum((r) => r.duplicateIps),
        unclaimedIps: sum((r) => r.unclaimedIps),
        podsWithoutIp: sum((r) => r.podsWithoutIp),
      };
    });

    let profile: ClusterReport['profile'];
    if (o.profile) {
      // Two more Deployments rounds, outside the figures: the API server profiled in webhook-only and
      // netpin mode (where its extra CPU goes), and netpin itself in netpin mode.
      const dir = mkdtempSync(join(tmpdir(), 'netpin-bench-cluster-profile-'));
      const apiserver: Partial<Record<Mode, ApiserverProfile>> = {};
      // The profile is collected before the teardown starts, so that namespace deletion stays out of it.
      const profileApiserver = (mode: Mode) => {
        let pending: Promise<Buffer> | undefined;
        const file = join(dir, `apiserver-${mode}.pprof`);
        return {
          start: async () => void (pending = apiserverPprof(cp, APISERVER_PROFILE_SECONDS)),
          collect: async () => writeFileSync(file, await pending!),
          summarize: async (pods: number) => {
            const summary = await summarizeGoProfile(file, pods);
            if (summary) apiserver[mode] = summary;
          },
        };
      };

      const webhook = profileApiserver('webhook');
      const w = await runRound('deployments', 'webhook', 0, { start: webhook.start, beforeTeardown: webhook.collect });
      await webhook.summarize(w.pods);

      const file = join(dir, 'netpin.cpuprofile');
      await replaceNetpin({ env: profilePreloadEnv(o.root, file) });
      const child = netpin.child;
      const withNetpin = profileApiserver('netpin');
      const r = await runRound('deployments', 'netpin', 0, {
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
          await netpin!.stop();
          await withNetpin.collect();
        },
      });
      await withNetpin.summarize(r.pods);
      profile = {
        netpin: {
          ...summarizeProfileDir(dir, o.root, 15, CLAIM_WRITE_FRAMES),
          cpuUsPerPod: (1e6 * (r.cpu.netpin ?? 0)) / r.pods,
        },
        ...(apiserver.webhook && apiserver.netpin
          ? { apiserver: { webhook: apiserver.webhook, netpin: apiserver.netpin } }
          : {}),
      };
      rmSync(dir, { recursive: true, force: true });
    }

    return {
      kubernetes: version,
      controllerQps: o.controllerQps ?? 'default',
      rounds,
      summary,
      ...(profile ? { profile } : {}),
    };
  } finally {
    await netpin?.stop();
    await cp.stop();
    rmSync(workDir, { recursive: true, force: true });
  }
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
