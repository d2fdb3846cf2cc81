import { KEYS } from '../intent/keys.js';
import type { Intent, Problem } from '../intent/types.js';
import type { CniPoolNames, Pool } from '../ipam/pool.js';

/** The netpin.io/ keys that say where a pod's addresses come from, as the intent uses them. */
export function addressIntentKeys(intent: Intent): string[] {
  return [...(intent.ip ? [KEYS.ip] : []), ...(intent.ips ? [KEYS.ips] : []), ...(intent.pools ? [KEYS.pool] : [])];
}

/** One problem per fixed-address key (netpin.io/ip, netpin.io/ips) the intent uses. */
export function fixedAddressProblems(intent: Intent, message: string, fix: string): Problem[] {
  return addressIntentKeys(intent)
    .filter((key) => key !== KEYS.pool)
    .map((key) => ({ key, message, fix }));
}

/**
 * For a CNI that selects addresses by its own pool name: every netpin pool the pod's addresses
 * come from must name one, or the CNI would ignore the address. The key at fault is the one
 * that led to the pool: netpin.io/pool, or the fixed address that lies in it.
 */
export function unnamedPoolProblems(
  intent: Intent,
  pools: readonly Pool[],
  cni: 'antrea' | 'cilium',
  native: string,
  title: string,
): Problem[] {
  const key = intent.pools ? KEYS.pool : intent.ip ? KEYS.ip : KEYS.ips;
  return pools
    .filter((p) => !p.cni[cni]?.pool)
    .map((p) => ({
      key,
      message: `${title} selects addresses by ${native} name, and netpin IPPool ${p.name} names none, so ${title} would ignore the address`,
      fix: `Set spec.cni.${cni}.pool on IPPool ${p.name} to the ${native} name`,
    }));
}

/** The CNI-native names the pools give, deduplicated, in pool order. */
export function nativeNames(pools: readonly Pool[], pick: (cni: CniPoolNames) => string | undefined): string[] {
  return [...new Set(pools.flatMap((p) => pick(p.cni) ?? []))];
}
