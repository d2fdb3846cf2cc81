// netpin-ipam: netpin's own CNI IPAM plugin (netpin-ipam/ at the top of the repository), under any main
// plugin that delegates IPAM (bridge, macvlan, ipvlan, ptp, Multus attachments). containerd hands it the
// pod's annotations; it returns netpin.io/allocated with the prefix length and gateway of
// netpin.io/ipam, and asks its delegate (host-local, say) for pods netpin gave no address.
import { IPAM_KEY, ALLOCATED_KEY, KEYS } from '../intent/keys.js';
import { needsAddress, type Intent, type Problem } from '../intent/types.js';
import { poolContains, type Pool } from '../ipam/pool.js';
import { addressList, type Address } from '../net/address.js';
import { bandwidthAnnotations } from './bandwidth.js';
import type { Dialect } from './dialect.js';
import { netemProblems } from './netem.js';
import { addressIntentKeys } from './rules.js';
import { subnetFor, subnetsOf } from './subnets.js';

const TITLE = 'netpin-ipam';

/** One entry of netpin.io/ipam, as the plugin reads it. */
interface IpamEntry {
  address: string;
  gateway: string;
}

export const netpinIpam: Dialect = {
  name: 'netpin-ipam',
  title: TITLE,
  // The plugin reads netpin.io/allocated and netpin.io/ipam; the first is netpin's record, refused
  // when hand-written wherever netpin looks, the second is placed here so that it is refused too.
  placementKeys: [IPAM_KEY],
  addressKeys: [ALLOCATED_KEY],
  // The chained bandwidth plugin reads the rates once, when the sandbox is made.
  liveKeys: [],

  // The plugin has no ledger of its own: every address it returns is one netpin pinned.
  pinsAddresses: (intent) => needsAddress(intent),

  check(intent, _shape, pools) {
    return [...placementProblems(intent, pools), ...egressProblems(intent), ...netemProblems(intent, TITLE)];
  },

  render(intent, _shape, placement) {
    const annotations = bandwidthAnnotations(intent);
    const warnings: string[] = [];
    if (intent.ingressRate || intent.egressRate) {
      warnings.push(
        'netpin-ipam sets no rate itself: check that the bandwidth plugin follows it in the CNI configuration, with capabilities {"bandwidth": true}, or the rates are not enforced.',
      );
    }
    if (placement.addresses) {
      const entries = addressList(placement.addresses).flatMap((a) => entryFor(a, placement.pools));
      annotations[IPAM_KEY] = JSON.stringify(entries);
    }
    return { annotations, labels: {}, warnings };
  },

  isWriteBack: () => false,

  checkPool(pool) {
    // Egress pools give no pod address; the dialect refuses egress intents.
    if (pool.egress) return { problems: [], warnings: [] };
    return { problems: subnetsOf(pool).problems, warnings: [] };
  },
};

/** The address with its prefix length, and its gateway, from the subnet of the pool holding it. */
function entryFor(addr: Address, pools: readonly Pool[]): IpamEntry[] {
  const pool = pools.find((p) => poolContains(p, addr));
  const subnet = pool && subnetFor(subnetsOf(pool).subnets, addr);
  // check() refused an address without a subnet; none is written rather than a wrong one.
  return subnet ? [{ address: `${addr.toString()}/${subnet.prefixLength}`, gateway: subnet.gateway.toString() }] : [];
}

/**
 * Each fixed address must lie in an IPPool (the plugin gets its prefix length and gateway from there),
 * and each pool must give them for all its addresses.
 */
function placementProblems(intent: Intent, pools: readonly Pool[]): Problem[] {
  const keys = addressIntentKeys(intent);
  const key = keys[0] ?? KEYS.pool;
  const problems: Problem[] = [];
  const fixed = [...(intent.ip ? [intent.ip] : []), ...(intent.ips ?? [])].flatMap(addressList);
  for (const addr of fixed) {
    if (pools.some((p) => poolContains(p, addr))) continue;
    problems.push({
      key,
      message: `${addr.toString()} lies in no IPPool, and ${TITLE} takes the prefix length and gateway of an address from the IPPool that holds it`,
      fix: `create an IPPool over ${addr.toString()} (its spec.cidr, or spec.subnets, gives the subnet and gateway), or use netpin.io/pool`,
    });
  }
  for (const pool of pools) {
    for (const p of subnetsOf(pool).problems) {
      problems.push({
        key,
        message: `${TITLE} cannot place the addresses of IPPool ${pool.name} (${p.key}): ${p.message}`,
        fix: p.fix,
      });
    }
  }
  return problems;
}

/** The reference plugins set no per-pod source address: an egress IP needs the CNI's own gateway. */
function egressProblems(intent: Intent): Problem[] {
  if (!intent.egress) return [];
  const key = intent.egress.ip ? KEYS.egressIp : KEYS.egressPool;
  return [
    {
      key,
      message: `${TITLE} gives pod addresses only: the plugins it serves (bridge, macvlan, ipvlan, ptp) have no per-pod egress (SNAT) address`,
      fix: `Remove ${key}${intent.egress.mode === 'eip' ? ' and netpin.io/egress-mode' : ''}, or run the workload on Kube-OVN, Antrea or Cilium, which netpin gives egress addresses through`,
    },
  ];
}
