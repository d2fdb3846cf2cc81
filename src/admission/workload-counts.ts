// Counting a workload's pods: replicas, the surge of a rolling update, and what fixed addresses serve.
import type { WorkloadInfo, WorkloadKind } from '../cluster/view.js';
import { KEYS } from '../intent/keys.js';
import type { Intent, Problem } from '../intent/types.js';
import { formatDual } from '../net/address.js';

export interface Workload extends WorkloadInfo {
  kind: WorkloadKind;
  namespace: string;
  name: string;
}

/** The workload before an UPDATE or a scale, with its template's intent, parsed once. */
export interface Was extends WorkloadInfo {
  intent: Intent;
}

/** The key that names where an intent's addresses come from. */
export function addressKey(intent: Intent): string {
  return intent.ips ? KEYS.ips : intent.ip ? KEYS.ip : KEYS.pool;
}

/** Whether every count of the workload is a whole number of pods, as the API server stores it. */
export function countable(w: WorkloadInfo): boolean {
  const whole = (n: number) => Number.isSafeInteger(n) && n >= 0;
  const surge = w.maxSurge;
  const surgeOk = surge === undefined || (typeof surge === 'number' ? whole(surge) : /^\d+%$/.test(surge));
  return whole(w.replicas) && whole(w.ordinalsStart) && surgeOk;
}

/** Fixed addresses against the replicas, and the pods a rolling update adds on top of them. */
export function replicaProblems(w: Workload, intent: Intent): Problem[] {
  const problems: Problem[] = [];
  if (intent.ip && w.replicas > 1) {
    problems.push({
      key: KEYS.ip,
      message: `one fixed address cannot serve ${w.replicas} replicas: every replica after the first would wait in ContainerCreating`,
      fix:
        w.kind === 'StatefulSet'
          ? 'list one address per ordinal in netpin.io/ips, or use netpin.io/pool'
          : 'use netpin.io/pool or netpin.io/ips, or set replicas: 1',
    });
  }
  if (intent.ips && intent.ips.length < w.replicas) {
    problems.push({
      key: KEYS.ips,
      message:
        w.kind === 'StatefulSet'
          ? `has ${intent.ips.length} entries, but ordinals ${w.ordinalsStart}..${w.ordinalsStart + w.replicas - 1} need ${w.replicas} (entry 1 goes to ordinal ${w.ordinalsStart})`
          : `has ${intent.ips.length} entries for ${w.replicas} replicas`,
      fix: `list at least ${w.replicas} entries, or lower replicas to ${intent.ips.length}`,
    });
  }
  if (problems.length || w.maxSurge === undefined) return problems;
  // A rolling update starts new pods before the old ones stop; the old ones hold their addresses,
  // so without a spare address a new pod is refused, never becomes ready, and the rollout hangs.
  const surge = surgeOf(w.maxSurge, w.replicas);
  if (intent.ip && surge > 0) {
    problems.push({
      key: KEYS.ip,
      message: `a rolling update (maxSurge ${w.maxSurge}) would start the new pod while the old one holds ${formatDual(intent.ip)}, so the new pod would be refused and the rollout would never finish`,
      fix: SURGE_FIX,
    });
  } else if (intent.ips && intent.ips.length < w.replicas + surge) {
    problems.push({
      key: KEYS.ips,
      message: `has ${intent.ips.length} entries for ${w.replicas} replicas, and a rolling update (maxSurge ${w.maxSurge}) adds ${surge} more pods while the old ones hold their addresses, so the rollout would never finish`,
      fix: `${SURGE_FIX}, or list ${w.replicas + surge} entries`,
    });
  }
  return problems;
}

export const SURGE_FIX =
  'set spec.strategy.type: Recreate, or spec.strategy.rollingUpdate.maxSurge: 0 with maxUnavailable: 1';

/** How many pods a rolling update may add above replicas: maxSurge as a count or a percentage rounded up, as the Deployment controller reads it. */
function surgeOf(maxSurge: number | string, replicas: number): number {
  if (typeof maxSurge === 'number') return maxSurge;
  const m = /^(\d+)%$/.exec(maxSurge.trim());
  return m ? Math.ceil((replicas * Number(m[1])) / 100) : Number(maxSurge) || 0;
}

/** The most pods of the workload at once with this many replicas: they, and the surge of a rolling update. */
export function podsAtOnce(w: WorkloadInfo, replicas = w.replicas): number {
  return replicas + (w.maxSurge === undefined ? 0 : surgeOf(w.maxSurge, replicas));
}

/** The most replicas whose pods, surge included, fit in `room` addresses (a percentage surge grows with them). */
export function replicasWithin(w: WorkloadInfo, room: number): number {
  let lo = 0;
  let hi = w.replicas;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (podsAtOnce(w, mid) <= room) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Where an intent's pod addresses come from, as text: equal texts draw on the same pools and fixed addresses. */
export function sourceOf(intent: Intent): string {
  return JSON.stringify([intent.pools ?? [], intent.ip && formatDual(intent.ip), intent.ips?.map(formatDual)]);
}

export function needText(w: Workload): string {
  const surge = podsAtOnce(w) - w.replicas;
  return surge
    ? `${w.kind} ${w.name} needs ${w.replicas + surge}: ${w.replicas} replicas and ${surge} more pods a rolling update adds (maxSurge ${w.maxSurge})`
    : `${w.kind} ${w.name} has ${w.replicas} replicas`;
}
