// Pods through the API server, and the check of the ledger against them.
import type { V1Pod } from '@kubernetes/client-node';
import { apiMessage, calicoIps, listClaims, type ClaimView, type Clients } from '../cluster.js';
import { sleep } from '../controlplane.js';

export async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

export interface CreateOutcome {
  pod?: V1Pod;
  attempts: number;
  errors: string[];
}

/**
 * Creates a pod through the API server as a client that retries would: after a failed webhook call
 * or an in-band "could not decide", again a little later; AlreadyExists after a failed attempt means
 * that attempt was stored after all.
 */
export async function createPodRetrying(
  c: Clients,
  namespace: string,
  body: V1Pod,
  attempts = 8,
): Promise<CreateOutcome> {
  const errors: string[] = [];
  for (let i = 1; i <= attempts; i++) {
    try {
      return { pod: await c.core.createNamespacedPod({ namespace, body }), attempts: i, errors };
    } catch (e) {
      if ((e as { code?: number }).code === 409 && i > 1)
        return { pod: await c.core.readNamespacedPod({ namespace, name: body.metadata!.name! }), attempts: i, errors };
      errors.push(apiMessage(e).slice(0, 300));
      await sleep(250 * i);
    }
  }
  return { attempts, errors };
}

export async function listPods(c: Clients, namespace: string): Promise<V1Pod[]> {
  return (await c.core.listNamespacedPod({ namespace })).items.filter((p) => !p.metadata?.deletionTimestamp);
}

interface LedgerCheck {
  pods: number;
  claims: number;
  lost: string[];
}

/**
 * The ledger against the pods of a namespace: every pod carries exactly one address and it is its
 * netpin.io/allocated; no address is on two pods or in two claims; the pool's claims are exactly
 * the pods' addresses; and a pod's claim names that pod (once the reconciler has bound it).
 */
export function checkLedger(pods: V1Pod[], claims: ClaimView[], opts: { requireBound: boolean }): LedgerCheck {
  const lost: string[] = [];
  const byIp = new Map<string, string>();
  for (const p of pods) {
    const name = p.metadata!.name!;
    const ips = calicoIps(p);
    const allocated = p.metadata?.annotations?.['netpin.io/allocated'];
    if (ips.length !== 1 || allocated !== ips[0]) {
      lost.push(
        `pod ${name} carries ${JSON.stringify(ips)} (netpin.io/allocated ${allocated ?? 'absent'}), not one address`,
      );
      continue;
    }
    const prior = byIp.get(ips[0]!);
    if (prior) lost.push(`${ips[0]} is on two pods: ${prior} and ${name}`);
    byIp.set(ips[0]!, name);
  }
  const claimed = new Map<string, ClaimView>();
  for (const x of claims) {
    if (claimed.has(x.ip)) lost.push(`${x.ip} is in two claims`);
    claimed.set(x.ip, x);
  }
  for (const [ip, name] of byIp) {
    const x = claimed.get(ip);
    if (!x) lost.push(`pod ${name} uses ${ip}, which no claim holds`);
    else if (opts.requireBound && x.owner.kind === 'Pod' && x.owner.name !== name)
      lost.push(`the claim on ${ip} names pod ${x.owner.name || '(none)'}, but pod ${name} uses it`);
  }
  for (const [ip, x] of claimed) {
    if (!byIp.has(ip)) lost.push(`claim ${x.name} (${x.owner.kind} ${x.owner.name ?? ''}) has no pod`);
  }
  return { pods: pods.length, claims: claims.length, lost };
}

/** Waits for the ledger to settle (bounded), then returns the last check. */
export async function settledLedger(
  c: Clients,
  namespace: string,
  pool: string,
  withinMs: number,
): Promise<LedgerCheck & { waitedMs: number }> {
  const started = performance.now();
  let last: LedgerCheck = { pods: 0, claims: 0, lost: ['never checked'] };
  while (performance.now() - started < withinMs) {
    last = checkLedger(await listPods(c, namespace), await listClaims(c, pool), { requireBound: true });
    if (last.lost.length === 0) break;
    await sleep(1_000);
  }
  return { ...last, waitedMs: performance.now() - started };
}
