// The node part: Spiderpool's IPAM benchmark protocol on the real test node (harness/node.ts). Pods of
// the pause image run for real under kubelet and containerd, with the bridge → IPAM → bandwidth chain;
// three ways, alternated in the same run: host-local alone with no webhook (the floor), a webhook that
// only answers "allowed", and netpin with the kube ledger whose addresses the node's netpin-ipam gives
// the pods. Cases: 1 Deployment × N, N/10 Deployments × 10, a StatefulSet of N/2; netpin's pool exactly
// as large as the case, and four times that. Phases: creation, re-creation (every pod deleted at once),
// deletion (every pod gone, every address released).
//
// netpin runs as a process on the host (`netpin serve --ledger kube --cni netpin-ipam`), as the control
// plane's other benchmarks run it: not its image in a pod, which `npm run image` takes minutes to build,
// and which would share the two cores with the pods it admits in the same way. The netpin-ipam the node's
// conflist names is the one test/node/build.sh builds; it reads the same annotations either way.
import { loadavg, cpus } from 'node:os';
import { VersionApi } from '@kubernetes/client-node';
import { startChild, type Child } from '../harness/process.js';
import * as k from '../harness/cluster.js';
import * as cps from '../harness/controlplane.js';
import { startNetpin, type Netpin } from '../harness/netpin.js';
import { nodeControlPlaneOptions, POOL_SUBNETS, startNode, type Node } from '../harness/node.js';
import { childPids } from './proc.js';
import { ALLOW_ONLY_LABEL, casePods, NodeCaseRun, type RunContext } from './node/run.js';
import { summarizeNode } from './node/summary.js';
import type { NodeBenchOptions, NodeMode, NodeReport, PoolSize } from './node/types.js';

export type { NodeReport } from './node/types.js';
export { NODE_CASES, type NodeCase } from './node/types.js';

/** host-local's addresses on this node: 4094, apart from netpin's pools (10.244.64.0/18 and 10.244.128.0/17). */
const HOST_LOCAL_RANGE = { start: '10.244.16.1', end: '10.244.31.254' };
const EXACT_BASE = ipNumber('10.244.64.1');
const LARGE_BASE = ipNumber('10.244.128.1');

function ipNumber(ip: string): number {
  return ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}
function ipString(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

/** The runs of one round of a case: host-local first, then reversed every other round. */
const ORDER: Array<{ mode: NodeMode; pool?: PoolSize }> = [
  { mode: 'host-local' },
  { mode: 'netpin', pool: 'exact' },
  { mode: 'webhook' },
  { mode: 'netpin', pool: 'large' },
];

export async function benchNode(o: NodeBenchOptions): Promise<NodeReport> {
  const n = o.pods;
  // Old pods that terminate while their replacements start count against maxPods too.
  const maxPods = 2 * n + 30;
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    o.log('node: SIGINT: ending the run, then stopping the node and undoing its host changes');
  };
  process.on('SIGINT', onSignal);
  const report: NodeReport = {
    kubernetes: '',
    pods: n,
    maxPods,
    claimGraceSeconds: o.claimGraceSeconds,
    netpinAs: 'process on the host: netpin serve --ledger kube --cni netpin-ipam',
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    loadAverage: { start: loadavg(), end: [] },
    runs: [],
    summary: [],
  };
  let cp: cps.ControlPlane | undefined;
  let node: Node | undefined;
  let netpin: Netpin | undefined;
  let bare: Child | undefined;
  try {
    cp = await cps.startControlPlane(
      nodeControlPlaneOptions({
        controllerManagerArgs: o.controllerQps
          ? [`--kube-api-qps=${o.controllerQps.qps}`, `--kube-api-burst=${o.controllerQps.burst}`]
          : [],
      }),
    );
    node = await startNode(cp, { kubeletArgs: [`--max-pods=${maxPods}`], hostLocalRange: HOST_LOCAL_RANGE });
    const c = k.clients(cp.kubeconfigPath);
    report.kubernetes = (await c.kc.makeApiClient(VersionApi).getCode()).gitVersion;
    await k.applyCrds(c);
    // One exact and one large pool per pod count, none overlapping another.
    const pools = new Map<string, string>();
    let exact = EXACT_BASE;
    let large = LARGE_BASE;
    for (const size of new Set(o.cases.map((kase) => casePods(kase, n)))) {
      for (const [kind, base, count] of [
        ['exact', exact, size],
        ['large', large, 4 * size],
      ] as const) {
        const name = `${kind}-${size}`;
        await k.createPool(c, name, {
          ranges: [`${ipString(base)}-${ipString(base + count - 1)}`],
          subnets: POOL_SUBNETS,
        });
        pools.set(name, `${ipString(base)}-${ipString(base + count - 1)}`);
        if (kind === 'exact') exact += count;
        else large += count;
      }
    }
    o.log(`node: pools ${JSON.stringify(Object.fromEntries(pools))}`);
    netpin = await startNetpin({
      kubeconfig: cp.kubeconfigPath,
      cni: 'netpin-ipam',
      claimGraceSeconds: o.claimGraceSeconds,
    });
    await k.registerWebhooks(c, netpin, cp.binDir);
    // The webhook that only allows, on netpin's certificate (the API server trusts the same CA for both).
    bare = (
      await startChild(
        'bare-server',
        [`${o.root}/dist/bench/bare-server.js`, '--cert-dir', netpin.certDir],
        /bare serving (https:\/\/\S+)/,
      )
    ).proc;
    const bareUrl = /bare serving (https:\/\/\S+)/.exec(bare.output())![1]!;
    await k.registerWebhooks(c, { url: bareUrl, caPem: netpin.caPem }, cp.binDir, {
      name: 'allow-only',
      optInLabel: { [ALLOW_ONLY_LABEL]: 'true' },
    });

    const children = childPids();
    const x: RunContext = {
      cp,
      node,
      c,
      pids: {
        'kube-apiserver': children.get('kube-apiserver'),
        etcd: children.get('etcd'),
        'kube-controller-manager': children.get('kube-controller'),
        'kube-scheduler': children.get('kube-scheduler'),
        kubelet: children.get('kubelet'),
        containerd: children.get('containerd'),
        netpin: netpin.child.pid,
        'allow-only webhook': bare.child.pid,
      },
      claimGraceSeconds: o.claimGraceSeconds,
      interrupted: () => interrupted,
      log: o.log,
    };
    let seq = 0;
    for (let round = 0; round < o.rounds; round++) {
      for (const kase of o.cases) {
        for (const { mode, pool } of round % 2 === 0 ? ORDER : [...ORDER].reverse()) {
          if (interrupted) throw new Error('interrupted');
          const pods = casePods(kase, n);
          await node.useIpam(mode === 'host-local' ? 'host-local' : 'netpin-ipam');
          await new Promise((r) => setTimeout(r, 1000)); // containerd reloads the conflist on the write
          const namespace = `${kase}-${mode}${pool ? `-${pool}` : ''}-${seq++}`;
          const run = new NodeCaseRun(
            x,
            kase,
            mode,
            pool ? { name: `${pool}-${pods}`, size: pool } : undefined,
            namespace,
            n,
          );
          const phases = await run.run();
          report.runs.push({ case: kase, mode, ...(pool ? { pool } : {}), round, pods, phases });
        }
      }
    }
  } catch (err) {
    report.stoppedEarly = err instanceof Error ? err.message : String(err);
    o.log(`node: stopped early: ${report.stoppedEarly}`);
  } finally {
    const steps: Array<[string, (() => Promise<void>) | undefined]> = [
      ['netpin', netpin && (() => netpin!.stop())],
      ['allow-only webhook', bare && (() => bare!.stop())],
      ['node', node && (() => node!.stop())],
      ['control plane', cp && (() => cp!.stop())],
    ];
    for (const [what, stop] of steps) {
      try {
        await stop?.();
      } catch (err) {
        o.log(`node: stopping ${what}: ${err instanceof Error ? err.message : String(err)}`);
        report.stoppedEarly ??= `stopping ${what} failed`;
      }
    }
    process.off('SIGINT', onSignal);
  }
  report.loadAverage.end = loadavg();
  report.summary = summarizeNode(report.runs);
  return report;
}
