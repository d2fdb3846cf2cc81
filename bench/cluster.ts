// Part 3: a real etcd + kube-apiserver + kube-controller-manager (harness/), and the time
// until every pod of 100 Deployments x 10 replicas, or of one StatefulSet of 300, exists with its
// IP, with netpin's webhooks in the path and without them, on the same API server in the same run.
//
// The harness (control plane, clients, netpin processes) finds its files from the
// repository root (repoPath), so its compiled copy under dist/ serves the benchmarks as it is.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VersionApi } from '@kubernetes/client-node';
import * as cps from '../harness/controlplane.js';
import { profileRounds } from './cluster/profiles.js';
import { ClusterRun } from './cluster/run.js';
import { summarize } from './cluster/summary.js';
import { MODES, type ClusterOptions, type ClusterReport, type ClusterRound, type Scenario } from './cluster/types.js';

export type { ClusterReport } from './cluster/types.js';

const SCENARIOS: Scenario[] = ['deployments', 'statefulset'];

export async function benchCluster(o: ClusterOptions): Promise<ClusterReport> {
  const cp = await cps.startControlPlane({
    controllerManagerArgs: o.controllerQps
      ? [`--kube-api-qps=${o.controllerQps.qps}`, `--kube-api-burst=${o.controllerQps.burst}`]
      : [],
  });
  const workDir = mkdtempSync(join(tmpdir(), 'netpin-bench-cluster-'));
  const run = new ClusterRun(o, cp, join(workDir, 'pools.yaml'));
  try {
    await run.setUp();
    const version = (await run.c.kc.makeApiClient(VersionApi).getCode()).gitVersion;
    const rounds: ClusterRound[] = [];
    for (const scenario of SCENARIOS) {
      // Reversed every other round: a drift in the machine's speed falls on every mode alike.
      for (let round = 0; round < o.rounds; round++) {
        for (const mode of round % 2 === 0 ? MODES : [...MODES].reverse())
          rounds.push(await run.round(scenario, mode, round));
      }
    }
    const summary = SCENARIOS.map((scenario) => summarize(rounds, scenario));
    const profile = o.profile ? await profileRounds(run, o.root) : undefined;
    return {
      kubernetes: version,
      controllerQps: o.controllerQps ?? 'default',
      rounds,
      summary,
      ...(profile ? { profile } : {}),
    };
  } finally {
    await run.stop();
    await cp.stop();
    rmSync(workDir, { recursive: true, force: true });
  }
}
