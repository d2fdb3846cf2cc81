// Fixed addresses on Cilium. Cilium has no annotation that pins a pod IP, but its multi-pool IPAM takes
// a CiliumPodIPPool of one address (a /32 or /128 CIDR with maskSize equal to it, cilium#34618): a pod
// annotated with that pool's name gets exactly that address. netpin keeps one such pool per address it
// pins from an IPPool with spec.cni.cilium.pinned, named after the address and labelled as netpin's.
import { addressList, familyOf, type Address, type DualAddress } from '../net/address.js';
import type { Pool } from '../ipam/pool.js';
import { addressPart, managedResource, type ManagedResource, type ManagedSet } from './managed.js';

const CILIUM_POD_IP_POOL = { apiVersion: 'cilium.io/v2alpha1', kind: 'CiliumPodIPPool', plural: 'ciliumpodippools' };

/** Where Cilium's pools are served: the kind netpin lists, and keeps its single-address ones among. */
export const CILIUM_POD_IP_POOLS = { group: 'cilium.io', version: 'v2alpha1', plural: CILIUM_POD_IP_POOL.plural };

/** Whether netpin picks this pool's addresses on Cilium and gives each as a pool of its own. */
export function isPinnedOnCilium(pool: Pool): boolean {
  return pool.cni.cilium?.pinned === true;
}

/** "netpin-10.0.0.9", "netpin-fd00--9": a DNS subdomain, as object names must be. */
export function pinnedPoolName(addr: Address): string {
  return `netpin-${addressPart(addr)}`;
}

/** The CiliumPodIPPool that holds exactly `addr`; no selectors, so that Cilium gives it only to pods that name it. */
export function pinnedPool(addr: Address): ManagedResource {
  const family = familyOf(addr);
  const bits = family === 'ipv4' ? 32 : 128;
  return managedResource(CILIUM_POD_IP_POOL, pinnedPoolName(addr), {
    [family]: { cidrs: [`${addr.toString()}/${bits}`], maskSize: bits },
    // The API server's defaults, written out so that a stored pool compares equal to the wanted one;
    // Cilium ignores both on a /32 or /128 (pkg/k8s/apis/cilium.io/v2alpha1/ippool_types.go).
    allowFirstIP: false,
    allowLastIP: false,
  });
}

/** The pools a pod's pinned addresses need before it can start. */
export function pinnedPoolsFor(addresses: DualAddress | undefined, pools: readonly Pool[]): ManagedResource[] {
  if (!pools.some(isPinnedOnCilium)) return [];
  return addressList(addresses ?? {}).map(pinnedPool);
}

/**
 * One CiliumPodIPPool per address the ledger holds from a pinned pool: pods' claims, StatefulSet ordinals
 * and DaemonSet nodes alike, so that a reserved address keeps its pool while its pod is away. Admission
 * creates a pod's pools too, on whichever replica admits it: young pools stay while the leader's watch
 * catches up with their claims.
 */
export const ciliumPinnedPools: ManagedSet = {
  kinds: [{ apiVersion: CILIUM_POD_IP_POOL.apiVersion, plural: CILIUM_POD_IP_POOL.plural }],
  keepYoungMs: 60_000,
  desired(index) {
    const wanted = new Map<string, ManagedResource>();
    for (const c of index.allClaims()) {
      if (c.observed || c.owner.kind === 'Egress' || c.owner.cluster !== undefined) continue;
      const pool = index.pool(c.pool);
      if (!pool || !isPinnedOnCilium(pool)) continue;
      const r = pinnedPool(c.ip);
      wanted.set(r.metadata.name, r);
    }
    return [...wanted.values()];
  },
};
