import { KEYS } from '../intent/keys.js';
import { parseRate } from '../intent/parse.js';
import { formatQuantity } from '../intent/quantity.js';
import type { Intent, Problem } from '../intent/types.js';

/** Read by containerd for every pod sandbox, whatever the CNI. */
const BANDWIDTH_KEYS = ['kubernetes.io/ingress-bandwidth', 'kubernetes.io/egress-bandwidth'] as const;

/**
 * `kubernetes.io/{ingress,egress}-bandwidth` in bits/s. containerd parses both keys for every
 * sandbox whatever the CNI (internal/cri/server/sandbox_run.go `toCNIBandWidth`); the intent
 * parser already holds rates to the 1k..1P it accepts, so this only renders.
 */
export function bandwidthAnnotations(intent: Intent): Record<string, string> {
  const out: Record<string, string> = {};
  if (intent.ingressRate) out[BANDWIDTH_KEYS[0]] = formatQuantity(intent.ingressRate.bitsPerSecond);
  if (intent.egressRate) out[BANDWIDTH_KEYS[1]] = formatQuantity(intent.egressRate.bitsPerSecond);
  return out;
}

/**
 * Hand-written bandwidth values: containerd refuses the whole sandbox for a bad one, under every
 * CNI, long after admission (internal/cri/server/sandbox_run.go toCNIBandWidth).
 */
export function bandwidthProblems(annotations: Record<string, string>): Problem[] {
  const out: Problem[] = [];
  for (const key of BANDWIDTH_KEYS) {
    const v = annotations[key];
    const r = v === undefined ? undefined : parseRate(v);
    if (typeof r === 'string') {
      out.push({
        key,
        message: `${r}, so containerd would refuse the pod sandbox`,
        fix: `write bits per second as a quantity such as 10M, or use ${KEYS.ingressRate} and ${KEYS.egressRate}`,
      });
    }
  }
  return out;
}
