// netpin's own vocabulary of events, apart from the recorder that writes any event (events.ts): what
// the reconciler says when a sweep releases claims. Admission tells Refused, Allocated and Reserved.
import type { Claim, Owner } from '../ipam/claim.js';
import type { EventNotice, EventSubject } from './event-sink.js';
import { GROUP, VERSION } from './kube.js';

/** Where a released claim is told: the pod, StatefulSet or workload that held it; the pool for a pod never seen. */
function releasedFrom(owner: Owner, pool: string): EventSubject {
  const { namespace, name } = owner;
  if (owner.kind === 'StatefulSet' || owner.kind === 'DaemonSet')
    return { apiVersion: 'apps/v1', kind: owner.kind, namespace, name };
  if (owner.kind === 'Egress')
    return { apiVersion: owner.workload === 'Pod' ? 'v1' : 'apps/v1', kind: owner.workload, namespace, name };
  if (name) return { apiVersion: 'v1', kind: 'Pod', namespace, name };
  return { apiVersion: `${GROUP}/${VERSION}`, kind: 'IPPool', namespace: '', name: pool };
}

function releasedText(c: Claim): string {
  const o = c.owner;
  const what = `${o.kind === 'Egress' ? 'egress address ' : ''}${c.ip.toString()} from IPPool ${c.pool}`;
  if (o.kind === 'Pod' && !o.name) return `${what} (claimed for a pod in namespace ${o.namespace} that was never seen)`;
  if (o.kind === 'DaemonSet') return `${what} (node ${o.node})`;
  return o.kind !== 'Pod' && o.ordinal !== undefined ? `${what} (ordinal ${o.ordinal})` : what;
}

/**
 * The Released events for the claims one sweep released: one per object that held them, named without
 * a uid, which claims do not keep: a pod or StatefulSet is gone by then anyway, or its claims would be held.
 */
export function releaseEvents(claims: readonly Claim[]): EventNotice[] {
  const byObject = new Map<string, { regarding: EventSubject; released: string[] }>();
  for (const c of claims) {
    const regarding = releasedFrom(c.owner, c.pool);
    const key = `${regarding.apiVersion}/${regarding.kind}/${regarding.namespace}/${regarding.name}`;
    let entry = byObject.get(key);
    if (!entry) byObject.set(key, (entry = { regarding, released: [] }));
    entry.released.push(releasedText(c));
  }
  return [...byObject.values()].map(({ regarding, released }) => ({
    regarding,
    type: 'Normal',
    reason: 'Released',
    action: 'Release',
    note: `Released ${released.join(', ')}`,
  }));
}
