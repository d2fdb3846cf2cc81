import { addressList, type Address, type DualAddress, type Intent, type Problem } from '../intent/types.js';
import type { Rendering } from './dialect.js';

export const EGRESS_LABEL = 'netpin.io/egress';

/**
 * One address as part of a label value: ':' is not allowed there and '-' is. A leading or
 * trailing "::" gets a 0 ("0--1" for ::1), which keeps the part valid and names the same address.
 */
function labelPart(addr: Address): string {
  let part = addr.toString().replaceAll(':', '-');
  if (part.startsWith('-')) part = `0${part}`;
  if (part.endsWith('-')) part = `${part}0`;
  return part;
}

/** "10.0.0.9", "fd00--9" or "10.0.0.9_fd00--9": at most 15 + 1 + 39 characters, within a label's 63. */
export function egressLabelValue(ip: DualAddress): string {
  return addressList(ip).map(labelPart).join('_');
}

type Selector = { matchLabels: Record<string, string> };

// Egress (pkg/controller/egress/validate.go rejects the plural egressIPs, so one object per address).
function antreaEgress(name: string, pods: Selector, addr: Address): object {
  return {
    apiVersion: 'crd.antrea.io/v1beta1',
    kind: 'Egress',
    metadata: { name },
    spec: { appliedTo: { podSelector: pods }, egressIP: addr.toString() },
  };
}

// With egressIP, all destinationCIDRs must be of its family, so one policy per address.
function ciliumPolicy(name: string, pods: Selector, addr: Address): object {
  const ip = addr.toString();
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumEgressGatewayPolicy',
    metadata: { name },
    spec: {
      selectors: [{ podSelector: pods }],
      destinationCIDRs: [addr.kind() === 'ipv4' ? '0.0.0.0/0' : '::/0'],
      egressGateway: { nodeSelector: { matchLabels: `<fill in: labels of the nodes that hold ${ip}>` }, egressIP: ip },
    },
  };
}

const RESOURCES = {
  antrea: {
    title: 'Antrea',
    kind: 'Egress',
    build: antreaEgress,
    caveat:
      'Antrea uses an egressIP given without externalIPPool only once it is configured on a node by hand (docs/egress.md).',
    dual: 'netpin writes one Antrea Egress per family because Antrea rejects egressIPs (plural); check that your Antrea release applies both to the pod, one per family.',
  },
  cilium: {
    title: 'Cilium',
    kind: 'CiliumEgressGatewayPolicy',
    build: ciliumPolicy,
    caveat:
      'Cilium uses the egressIP only if it is already configured on the gateway node, drops the traffic when no node matches nodeSelector, and ignores the whole policy if egressGateway sets interface as well as egressIP.',
    dual: 'netpin writes one CiliumEgressGatewayPolicy per family: with egressIP, all destinationCIDRs must be of the egressIP family.',
  },
} as const;

/**
 * For a CNI whose egress IP comes from a cluster-scoped resource rather than a pod annotation:
 * netpin labels the pod and warns with the exact resource, one per family, that the operator applies.
 */
export function egressByResource(cni: keyof typeof RESOURCES, ip: DualAddress): Pick<Rendering, 'labels' | 'warnings'> {
  const r = RESOURCES[cni];
  const value = egressLabelValue(ip);
  const pods = { matchLabels: { [EGRESS_LABEL]: value } };
  const addrs = addressList(ip);
  const warnings = addrs.map(
    (addr) =>
      `${r.title} sets an egress IP through a cluster-scoped ${r.kind}, not a pod annotation; ` +
      `netpin labelled the pod ${EGRESS_LABEL}=${value}; apply: ${JSON.stringify(r.build(`netpin-egress-${labelPart(addr)}`, pods, addr))}`,
  );
  warnings.push(r.caveat);
  if (addrs.length > 1) warnings.push(r.dual);
  return { labels: { [EGRESS_LABEL]: value }, warnings };
}

/** For a CNI whose egress IP is SNAT only: `netpin.io/egress-mode: eip` asks for what it cannot do. */
export function eipProblems(intent: Intent, what: string): Problem[] {
  if (intent.egress?.mode !== 'eip') return [];
  return [
    {
      key: 'netpin.io/egress-mode',
      message: `${what} only SNATs outbound traffic; it has no 1:1 elastic IP`,
      fix: "Use netpin.io/egress-mode: snat, or Kube-OVN's ovn.kubernetes.io/eip for a 1:1 NAT",
    },
  ];
}
