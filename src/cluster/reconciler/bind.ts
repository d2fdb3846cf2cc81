import type { Ledger } from '../../ipam/ledger.js';
import type { PodRecord } from '../pod-tracker.js';
import { within } from './api.js';

/** How many claims one round names its pod in; the rest wait for the next rounds, seconds apart. */
const BIND_PER_ROUND = 200;

/**
 * Names the pod in every claim made for a pod not yet named, once the pod shows the address:
 * from then on the pod's name holds it, whatever happens to its annotations and labels. Returns
 * how many it named.
 */
export async function bindPods(ledger: Ledger, pods: Iterable<PodRecord>, mayAct: () => boolean): Promise<number> {
  const unbound = [...ledger.index.allClaims()].filter(
    // A peer cluster's claim names a pod this cluster cannot see.
    (c) => c.owner.kind === 'Pod' && c.owner.name === '' && c.ref !== undefined && c.owner.cluster === undefined,
  );
  if (unbound.length === 0) return 0;
  const byAddress = new Map<string, PodRecord>();
  for (const pod of pods) for (const a of pod.addresses) byAddress.set(`${pod.namespace}/${a}`, pod);
  let bound = 0;
  for (const claim of unbound) {
    // A bounded batch per round, so that each round ends and the next sweeps again.
    if (!mayAct() || bound >= BIND_PER_ROUND) break;
    const pod = byAddress.get(`${claim.owner.namespace}/${claim.ip.toString()}`);
    if (!pod) continue;
    await within(() => ledger.bind(claim, pod));
    bound++;
  }
  return bound;
}
