import { KEYS } from '../../intent/keys.js';
import { addressList, familyOf, type DualAddress } from '../../net/address.js';
import { ConflictError, ExhaustedError, ownerKey } from '../claim.js';
import type { Ledger } from '../ledger.js';
import { poolContains } from '../pool.js';
import { claimAll } from './claiming.js';
import { exhausted, overLimit } from './namespace-limit.js';
import { dualOf, fail, fits } from './shared.js';
import type { EgressRequest, EgressResult } from './types.js';

const CHOOSE_ANOTHER = 'choose another egress address, or have one given with netpin.io/egress-pool';

/**
 * The egress address of an owner: the one it holds already while it still fits the intent,
 * else the fixed one (claimed when it lies in an egress pool) or the first free of each egress
 * pool. Shared owners (a Deployment, a StatefulSet in snat mode) get one address for all pods.
 */
export async function allocateEgress(ledger: Ledger, req: EgressRequest): Promise<EgressResult> {
  const { intent, plan, owner } = req;
  const egress = intent.egress!;
  if (plan.problems.length) return { ok: false, problems: plan.problems };
  const held = ledger.index.claimsOf(owner);
  if (held.length > 0 && !req.dryRun) ledger.checkHeld?.(held);
  const wanted = egress.ip ? [egress.ip] : undefined;
  if (held.length > 0 && fits(held, wanted, plan.egressByFamily))
    return { ok: true, addresses: dualOf(held), fresh: [] };
  if (!req.dryRun) for (const c of held) await ledger.release(c);
  return egress.ip ? fixedEgress(ledger, req, egress.ip) : egressFromPools(ledger, req);
}

/** A fixed egress address: claimed where it lies in an egress pool; outside every pool it is the operator's. */
async function fixedEgress(ledger: Ledger, req: EgressRequest, ip: DualAddress): Promise<EgressResult> {
  const { index } = ledger;
  const claimable = addressList(ip).filter((a) => req.plan.egressPools.some((p) => poolContains(p, a)));
  for (const a of claimable) {
    const holder = index.holderOf(a);
    if (holder && ownerKey(holder.owner) !== ownerKey(req.owner))
      return fail(KEYS.egressIp, `${new ConflictError(holder).message}`, CHOOSE_ANOTHER);
  }
  const over = overLimit(
    index,
    req,
    claimable.map((a) => [index.poolOf(a)!, familyOf(a)]),
    KEYS.egressIp,
  );
  if (over) return over;
  if (req.dryRun || claimable.length === 0) return { ok: true, addresses: ip, fresh: [] };
  try {
    const got = await claimAll(
      ledger,
      claimable.map((a) => ledger.claim(index.poolOf(a)!, a, req.owner)),
    );
    return { ok: true, addresses: ip, fresh: got };
  } catch (e) {
    if (e instanceof ConflictError) return fail(KEYS.egressIp, e.message, CHOOSE_ANOTHER);
    throw e;
  }
}

/** The first free address of each family's egress pool. */
async function egressFromPools(ledger: Ledger, req: EgressRequest): Promise<EgressResult> {
  const { index } = ledger;
  const byFamily = req.plan.egressByFamily;
  const families = (['ipv4', 'ipv6'] as const).filter((f) => byFamily[f]);
  const over = overLimit(
    index,
    req,
    families.map((f) => [byFamily[f]!, f]),
    KEYS.egressPool,
  );
  if (over) return over;
  if (req.dryRun) {
    const addresses: DualAddress = {};
    for (const f of families) {
      const ip = index.firstFree(byFamily[f]!.name, f);
      if (!ip) return exhausted(index, new ExhaustedError(byFamily[f]!, f), req.namespaceLabels, KEYS.egressPool);
      Object.assign(addresses, { [f]: ip });
    }
    return { ok: true, addresses, fresh: [] };
  }
  try {
    const got = await claimAll(
      ledger,
      families.map((f) => ledger.claimNext(byFamily[f]!, f, req.owner)),
    );
    return { ok: true, addresses: dualOf(got), fresh: got };
  } catch (e) {
    if (e instanceof ExhaustedError) return exhausted(index, e, req.namespaceLabels, KEYS.egressPool);
    throw e;
  }
}
