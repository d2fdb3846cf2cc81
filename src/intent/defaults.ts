import { KEYS } from './keys.js';

/**
 * A namespace's `netpin.io/pool` and `netpin.io/egress-pool` annotations, as written: the address
 * sources its pods get when they name none of their own. Parsed, like a pod's, only when used.
 */
export interface NamespaceDefaults {
  pool?: string;
  egressPool?: string;
}

/** The defaults a Namespace's annotations give. */
export function namespaceDefaults(annotations: Record<string, string> | undefined): NamespaceDefaults {
  const pool = annotations?.[KEYS.pool];
  const egressPool = annotations?.[KEYS.egressPool];
  return { ...(pool !== undefined && { pool }), ...(egressPool !== undefined && { egressPool }) };
}

/** Each default, and the keys by which a pod names a source of its own, which then wins. */
const SOURCES = [
  { key: KEYS.pool, field: 'pool', own: [KEYS.ip, KEYS.ips, KEYS.pool] },
  { key: KEYS.egressPool, field: 'egressPool', own: [KEYS.egressIp, KEYS.egressPool] },
] as const;

/**
 * A pod's (or pod template's) annotations as if it had written its namespace's defaults where it
 * names no address source of its own, whatever else it asks (a rate alone gets the default pool
 * too); `defaulted`: the keys taken from the namespace, for the refusals to name their source.
 */
export function withDefaults(
  annotations: Record<string, string>,
  defaults: NamespaceDefaults,
): { annotations: Record<string, string>; defaulted: string[] } {
  const added: Record<string, string> = {};
  for (const { key, field, own } of SOURCES) {
    const value = defaults[field];
    if (value !== undefined && own.every((k) => annotations[k] === undefined)) added[key] = value;
  }
  const defaulted = Object.keys(added);
  return { annotations: defaulted.length ? { ...annotations, ...added } : annotations, defaulted };
}
