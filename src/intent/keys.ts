export const PREFIX = 'netpin.io/';

export const KEYS = {
  ip: 'netpin.io/ip',
  ips: 'netpin.io/ips',
  pool: 'netpin.io/pool',
  egressIp: 'netpin.io/egress-ip',
  egressPool: 'netpin.io/egress-pool',
  egressMode: 'netpin.io/egress-mode',
  ingressRate: 'netpin.io/ingress-rate',
  egressRate: 'netpin.io/egress-rate',
  latency: 'netpin.io/latency',
  jitter: 'netpin.io/jitter',
  loss: 'netpin.io/loss',
  limit: 'netpin.io/limit',
} as const;

/** Written by netpin on the pods it pinned, so that the reconciler can match claims to pods. */
export const ALLOCATED_KEY = 'netpin.io/allocated';
/** Written by netpin on the pods it gave an egress address, likewise. */
export const EGRESS_ALLOCATED_KEY = 'netpin.io/egress-allocated';
/**
 * Written by netpin under --cni netpin-ipam beside netpin.io/allocated: each address with its prefix
 * length and gateway, for the netpin-ipam plugin, which reads no IPPool.
 */
export const IPAM_KEY = 'netpin.io/ipam';
/** What netpin records on a pod, as opposed to what users ask for. */
const RECORD_KEYS: readonly string[] = [ALLOCATED_KEY, EGRESS_ALLOCATED_KEY, IPAM_KEY];

export function isRecordKey(key: string): boolean {
  return RECORD_KEYS.includes(key);
}
/**
 * A label on the same pods, for operators to select them (`-l netpin.io/pinned=true`). Nothing of netpin
 * selects by it: the reconciler watches every pod, since any pod may show an address of netpin's pools.
 */
export const PINNED_LABEL = 'netpin.io/pinned';

const INTENT_KEYS: readonly string[] = Object.values(KEYS);

/** How many netpin.io/ keys there are, those users write and those netpin records: a pod never has more. */
export const KNOWN_KEY_COUNT = INTENT_KEYS.length + RECORD_KEYS.length;

export function isIntentKey(key: string): boolean {
  return INTENT_KEYS.includes(key);
}

export function hasIntentKeys(annotations: Record<string, string> | undefined): boolean {
  if (!annotations) return false;
  for (const k of Object.keys(annotations)) if (k.startsWith(PREFIX) && !isRecordKey(k)) return true;
  return false;
}

/** A key is compared by its first characters only: a longer one is no typo, and a megabyte would cost seconds. */
const COMPARED_CHARS = 64;

/** The valid key closest to a mistyped one, by edit distance (of its first COMPARED_CHARS characters). */
export function nearestKey(key: string): string {
  const compared = key.slice(0, COMPARED_CHARS);
  let best: string = KEYS.ip;
  let bestDistance = Infinity;
  for (const k of INTENT_KEYS) {
    const d = editDistance(compared, k);
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
