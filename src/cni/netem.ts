// netem: latency, jitter, loss and queue limit, which only Kube-OVN applies to pods (through its own
// ovn.kubernetes.io/ keys); every other dialect refuses them.
import { KEYS } from '../intent/keys.js';
import type { Intent, Problem } from '../intent/types.js';

/** The netem intents; `name` is both the netpin key suffix and Kube-OVN's key suffix. */
export const NETEM = [
  { field: 'latencyMs', name: 'latency', unit: 'ms' },
  { field: 'jitterMs', name: 'jitter', unit: 'ms' },
  { field: 'lossPercent', name: 'loss', unit: '%' },
  { field: 'limitPackets', name: 'limit', unit: 'packets' },
] as const satisfies ReadonlyArray<{ field: keyof Intent; name: string; unit: string }>;

/** One problem per netem key, for a CNI that has no latency, jitter, loss or queue-limit control. */
export function netemProblems(intent: Intent, title: string): Problem[] {
  return NETEM.filter(({ field }) => intent[field] !== undefined).map(({ name }) => ({
    key: KEYS[name],
    message: `${title} has no netem-style ${name} control for pods`,
    fix: `Remove netpin.io/${name}, or run the workload on Kube-OVN, which applies it through ovn.kubernetes.io/${name}`,
  }));
}
