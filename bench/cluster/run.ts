// One run of the cluster part: a control plane with netpin and its pools, and the rounds on it,
// each as named steps: namespaces and the watch, the workloads, the wait, the checks, the teardown.
import { writeFileSync } from 'node:fs';
import * as k from '../../harness/cluster.js';
import type * as cps from '../../harness/controlplane.js';
import * as np from '../../harness/netpin.js';
import { childPids, cpuSeconds, httpsText, inParallel, machineBusySeconds, metricSum, peakRss } from '../proc.js';
import { PodCounter, podTemplate } from './pods.js';
import {
  byOp,
  PINNED,
  round2,
  ROUND_LABEL,
  type ClusterOptions,
  type ClusterRound,
  type Mode,
  type Scenario,
} from './types.js';

// Short, so that the claims of one round are released before the next; long enough for netpin's
// pod watch to see every pod it pinned, even on a loaded machine.
const CLAIM_GRACE_SECONDS = 10;
const ROUND_TIMEOUT_MS = 300_000;

export interface RoundHooks {
  start?: () => Promise<void>;
  beforeTeardown?: () => Promise<void>;
}

/** What a round found among its pods and the IPClaims. */
type Checked = Pick<ClusterRound, 'pods' | 'podsWithoutIp' | 'duplicateIps' | 'unclaimedIps' | 'claims'>;

/** netpin's IPClaim writes so far, by kind, whatever their outcome. */
async function claimWrites(netpin: np.Netpin): Promise<Record<'create' | 'patch' | 'delete', number>> {
  const { text } = await httpsText(netpin.url, '/metrics', netpin.caPem);
  return byOp((op) => metricSum(text, 'netpin_claim_writes_total', { op }) ?? 0);
}

export class ClusterRun {
  private current: np.Netpin | undefined;
  private seq = 0;
  readonly c: k.Clients;
  readonly poolNames: string[];

  constructor(
    private readonly o: ClusterOptions,
    readonly cp: cps.ControlPlane,
    private readonly poolsFile: string,
  ) {
    this.c = k.clients(cp.kubeconfigPath);
    this.poolNames = Array.from({ length: o.pools }, (_, i) => `bench-${i}`);
  }

  get netpin(): np.Netpin {
    if (!this.current) throw new Error('netpin is not running');
    return this.current;
  }

  /** The CRDs, the pools (in the API server and in a file, for the memory ledger), netpin and its webhooks. */
  async setUp(): Promise<void> {
    await k.applyCrds(this.c);
    const pools = [
      ...this.poolNames.map((name, i) => ({ name, cidr: `10.100.${i}.0/24` })),
      { name: 'bench-sts', cidr: '10.101.0.0/23' },
    ];
    for (const { name, cidr } of pools) await k.createPool(this.c, name, { cidr });
    writeFileSync(
      this.poolsFile,
      pools
        .map(
          ({ name, cidr }) =>
            `apiVersion: netpin.io/v1alpha1\nkind: IPPool\nmetadata: {name: ${name}}\nspec: {cidr: ${cidr}}\n`,
        )
        .join('---\n'),
    );
    this.current = await np.startNetpin({ kubeconfig: this.cp.kubeconfigPath, claimGraceSeconds: CLAIM_GRACE_SECONDS });
    await k.registerWebhooks(this.c, this.current, this.cp.binDir);
  }

  /** Another netpin in place of the one serving: the same port and certificate, so that the registered webhooks reach it. */
  async replaceNetpin(extra: Partial<np.NetpinOptions>): Promise<void> {
    const { port, certDir } = this.netpin;
    await this.netpin.stop();
    this.current = await np.startNetpin({
      kubeconfig: this.cp.kubeconfigPath,
      claimGraceSeconds: CLAIM_GRACE_SECONDS,
      port,
      certDir,
      ...extra,
    });
  }

  async stop(): Promise<void> {
    await this.current?.stop();
  }

  /** CPU seconds of each process from now until the returned function is called. */
  private meterCpu(): () => Record<string, number> {
    const pids = childPids();
    const procs = {
      'kube-apiserver': pids.get('kube-apiserver'),
      etcd: pids.get('etcd'),
      'kube-controller-manager': pids.get('kube-controller'), // comm is cut at 15 characters
      netpin: this.current?.child.pid,
    };
    const before = Object.fromEntries(Object.entries(procs).map(([name, pid]) => [name, cpuSeconds(pid) ?? 0]));
    return () => {
      const cpu: Record<string, number> = {};
      for (const [name, pid] of Object.entries(procs)) cpu[name] = round2((cpuSeconds(pid) ?? 0) - (before[name] ?? 0));
      return cpu;
    };
  }

  private async createWorkloads(scenario: Scenario, mode: Mode, tag: string, namespaces: string[]): Promise<void> {
    const intent = (pool: string) => (PINNED.has(mode) ? pool : undefined);
    if (scenario === 'statefulset') {
      await this.c.apps.createNamespacedStatefulSet({
        namespace: namespaces[0]!,
        body: {
          metadata: { name: 'db' },
          spec: {
            replicas: this.o.statefulSetReplicas,
            podManagementPolicy: 'Parallel',
            serviceName: 'db',
            selector: { matchLabels: { app: 'db', [ROUND_LABEL]: tag } },
            template: podTemplate(tag, 'db', intent('bench-sts')),
          },
        },
      });
      return;
    }
    const work = Array.from({ length: this.o.deployments }, (_, d) => ({
      ns: namespaces[d % namespaces.length]!,
      pool: this.poolNames[d % this.poolNames.length]!,
      name: `app-${d}`,
    }));
    await inParallel(work, 10, ({ ns, pool, name }) =>
      this.c.apps.createNamespacedDeployment({
        namespace: ns,
        body: {
          metadata: { name },
          spec: {
            replicas: this.o.replicas,
            selector: { matchLabels: { app: name, [ROUND_LABEL]: tag } },
            template: podTemplate(tag, name, intent(pool)),
          },
        },
      }),
    );
  }

  /** Every pod with one address, no address twice, among pods and among IPClaims. */
  private async check(tag: string, mode: Mode, withoutIp: number): Promise<Checked> {
    const pods = (await this.c.core.listPodForAllNamespaces({ labelSelector: `${ROUND_LABEL}=${tag}` })).items;
    const checked: Checked = {
      pods: pods.length,
      podsWithoutIp: withoutIp,
      duplicateIps: 0,
      unclaimedIps: 0,
      claims: 0,
    };
    const podIps = pods.flatMap((p) => k.calicoIps(p));
    if (PINNED.has(mode)) {
      checked.podsWithoutIp = Math.max(withoutIp, pods.filter((p) => k.calicoIps(p).length !== 1).length);
      checked.duplicateIps = podIps.length - new Set(podIps).size;
    }
    if (mode === 'netpin') {
      const held = await k.listClaims(this.c);
      checked.claims = held.length;
      const claimIps = new Set(held.map((x) => x.ip));
      checked.duplicateIps += held.length - claimIps.size;
      checked.unclaimedIps = podIps.filter((ip) => !claimIps.has(ip)).length;
    }
    return checked;
  }

  /** Deletes the round's namespaces and, if asked, waits until netpin has released their claims; in seconds. */
  private async tearDown(tag: string, namespaces: string[], awaitClaims: boolean): Promise<number> {
    const t0 = performance.now();
    for (const ns of namespaces) await this.c.core.deleteNamespace({ name: ns });
    await k.waitFor(
      `namespaces of round ${tag} gone`,
      async () => (await this.c.core.listNamespace({ labelSelector: `${ROUND_LABEL}=${tag}` })).items.length === 0,
      300_000,
      1000,
    );
    // netpin's reconciler releases the claims once their pods are gone and the grace has passed.
    if (awaitClaims)
      await k.waitFor(
        `claims of round ${tag} released`,
        async () => (await k.listClaims(this.c)).length === 0,
        120_000,
        1000,
      );
    return round2((performance.now() - t0) / 1000);
  }

  /**
   * One round. `hooks.start` runs just before the first create; `hooks.beforeTeardown` once the pods
   * are counted and checked, before their namespaces go (and then the claims are not waited for:
   * only the last rounds of a run have hooks).
   */
  async round(scenario: Scenario, mode: Mode, round: number, hooks: RoundHooks = {}): Promise<ClusterRound> {
    const tag = `r${this.seq++}`;
    // A fresh memory ledger for each such round: its claims are never released.
    if (mode === 'memory') await this.replaceNetpin({ extraArgs: ['--ledger', 'memory', '--pools', this.poolsFile] });
    const expected = scenario === 'deployments' ? this.o.deployments * this.o.replicas : this.o.statefulSetReplicas;
    // Namespaces first and outside the clock: what is timed is the workload, not namespace creation.
    const namespaces = scenario === 'deployments' ? this.poolNames.map((_, i) => `${tag}-d${i}`) : [`${tag}-sts`];
    const labels = { [ROUND_LABEL]: tag, ...(mode !== 'baseline' ? { 'netpin.io/enabled': 'true' } : {}) };
    for (const ns of namespaces) await k.createNamespace(this.c, ns, labels);
    const counter = new PodCounter(this.c, tag, expected, PINNED.has(mode));
    await counter.start();

    // Counted only where the round waits for its claims to be released: those are all the writes its pods cause.
    const writesBefore = mode === 'netpin' && !hooks.beforeTeardown ? await claimWrites(this.netpin) : undefined;
    const cpuSince = this.meterCpu();
    await hooks.start?.();
    const busyBefore = machineBusySeconds();
    const t0 = performance.now();
    await this.createWorkloads(scenario, mode, tag, namespaces);
    const created = performance.now();
    const t1 = await counter.completeWithin(ROUND_TIMEOUT_MS, `${scenario}/${mode}`);
    const cpu = { ...cpuSince(), machine: round2(machineBusySeconds() - busyBefore) };
    const netpinPeakRssBytes = mode === 'netpin' ? peakRss(this.current?.child.pid) : undefined;
    const checked = await this.check(tag, mode, counter.withoutIp);

    await hooks.beforeTeardown?.();
    const teardownSeconds = await this.tearDown(tag, namespaces, !hooks.beforeTeardown);
    if (mode === 'memory') await this.replaceNetpin({});
    let writes: ClusterRound['claimWrites'];
    if (writesBefore) {
      const after = await claimWrites(this.netpin);
      writes = byOp((op) => after[op] - writesBefore[op]);
    }
    const r: ClusterRound = {
      scenario,
      mode,
      round,
      pods: checked.pods,
      seconds: round2((t1 - t0) / 1000),
      createSeconds: round2((created - t0) / 1000),
      podsWithoutIp: checked.podsWithoutIp,
      duplicateIps: checked.duplicateIps,
      unclaimedIps: checked.unclaimedIps,
      claims: checked.claims,
      cpu,
      teardownSeconds,
      netpinPeakRssBytes,
      ...(writes ? { claimWrites: writes } : {}),
    };
    this.o.log(
      `cluster ${scenario} ${mode.padEnd(8)} round ${round + 1}: ${r.pods} pods in ${r.seconds} s ` +
        `(created in ${r.createSeconds} s); duplicates ${r.duplicateIps}, unclaimed ${r.unclaimedIps}, without IP ${r.podsWithoutIp}; ` +
        `cpu ${JSON.stringify(cpu)}; teardown ${r.teardownSeconds} s${writes ? `; claim writes ${JSON.stringify(writes)}` : ''}`,
    );
    return r;
  }
}
