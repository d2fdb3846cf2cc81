// `netpin status`: each opted-in namespace's default pools, and why one would refuse its pods.
import type { NamespaceDefaults } from '../intent/defaults.js';
import { KEYS } from '../intent/keys.js';
import { parseIntent } from '../intent/parse.js';
import { poolAdmitsNamespace, type Pool } from '../ipam/pool.js';
import { matchesSelector, type LabelSelector } from '../ipam/selector.js';
import { shown } from '../net/shown.js';

interface Namespace {
  name: string;
  labels: Record<string, string>;
  defaults?: NamespaceDefaults;
}

/** One row per opted-in namespace with a default: the pool, the egress pool, and what is wrong with them. */
export function defaultsTable(
  input: { pools: Pool[]; namespaces: Namespace[]; optIn: LabelSelector },
  table: (header: string[], rows: string[][]) => string,
): string {
  const rows = input.namespaces
    .filter((ns) => (ns.defaults?.pool ?? ns.defaults?.egressPool) !== undefined)
    .filter((ns) => matchesSelector(input.optIn, ns.labels))
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((ns) => [
      ns.name,
      ns.defaults?.pool === undefined ? '-' : shown(ns.defaults.pool),
      ns.defaults?.egressPool === undefined ? '-' : shown(ns.defaults.egressPool),
      problemsOf(ns, input.pools).join('; ') || 'ok',
    ]);
  if (rows.length === 0) return 'No opted-in namespace has a default pool (netpin.io/pool on the Namespace).';
  return table(['NAMESPACE', 'DEFAULT POOL', 'DEFAULT EGRESS POOL', 'CHECK'], rows);
}

/** What the admission would refuse a pod for that takes these defaults, as far as pools and selectors tell. */
function problemsOf(ns: Namespace, pools: Pool[]): string[] {
  const { pool, egressPool } = ns.defaults ?? {};
  const { intent, problems } = parseIntent({
    ...(pool !== undefined && { [KEYS.pool]: pool }),
    ...(egressPool !== undefined && { [KEYS.egressPool]: egressPool }),
  });
  const out = problems.map((p) => `${p.key}: ${p.message}`);
  const check = (names: string[] | undefined, egress: boolean) => {
    for (const name of names ?? []) {
      const p = pools.find((q) => q.name === name);
      if (!p) out.push(`no IPPool ${name}`);
      else if ((p.egress !== undefined) !== egress)
        out.push(`IPPool ${name} is ${egress ? 'not an egress pool' : 'an egress pool'}`);
      else if (!poolAdmitsNamespace(p, { ...ns.labels, 'kubernetes.io/metadata.name': ns.name }))
        out.push(`IPPool ${name}'s namespaceSelector does not select it`);
    }
  };
  check(intent.pools, false);
  check(intent.egress?.pools, true);
  return out;
}
