// What `netpin doctor` checks of a CNI, and what the checks read: whether the CNI's own configuration
// in the cluster can honour what netpin writes. Each CNI's checks live beside its dialect
// (<cni>-doctor.ts); everything is read through a ClusterSource, so they run without a cluster.
import { describeOwner, type Claim, type Owner } from '../ipam/claim.js';
import { poolContains, type Pool } from '../ipam/pool.js';
import { parseAddress, parseRange, rangeWithin, type AddressRange } from '../net/address.js';

type Outcome = 'ok' | 'WARN' | 'FAIL';

export interface Check {
  outcome: Outcome;
  text: string;
  fix?: string;
}

/** Why something was not read: `missing` when the cluster has no such object or resource (404). */
export class Unread {
  constructor(
    readonly missing: boolean,
    readonly reason: string,
  ) {}
}

export interface Resource {
  group: string;
  version: string;
  plural: string;
}

/** A running pod and the addresses its CNI gave it (status.podIPs). */
export interface RunningPod {
  namespace: string;
  name: string;
  podIPs: string[];
  /** netpin.io/allocated, as written: what netpin gave it, if anything. */
  allocated?: string;
}

/** A DaemonSet's rollout, as its status counts it. */
export interface DaemonSetState {
  namespace: string;
  name: string;
  /** Nodes that should run its pod (status.desiredNumberScheduled). */
  desired: number;
  /** Nodes where its pod is ready (status.numberReady). */
  ready: number;
}

/** Where the checks read the cluster; each CNI's checks read only what they need. */
export interface ClusterSource {
  list(resource: Resource): Promise<readonly unknown[] | Unread>;
  configMap(namespace: string, name: string): Promise<Record<string, string> | Unread>;
  runningPods(): Promise<RunningPod[]>;
  daemonSets(labelSelector: string): Promise<DaemonSetState[] | Unread>;
  nodeCount(): Promise<number | Unread>;
}

export interface DoctorInputs {
  pools: readonly Pool[];
  claims: readonly Claim[];
  source: ClusterSource;
}

/** A check on one line, as doctor prints it. */
export function formatCheck(c: Check): string {
  return `${c.outcome.padEnd(4)}  ${c.text}${c.fix ? `. Fix: ${c.fix}` : ''}`;
}

/** One CNI's checks, in the order doctor prints them. */
export type CniChecks = (inputs: DoctorInputs) => Promise<Check[]>;

export const ok = (text: string): Check => ({ outcome: 'ok', text });
export const warn = (text: string, fix?: string): Check => ({ outcome: 'WARN', text, ...(fix && { fix }) });
export const fail = (text: string, fix: string): Check => ({ outcome: 'FAIL', text, fix });

// Pod pools hold the addresses netpin pins or selects; egress pools never become pod addresses.
export const podPools = (pools: readonly Pool[]) => pools.filter((p) => !p.egress);
export const egressPools = (pools: readonly Pool[]) => pools.filter((p) => p.egress);
export const poolNames = (pools: readonly Pool[]) => pools.map((p) => p.name).join(', ');

/** Something that exists but could not be read (RBAC first): what went unchecked. */
export function unreadable(unread: Unread, what: string, unchecked: string): Check {
  return warn(`could not read ${what} (${unread.reason}): not checked ${unchecked}`);
}

/** A CNI resource that could not be listed: missing is a failure; unreadable (RBAC) says what went unchecked. */
export function unreadList(unread: Unread, what: string, unchecked: string, install: string): Check {
  return unread.missing
    ? fail(`${unread.reason}, so there are no ${what}`, `${install}, or pass the --cni this cluster runs`)
    : unreadable(unread, what, unchecked);
}

export function unreadConfigMap(unread: Unread, where: string, unchecked: string, install: string): Check {
  return unread.missing
    ? fail(`${where} does not exist, so ${unchecked} cannot be read`, `${install}, or pass the --cni this cluster runs`)
    : unreadable(unread, where, unchecked);
}

/** The ranges of `pool` that lie in none of `outer` (each must lie inside one). */
export function uncovered(pool: Pool, outer: readonly AddressRange[]): AddressRange[] {
  return pool.families.flatMap((f) => pool.ranges[f]).filter((r) => !outer.some((o) => rangeWithin(r, o)));
}

export function parsedRanges(texts: readonly string[]): AddressRange[] {
  return texts.flatMap((t) => {
    const r = parseRange(t, false);
    return typeof r === 'string' ? [] : [r];
  });
}

export function nameOf(obj: unknown): string {
  return (obj as { metadata?: { name?: string } }).metadata?.name ?? '';
}

// Addresses the CNI gave out by itself (Calico, Kube-OVN: the CNIs where netpin pins every address)

/** Whether netpin gave the claim's address to this pod: by name, by StatefulSet ordinal, or before the pod had a name. */
function givenTo(owner: Owner, pod: RunningPod): boolean {
  if (owner.namespace !== pod.namespace) return false;
  if (owner.kind === 'StatefulSet') return pod.name === `${owner.name}-${owner.ordinal}`;
  return owner.kind === 'Pod' && (owner.name === '' || owner.name === pod.name);
}

/**
 * Every running pod whose status.podIPs holds an address of a netpin pod pool that netpin did not
 * give it: the CNI assigns from netpin's range, so a pod netpin pins there can find its address taken.
 */
export async function foreignAddresses(
  inputs: DoctorInputs,
  fix: (pod: RunningPod, pool: Pool) => string,
): Promise<Check[]> {
  const pinned = podPools(inputs.pools);
  const byIp = new Map(inputs.claims.map((c) => [c.ip.toString(), c]));
  const checks: Check[] = [];
  for (const pod of await inputs.source.runningPods()) {
    for (const text of pod.podIPs) {
      const ip = parseAddress(text);
      const pool = ip && pinned.find((p) => poolContains(p, ip));
      if (!ip || !pool) continue;
      const claim = byIp.get(ip.toString());
      if (claim && givenTo(claim.owner, pod)) continue;
      const holder = claim ? `which netpin gave to ${describeOwner(claim.owner)}` : 'and netpin holds no IPClaim on it';
      checks.push(
        fail(
          `pod ${pod.namespace}/${pod.name} uses ${ip.toString()} (status.podIPs) of netpin IPPool ${pool.name}, ${holder}: ` +
            'a pod netpin pins to it would find it taken',
          fix(pod, pool),
        ),
      );
    }
  }
  if (checks.length > 0) return checks;
  return [
    ok(
      'no running pod uses an address of a netpin IPPool that netpin did not give it ' +
        '(status.podIPs of every pod, against the IPClaims)',
    ),
  ];
}
