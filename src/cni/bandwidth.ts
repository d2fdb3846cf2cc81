import { formatQuantity } from '../intent/quantity.js';
import type { Intent, Problem } from '../intent/types.js';

/**
 * `kubernetes.io/{ingress,egress}-bandwidth` in bits/s. containerd parses both keys for every
 * sandbox whatever the CNI (internal/cri/server/sandbox_run.go `toCNIBandWidth`); the intent
 * parser already holds rates to the 1k..1P it accepts, so this only renders.
 */
export function bandwidthAnnotations(intent: Intent): Record<string, string> {
  const out: Record<string, string> = {};
  if (intent.ingressRate) out['kubernetes.io/ingress-bandwidth'] = formatQuantity(intent.ingressRate.bitsPerSecond);
  if (intent.egressRate) out['kubernetes.io/egress-bandwidth'] = formatQuantity(intent.egressRate.bitsPerSecond);
  return out;
}

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
    key: `netpin.io/${name}`,
    message: `${title} has no netem-style ${name} control for pods`,
    fix: `Remove netpin.io/${name}, or run the workload on Kube-OVN, which applies it through ovn.kubernetes.io/${name}`,
  }));
}
