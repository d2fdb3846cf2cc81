import { KEYS } from '../intent/keys.js';
import { bandwidthAnnotations } from './bandwidth.js';
import { netemProblems } from './netem.js';
import type { Dialect } from './dialect.js';
import { egressByResource, egressPoolProblems, eipProblems } from './egress.js';
import { fixedAddressProblems, unnamedPoolProblems } from './rules.js';

export const cilium: Dialect = {
  name: 'cilium',
  title: 'Cilium',
  placementKeys: ['ipam.cilium.io/ip-pool', 'ipam.cilium.io/ipv4-pool', 'ipam.cilium.io/ipv6-pool'],
  addressKeys: [],
  // The agent's pod watcher compares the bandwidth annotations and applies a change live
  // (pkg/endpoint/events.go EndpointPolicyBandwidthEvent).
  liveKeys: [KEYS.ingressRate, KEYS.egressRate],

  // Cilium has no primary-network fixed IP (pkg/annotation/k8s.go); a pool is only selected, never pinned.
  pinsAddresses: () => false,

  check(intent, _shape, pools, egressPools = []) {
    const problems = fixedAddressProblems(
      intent,
      'Cilium has no fixed pod IP annotation for the primary network (cilium#17026)',
      'Use netpin.io/pool with a CiliumPodIPPool, or Kube-OVN or Calico for fixed IPs',
    );
    if (intent.pools) problems.push(...unnamedPoolProblems(intent, pools, 'cilium', 'CiliumPodIPPool', 'Cilium'));
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
    const pools = placement.pools;
    for (const p of pools) {
      const name = p.cni.cilium?.pool;
      if (!name) continue; // refused by check()
      if (pools.length === 1) annotations['ipam.cilium.io/ip-pool'] = name;
      // One pool per family; the family keys win over ip-pool (pkg/ipam/metadata/manager.go).
      else for (const f of p.families) annotations[`ipam.cilium.io/${f}-pool`] = name;
    }
    if (pools.length > 0) {
      warnings.push(
        'Cilium does not keep a pod IP across restarts, StatefulSet pods included: pool addresses come in node-local blocks.',
      );
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

  // Cilium picks the addresses itself from the CiliumPodIPPool: netpin pins none, so none can collide.
  checkPool: () => ({ problems: [], warnings: [] }),
};
