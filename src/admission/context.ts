import type { Logger } from 'pino';
import type { Dialect, WorkloadShape } from '../cni/dialect.js';
import type { EventSink } from '../cluster/event-sink.js';
import type { ClusterView } from '../cluster/view.js';
import { parseIntent } from '../intent/parse.js';
import type { Intent, Problem } from '../intent/types.js';
import type { Allocator, Plan } from '../ipam/allocator.js';
import { bounded, shown, SHOWN_CHARS } from '../net/shown.js';
import { MESSAGE_CHARS } from './respond.js';

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
}

export interface CheckedIntent {
  intent: Intent;
  /** Where the addresses would come from; allocation may go ahead when `problems` is empty. */
  plan: Plan;
  problems: Problem[];
}

/**
 * Everything that can be said about an intent without claiming: syntax, the CNI's rules, pools and
 * namespace. An IPPool created a moment ago may not have reached this replica's watch yet: before
 * refusing a pool or address as unknown, the pools are read again from the API server.
 */
export async function checkIntent(
  annotations: Record<string, string> | undefined,
  shape: WorkloadShape,
  namespace: string,
  deps: AdmissionDeps,
): Promise<CheckedIntent> {
  const checked = checkIntentNow(annotations, shape, namespace, deps);
  const refresh = deps.allocator.ledger.refreshPools;
  if (!checked.plan.unknown || !refresh) return checked;
  await refresh.call(deps.allocator.ledger);
  return checkIntentNow(annotations, shape, namespace, deps);
}

function checkIntentNow(
  annotations: Record<string, string> | undefined,
  shape: WorkloadShape,
  namespace: string,
  deps: AdmissionDeps,
): CheckedIntent {
  const { intent, problems } = parseIntent(annotations);
  const plan = deps.allocator.plan(intent, namespace, deps.cluster.namespaceLabels(namespace));
  // What the CNI cannot do at all comes before where the addresses would come from.
  // One by one, not spread: a spread of a long list overflows the stack.
  for (const p of deps.dialect.check(intent, shape, plan.pools, plan.egressPools)) problems.push(p);
  if (problems.length === 0) for (const p of plan.problems) problems.push(p);
  return { intent, plan, problems };
}

/** A refusal names this many problems at most, then says how many more: the first ones are what to fix first. */
export const LISTED_PROBLEMS = 5;
/** One problem's part of a refusal, at most; its key and the values it repeats are cut before (shown()). */
const PROBLEM_CHARS = 1024;

/** One message that names each annotation at fault, the CNI, and the fix; the first LISTED_PROBLEMS of them. */
export function renderProblems(problems: readonly Problem[], dialect: Dialect): string {
  const listed = problems.slice(0, LISTED_PROBLEMS).map((p) => {
    // A key netpin does not know is the tenant's text too.
    const key = p.key.length > SHOWN_CHARS ? shown(p.key) : p.key;
    return bounded(`${key} (CNI ${dialect.title}): ${p.message}. Fix: ${p.fix}`, PROBLEM_CHARS);
  });
  const more = problems.length - listed.length;
  if (more > 0) listed.push(`and ${more} more ${more === 1 ? 'problem' : 'problems'}, not listed`);
  return bounded(listed.join('; '), MESSAGE_CHARS);
}
