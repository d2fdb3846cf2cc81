// A namespace's default pools (netpin.io/pool, netpin.io/egress-pool on the Namespace): what a new pod,
// or a workload's template, that names no address source of its own is judged and given by.
import { withDefaults } from '../intent/defaults.js';
import { KEYS } from '../intent/keys.js';
import type { Problem } from '../intent/types.js';
import type { Admit } from './context.js';

export interface Defaulted {
  annotations: Record<string, string>;
  /** The keys taken from the namespace. */
  defaulted: string[];
}

/**
 * The annotations a new pod or a template is judged by: its own, and the namespace's defaults where
 * it names no source. A hostNetwork pod uses the node's addresses: a default would only hold one.
 */
export function defaultedAnnotations(
  annotations: Record<string, string>,
  namespace: string,
  hostNetwork: boolean,
  admit: Admit,
): Defaulted {
  if (hostNetwork) return { annotations, defaulted: [] };
  return withDefaults(annotations, admit.cluster.namespaceDefaults(namespace));
}

/** What the workload writes to name a source of its own instead of the namespace's default `key`. */
const OWN: Record<string, string> = {
  [KEYS.pool]: 'netpin.io/ip, netpin.io/ips or netpin.io/pool',
  [KEYS.egressPool]: 'netpin.io/egress-ip or netpin.io/egress-pool',
};

/** The problems of the keys taken from the namespace, marked as its: the fix is there, or a source of the pod's own. */
export function sourced(problems: readonly Problem[], defaulted: readonly string[], namespace: string): Problem[] {
  return problems.map((p) =>
    defaulted.includes(p.key)
      ? {
          ...p,
          source: `namespace ${namespace}'s default`,
          fix: `${p.fix}; the value is the annotation ${p.key} of Namespace ${namespace}: change it there (kubectl annotate namespace ${namespace} --overwrite ${p.key}=<pool>), or write ${OWN[p.key]} on the pod or pod template`,
        }
      : p,
  );
}
