import type { Logger } from 'pino';
import type { Dialect, WorkloadShape } from '../cni/dialect.js';
import type { EventSink } from '../cluster/event-sink.js';
import type { ClusterView } from '../cluster/view.js';
import { parseIntent, type ParsedIntent } from '../intent/parse.js';
import type { Intent, Problem } from '../intent/types.js';
import type { Allocator, Placement, Plan } from '../ipam/allocator.js';
import type { ClaimIndex } from '../ipam/claim-index.js';
import type { Ledger } from '../ipam/ledger.js';

export interface AdmissionDeps {
  dialect: Dialect;
  allocator: Allocator;
  cluster: ClusterView;
  /**
   * Release claims when a Pod or StatefulSet DELETE is reviewed. Only for the
   * memory ledger, which has no watch: with a cluster, the reconciler releases
   * once the pod is really gone, so that a terminating pod keeps its address.
   */
  releaseOnDelete: boolean;
  log?: Logger;
  /** Where refusals, allocations and reservations are told as Kubernetes Events; none without a cluster. */
  events?: EventSink;
  /**
   * Makes the cluster objects a pod's placement needs before it starts (Cilium's single-address pools);
   * returns those in the way ("CiliumPodIPPool netpin-10-0-0-9"): objects of the name that are not netpin's.
   * None without a cluster.
   */
  objects?: (placement: Placement) => Promise<string[]>;
}

/** What one admission's handlers use: the deps, and the allocator's ledger and index named directly. */
export interface Admit extends AdmissionDeps {
  ledger: Ledger;
  /** The claims and pools as this replica knows them; every read of the admission goes here. */
  index: ClaimIndex;
}

/** Made per review, not once: a test (or a later wiring) may set a field of the deps after the app is built. */
export function admitWith(deps: AdmissionDeps): Admit {
  const { ledger } = deps.allocator;
  return { ...deps, ledger, index: ledger.index };
}

export interface CheckedIntent {
  intent: Intent;
  /** Where the addresses would come from; allocation may go ahead when `problems` is empty. */
  plan: Plan;
  problems: Problem[];
}

type CheckDeps = Pick<AdmissionDeps, 'dialect' | 'allocator' | 'cluster'>;

/**
 * Everything that can be said about an intent without claiming: syntax, the CNI's rules, pools and
 * namespace. An IPPool created a moment ago may not have reached this replica's watch yet: before
 * refusing a pool or address as unknown, the pools are read again from the API server. `parsed`:
 * the annotations' intent when the caller has parsed it already, so that it is parsed once.
 */
export async function checkIntent(
  annotations: Record<string, string> | undefined,
  shape: WorkloadShape,
  namespace: string,
  deps: CheckDeps,
  parsed: ParsedIntent = parseIntent(annotations),
): Promise<CheckedIntent> {
  const checked = checkIntentNow(parsed, shape, namespace, deps);
  const { ledger } = deps.allocator;
  if (!checked.plan.unknown || !ledger.refreshPools) return checked;
  await ledger.refreshPools();
  return checkIntentNow(parsed, shape, namespace, deps);
}

function checkIntentNow(
  { intent, problems: syntax }: ParsedIntent,
  shape: WorkloadShape,
  namespace: string,
  deps: CheckDeps,
): CheckedIntent {
  // A copy: the parsed intent is the caller's, and may be checked again after a refresh.
  const problems = syntax.slice();
  const plan = deps.allocator.plan(intent, namespace, deps.cluster.namespaceLabels(namespace));
  // What the CNI cannot do at all comes before where the addresses would come from.
  // One by one, not spread: a spread of a long list overflows the stack.
  for (const p of deps.dialect.check(intent, shape, plan.pools, plan.egressPools)) problems.push(p);
  if (problems.length === 0) for (const p of plan.problems) problems.push(p);
  return { intent, plan, problems };
}
