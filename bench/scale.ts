// Part 4: netpin against a large ledger in a real API server. IPClaims and pinned pods are created
// straight through the API (netpin is not in the path), in the form netpin leaves them: pods with
// its annotations and label, claims naming them as owners, and StatefulSet reservations. Measured,
// against that ledger and against an empty one, each with a netpin started afresh: the time from
// its start to ready, its memory, the latency of allocating reviews posted to it, and the
// reconciler's sweep.
import { VersionApi } from '@kubernetes/client-node';
import * as k from '../harness/cluster.js';
import * as cps from '../harness/controlplane.js';
import { clientFromKubeconfig, kube } from '../harness/rest.js';
import { chartMemoryCgroups } from './proc.js';
import { CLAIMS_PATH, fillLedger, Layout } from './scale/fill.js';
import { CLAIM_GRACE_SECONDS, measure, SWEEP_WINDOW_MS } from './scale/measure.js';
import type { ScaleOptions, ScaleReport } from './scale/types.js';

export type { ScaleLedger, ScalePhase, ScaleReport } from './scale/types.js';

export async function benchScale(o: ScaleOptions): Promise<ScaleReport> {
  const layout = new Layout(o.claims, o.pods);
  const cp = await cps.startControlPlane({
    // No pod here has a live owner, and nothing needs a controller: the garbage collector would delete the pods.
    controllers: ['namespace-controller'],
    // The fill keeps fillConcurrency writes in flight beside netpin's lists and watches.
    apiserverArgs: ['--max-requests-inflight=800', '--max-mutating-requests-inflight=400'],
  });
  try {
    const c = k.clients(cp.kubeconfigPath);
    const rest = clientFromKubeconfig(cp.kubeconfigPath);
    await k.applyCrds(c);
    for (let i = 0; i < layout.pools; i++) await k.createPool(c, layout.pool(i), { cidr: layout.cidr(i) });
    for (let i = 0; i < layout.namespaces; i++)
      await k.createNamespace(c, layout.namespace(i), { 'netpin.io/enabled': 'true' });
    const memory = await chartMemoryCgroups(o.root);
    if (memory.notApplied) o.log(`scale: netpin runs without the chart's memory limit: ${memory.notApplied}`);

    const empty = await measure(o, cp, rest, memory, 'empty', layout, 0);
    // The empty phase's claims go, so that the loaded ledger holds exactly what the fill makes.
    const gone = await kube(rest, 'DELETE', CLAIMS_PATH);
    if (gone.status !== 200) throw new Error(`deleting the empty phase's IPClaims: HTTP ${gone.status}`);

    const t0 = performance.now();
    o.log(
      `scale: creating ${layout.pods} pinned pods, ${layout.claims} IPClaims and ${layout.statefulSets} StatefulSets, ` +
        `${o.fillConcurrency} at a time`,
    );
    const objects = await fillLedger(rest, layout, o.fillConcurrency, o.log);
    const filled = performance.now();
    o.log(`scale: ${objects} objects in ${((filled - t0) / 1000).toFixed(1)} s`);
    const loaded = await measure(o, cp, rest, memory, 'loaded', layout, filled + CLAIM_GRACE_SECONDS * 1000);

    return {
      kubernetes: (await c.kc.makeApiClient(VersionApi).getCode()).gitVersion,
      memory,
      pools: layout.pools,
      namespaces: layout.namespaces,
      statefulSets: layout.statefulSets,
      fill: { objects, seconds: Math.round((filled - t0) / 100) / 10, concurrency: o.fillConcurrency },
      sweepWindowSeconds: SWEEP_WINDOW_MS / 1000,
      phases: [empty, loaded],
    };
  } finally {
    await cp.stop();
  }
}
