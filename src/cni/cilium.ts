import { KEYS } from '../intent/keys.js';
import { needsAddress, type Intent, type Problem } from '../intent/types.js';
import { addressList, formatRange, parseRange, rangeOverlap, type Address, type AddressRange } from '../net/address.js';
import { poolContains, type Pool } from '../ipam/pool.js';
import { bandwidthAnnotations } from './bandwidth.js';
import { CILIUM_POD_IP_POOLS, isPinnedOnCilium, pinnedPoolName } from './cilium-pools.js';
import type { Dialect, PoolCheck } from './dialect.js';
import { egressByResource, egressPoolProblems, eipProblems } from './egress.js';
import { isNetpins } from './managed.js';
import { netemProblems } from './netem.js';
import { addressIntentKeys } from './rules.js';

const PINNED = 'spec.cni.cilium.pinned: true';

export const cilium: Dialect = {
  name: 'cilium',
  title: 'Cilium',
  placementKeys: ['ipam.cilium.io/ip-pool', 'ipam.cilium.io/ipv4-pool', 'ipam.cilium.io/ipv6-pool'],
  addressKeys: [],
  // The agent's pod watcher compares the bandwidth annotations and applies a change live
  // (pkg/endpoint/events.go EndpointPolicyBandwidthEvent).
  liveKeys: [KEYS.ingressRate, KEYS.egressRate],

  // Cilium has no fixed-IP annotation (pkg/annotation/k8s.go): netpin pins through single-address
  // CiliumPodIPPools, and only addresses of pools it keeps out of Cilium's own (src/cni/cilium-pools.ts).
  pinsAddresses: (intent, _shape, pools) => needsAddress(intent) && pools.length > 0 && pools.every(isPinnedOnCilium),

  check(intent, _shape, pools, egressPools = []) {
    const problems = [...fixedProblems(intent, pools), ...poolProblems(intent, pools)];
    problems.push(...egressPoolProblems(intent, egressPools, 'Cilium', true));
    return [...problems, ...eipProblems(intent, 'A Cilium egress gateway'), ...netemProblems(intent, 'Cilium')];
  },

  render(intent, _shape, placement) {
    const annotations = bandwidthAnnotations(intent);
    const labels: Record<string, string> = {};
    const warnings: string[] = [];
    if (intent.ingressRate || intent.egressRate) {
      warnings.push(
        'Cilium enforces kubernetes.io/*-bandwidth only with the bandwidth manager (bandwidthManager.enabled=true), and never on traffic between pods of the same node.',
      );
    }
    if (intent.ingressRate) {
      warnings.push(
        'Check that your Cilium release limits ingress bandwidth (recent releases do, with BPF host routing); older ones ignore kubernetes.io/ingress-bandwidth.',
      );
    }
    const pinned = addressList(placement.addresses ?? {});
    // Always the family key: ip-pool would send the other family of a dual-stack cluster to a pool
    // without it, which never gives an address; this way it falls back to Cilium's own choice
    // (pkg/ipam/metadata/manager.go determinePoolByAnnotations).
    for (const addr of pinned) annotations[`ipam.cilium.io/${addr.kind()}-pool`] = pinnedPoolName(addr);
    if (pinned.length > 0) {
      warnings.push(
        'Cilium hands a pinned address to a node as a block of one: a pod that moves to another node waits in ContainerCreating until the old node has given the block back (docs/cni-contract.md, Cilium).',
      );
    } else {
      const pools = placement.pools;
      for (const p of pools) {
        const name = p.cni.cilium?.pool;
        if (!name) continue; // refused by check()
        if (pools.length === 1) annotations['ipam.cilium.io/ip-pool'] = name;
        else for (const f of p.families) annotations[`ipam.cilium.io/${f}-pool`] = name;
      }
      if (pools.length > 0) {
        warnings.push(
          `Cilium does not keep a pod IP across restarts, StatefulSet pods included: pool addresses come in node-local blocks. Addresses that stay come from an IPPool with ${PINNED}.`,
        );
      }
    }
    if (intent.egress) {
      // netpin keeps the CiliumEgressGatewayPolicy that selects the pod by this label.
      const egress = egressByResource('Cilium', placement.egress);
      Object.assign(labels, egress.labels);
      warnings.push(...egress.warnings);
      if (placement.egress?.ipv6) {
        warnings.push(
          'Check that your Cilium release accepts an IPv6 egressIP (cilium#44524; older ones do not), and note that cilium#48660 black-holes dual-stack destinationCIDRs with a v4 egressIP on 1.20.x.',
        );
      }
    }
    return { annotations, labels, warnings };
  },

  isWriteBack: () => false,

  nativePools: CILIUM_POD_IP_POOLS,
  checkPool: (pool, native) => checkPinnedPool(pool, native),
};

/**
 * A fixed address is pinned through its own CiliumPodIPPool, which is safe only inside a netpin IPPool
 * that Cilium never assigns from by itself (checkPinnedPool): anywhere else Cilium may give it to another pod.
 */
function fixedProblems(intent: Intent, pools: readonly Pool[]): Problem[] {
  const fixed = [...(intent.ip ? [intent.ip] : []), ...(intent.ips ?? [])].flatMap(addressList);
  const key = intent.ip ? KEYS.ip : KEYS.ips;
  const problems: Problem[] = [];
  for (const addr of uniqueAddresses(fixed)) {
    const home = pools.find((p) => poolContains(p, addr));
    if (home && isPinnedOnCilium(home)) continue;
    problems.push({
      key,
      message: `Cilium has no fixed pod IP annotation (cilium#17026): netpin pins ${addr.toString()} as a CiliumPodIPPool of that one address, and only for an address of an IPPool with ${PINNED}, whose range netpin keeps out of Cilium's own pools; ${home ? `IPPool ${home.name} is not pinned` : 'it lies in no IPPool'}`,
      fix: home
        ? `set ${PINNED} on IPPool ${home.name} (it then must not overlap a CiliumPodIPPool Cilium assigns from), or choose an address of a pinned IPPool`
        : `create an IPPool over ${addr.toString()} with ${PINNED}, or choose an address of one`,
    });
  }
  return problems;
}

function uniqueAddresses(list: readonly Address[]): Address[] {
  return [...new Map(list.map((a) => [a.toString(), a])).values()];
}

/** netpin.io/pool: each pool is pinned by netpin or names the CiliumPodIPPool Cilium assigns from, all alike. */
function poolProblems(intent: Intent, pools: readonly Pool[]): Problem[] {
  if (!intent.pools) return [];
  const key = addressIntentKeys(intent)[0] ?? KEYS.pool;
  const pinned = pools.filter(isPinnedOnCilium);
  const problems: Problem[] = pools
    .filter((p) => !isPinnedOnCilium(p) && !p.cni.cilium?.pool)
    .map((p) => ({
      key,
      message: `Cilium selects addresses by CiliumPodIPPool name, and netpin IPPool ${p.name} names none and is not pinned, so Cilium would ignore the address`,
      fix: `Set spec.cni.cilium.pool on IPPool ${p.name} to the CiliumPodIPPool Cilium assigns from, or ${PINNED} to have netpin pin each address`,
    }));
  if (pinned.length > 0 && pinned.length < pools.length) {
    problems.push({
      key,
      message: `IPPool ${pinned.map((p) => p.name).join(', ')} is pinned by netpin and IPPool ${pools
        .filter((p) => !isPinnedOnCilium(p))
        .map((p) => p.name)
        .join(', ')} is assigned by Cilium: a pod's families come either all pinned or all from Cilium's pools`,
      fix: `name pools of one kind in ${KEYS.pool}`,
    });
  }
  return problems;
}

/** A CiliumPodIPPool as read for overlaps: its name, whether netpin keeps it, and its CIDRs. */
interface CiliumPool {
  name: string;
  netpins: boolean;
  ranges: AddressRange[];
}

function readCiliumPool(obj: unknown): CiliumPool {
  const o = obj as {
    metadata?: { name?: string; labels?: Record<string, string> };
    spec?: { ipv4?: { cidrs?: unknown }; ipv6?: { cidrs?: unknown } };
  };
  const cidrs = [o.spec?.ipv4?.cidrs, o.spec?.ipv6?.cidrs].flatMap((c) => (Array.isArray(c) ? c : []));
  return {
    name: o.metadata?.name ?? '',
    netpins: isNetpins(o.metadata?.labels),
    ranges: cidrs.flatMap((c) => {
      const r = typeof c === 'string' ? parseRange(c, false) : undefined;
      return typeof r === 'object' ? [r] : [];
    }),
  };
}

/**
 * A pinned IPPool must share no address with a CiliumPodIPPool that Cilium assigns from by itself: the
 * default pool, one named by an annotation, one matched by selectors. Cilium checks no overlap between
 * its pools, so a pinned address would be Cilium's to give another pod too.
 */
function checkPinnedPool(pool: Pool, native: readonly unknown[] | string | undefined): PoolCheck {
  if (!isPinnedOnCilium(pool) || pool.egress) return { problems: [], warnings: [] };
  if (pool.cni.cilium?.pool !== undefined) {
    return {
      problems: [
        {
          key: 'spec.cni.cilium',
          message: `names CiliumPodIPPool ${pool.cni.cilium.pool}, which Cilium assigns from, and asks netpin to pin each address: one or the other`,
          fix: 'drop spec.cni.cilium.pool to have netpin pin the addresses, or drop pinned to let Cilium pick them',
        },
      ],
      warnings: [],
    };
  }
  const ranges = pool.families.flatMap((f) => pool.ranges[f]);
  if (native === undefined || typeof native === 'string') {
    return {
      problems: [],
      warnings: [
        `netpin could not read Cilium's CiliumPodIPPools${native ? ` (${native})` : ''}: check that none that Cilium assigns from overlaps ${ranges.map(formatRange).join(', ')}.`,
      ],
    };
  }
  const problems: Problem[] = [];
  for (const other of native.map(readCiliumPool).filter((c) => !c.netpins)) {
    for (const r of ranges) {
      const shared = other.ranges.map((o) => rangeOverlap(r, o)).find((x) => x !== undefined);
      if (!shared) continue;
      problems.push({
        key: 'spec.cidr',
        message: `${formatRange(shared)} lies in CiliumPodIPPool ${other.name}, which Cilium assigns from by itself, so an address netpin pins could be given to another pod too`,
        fix: `move the range out of CiliumPodIPPool ${other.name}, or add ${formatRange(shared)} to spec.exclude`,
      });
      break;
    }
  }
  return { problems, warnings: [] };
}
