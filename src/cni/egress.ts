import { KEYS } from '../intent/keys.js';
import { type Intent, type Problem } from '../intent/types.js';
import { addressList, familyOf, fromBigInt, type Address, type DualAddress } from '../net/address.js';
import { ownerKey, type Claim } from '../ipam/claim.js';
import { poolContains, type Pool } from '../ipam/pool.js';
import type { Rendering } from './dialect.js';
import { addressPart, managedResource, type ManagedKind, type ManagedResource, type ManagedSet } from './managed.js';

export const EGRESS_LABEL = 'netpin.io/egress';

/** "10.0.0.9", "fd00--9" or "10.0.0.9_fd00--9": at most 15 + 1 + 39 characters, within a label's 63. */
export function egressLabelValue(ip: DualAddress): string {
  return addressList(ip).map(addressPart).join('_');
}

/** The name of the resource netpin keeps for one egress address. */
function egressResourceName(addr: Address): string {
  return `netpin-egress-${addressPart(addr)}`;
}

/** One egress address as the CNI resources need it: the pods that use it and the pool it is from. */
export interface EgressUse {
  address: Address;
  namespace: string;
  /** The value of the pods' netpin.io/egress label: every family of their egress. */
  labelValue: string;
  pool: Pool;
}

export type EgressCni = 'antrea' | 'cilium';

const EXTERNAL_IP_POOL = { apiVersion: 'crd.antrea.io/v1beta1', kind: 'ExternalIPPool', plural: 'externalippools' };
const ANTREA_EGRESS = { apiVersion: 'crd.antrea.io/v1beta1', kind: 'Egress', plural: 'egresses' };
const CILIUM_POLICY = {
  apiVersion: 'cilium.io/v2',
  kind: 'CiliumEgressGatewayPolicy',
  plural: 'ciliumegressgatewaypolicies',
};

function kindOf({ apiVersion, plural }: ManagedKind): ManagedKind {
  return { apiVersion, plural };
}

/** Antrea's ExternalIPPool for a netpin egress pool: its ranges, on its gateway nodes. */
function antreaExternalIPPool(pool: Pool): ManagedResource {
  const ipRanges = pool.families.flatMap((f) =>
    pool.ranges[f].map((r) => ({ start: fromBigInt(r.first, f).toString(), end: fromBigInt(r.last, f).toString() })),
  );
  return managedResource(EXTERNAL_IP_POOL, `netpin-${pool.name}`, {
    ipRanges,
    nodeSelector: pool.egress?.nodeSelector ?? {},
  });
}

// One Egress per address: Antrea rejects the plural egressIPs (pkg/controller/egress/validate.go).
function antreaEgress(use: EgressUse): ManagedResource {
  return managedResource(ANTREA_EGRESS, egressResourceName(use.address), {
    appliedTo: {
      podSelector: { matchLabels: { [EGRESS_LABEL]: use.labelValue } },
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': use.namespace } },
    },
    egressIP: use.address.toString(),
    externalIPPool: antreaExternalIPPool(use.pool).metadata.name,
  });
}

// With egressIP, every destinationCIDR must be of its family: one policy per address. Never both
// interface and egressIP, which makes Cilium ignore the whole policy.
function ciliumPolicy(use: EgressUse, excludedCIDRs: readonly string[]): ManagedResource {
  const v4 = use.address.kind() === 'ipv4';
  const excluded = excludedCIDRs.filter((c) => c.includes(':') !== v4);
  return managedResource(CILIUM_POLICY, egressResourceName(use.address), {
    selectors: [
      {
        podSelector: {
          matchLabels: { [EGRESS_LABEL]: use.labelValue, 'io.kubernetes.pod.namespace': use.namespace },
        },
      },
    ],
    destinationCIDRs: [v4 ? '0.0.0.0/0' : '::/0'],
    ...(excluded.length ? { excludedCIDRs: excluded } : {}),
    egressGateway: { nodeSelector: use.pool.egress?.nodeSelector ?? {}, egressIP: use.address.toString() },
  });
}

/** Every resource the CNI needs for these egress addresses. */
export function egressResources(
  cni: EgressCni,
  uses: readonly EgressUse[],
  excludedCIDRs: readonly string[],
): ManagedResource[] {
  if (cni === 'cilium') return uses.map((u) => ciliumPolicy(u, excludedCIDRs));
  const pools = [...new Map(uses.map((u) => [u.pool.name, u.pool])).values()];
  return [...pools.map(antreaExternalIPPool), ...uses.map(antreaEgress)];
}

/** The kinds of resource a CNI's egress needs, for listing what netpin keeps. */
function egressKinds(cni: EgressCni): ManagedKind[] {
  return cni === 'cilium' ? [kindOf(CILIUM_POLICY)] : [kindOf(EXTERNAL_IP_POOL), kindOf(ANTREA_EGRESS)];
}

/**
 * The resources that put the ledger's egress addresses on gateway nodes: one per egress address
 * claimed (Antrea Egress, Cilium CiliumEgressGatewayPolicy), and Antrea's ExternalIPPool per egress pool in use.
 */
export function egressSet(cni: EgressCni, excludedCIDRs: readonly string[]): ManagedSet {
  return {
    kinds: egressKinds(cni),
    desired(index) {
      const byOwner = new Map<string, Claim[]>();
      for (const c of index.allClaims()) {
        if (c.owner.kind !== 'Egress' || c.owner.cluster !== undefined) continue;
        const key = ownerKey(c.owner);
        byOwner.set(key, [...(byOwner.get(key) ?? []), c]);
      }
      const uses: EgressUse[] = [];
      for (const claims of byOwner.values()) {
        // The pods carry one label for all the families of their egress: each family's resource selects it.
        const dual: DualAddress = {};
        for (const c of claims) Object.assign(dual, { [familyOf(c.ip)]: c.ip });
        for (const c of claims) {
          const pool = index.pool(c.pool);
          if (pool?.egress)
            uses.push({ address: c.ip, namespace: c.owner.namespace, labelValue: egressLabelValue(dual), pool });
        }
      }
      return egressResources(cni, uses, excludedCIDRs);
    },
  };
}

/**
 * For a CNI whose egress address comes from a cluster resource that netpin keeps: the pod gets the
 * label the resource selects; it must come from an egress pool, where netpin knows the gateway nodes.
 */
export function egressByResource(
  title: string,
  egress: DualAddress | undefined,
): Pick<Rendering, 'labels' | 'warnings'> {
  if (!egress) return { labels: {}, warnings: [] };
  return {
    labels: { [EGRESS_LABEL]: egressLabelValue(egress) },
    warnings: [
      `${title} uses the egress address only once it is configured on a gateway node that the egress pool's spec.egress.nodeSelector selects.`,
    ],
  };
}

/**
 * The rule every CNI with an egress address shares: the address comes from an egress pool that the
 * namespace may use (`egressPools`). There netpin's ledger holds it for one owner, and the pool's
 * namespaceSelector says who may use it; an address outside every pool would be anyone's, another
 * team's egress address or a gateway alike.
 * A CNI that puts the address on gateway nodes itself (`needsNodes`) needs the pool to name them.
 */
export function egressPoolProblems(
  intent: Intent,
  egressPools: readonly Pool[],
  title: string,
  needsNodes: boolean,
): Problem[] {
  if (!intent.egress) return [];
  const key = intent.egress.ip ? KEYS.egressIp : KEYS.egressPool;
  // Egress pools named by netpin.io/egress-pool that do not resolve are the plan's to refuse.
  const outside = addressList(intent.egress.ip ?? {}).filter((a) => !egressPools.some((p) => poolContains(p, a)));
  if (outside.length > 0) {
    return outside.map((a) => ({
      key,
      message: `${a.toString()} is no address of an egress pool this namespace may use, and ${title} would send the pod's outbound traffic from it: netpin gives an egress address only from an IPPool with spec.egress whose namespaceSelector selects the namespace, where its ledger holds the address for one owner`,
      fix: 'choose an address of an IPPool with spec.egress that selects this namespace, or have one given with netpin.io/egress-pool',
    }));
  }
  if (!needsNodes) return [];
  return egressPools
    .filter((p) => !p.egress?.nodeSelector)
    .map((p) => ({
      key,
      message: `${title} needs the gateway nodes of an egress address, and egress IPPool ${p.name} names none`,
      fix: `set spec.egress.nodeSelector on IPPool ${p.name} to the labels of the nodes that hold its addresses`,
    }));
}

/** For a CNI whose egress IP is SNAT only: `netpin.io/egress-mode: eip` asks for what it cannot do. */
export function eipProblems(intent: Intent, what: string): Problem[] {
  if (intent.egress?.mode !== 'eip') return [];
  return [
    {
      key: KEYS.egressMode,
      message: `${what} only SNATs outbound traffic; it has no 1:1 elastic IP`,
      fix: "Use netpin.io/egress-mode: snat, or Kube-OVN's ovn.kubernetes.io/eip for a 1:1 NAT",
    },
  ];
}
