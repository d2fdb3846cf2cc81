import type { Problem } from '../intent/types.js';
import { bandwidthAnnotations, netemProblems } from './bandwidth.js';
import type { Dialect } from './dialect.js';
import { egressByResource, eipProblems } from './egress.js';

export const cilium: Dialect = {
  name: 'cilium',
  title: 'Cilium',
  addressKeys: ['ipam.cilium.io/ip-pool', 'ipam.cilium.io/ipv4-pool', 'ipam.cilium.io/ipv6-pool'],

  // Cilium has no primary-network fixed IP (pkg/annotation/k8s.go); a pool is only selected, never pinned.
  pinsAddresses: () => false,

  check(intent, _shape, pools) {
    const problems: Problem[] = (['ip', 'ips'] as const)
      .filter((k) => intent[k] !== undefined)
      .map((k) => ({
        key: `netpin.io/${k}`,
        message: 'Cilium has no fixed pod IP annotation for the primary network (cilium#17026)',
        fix: 'Use netpin.io/pool with a CiliumPodIPPool, or Kube-OVN or Calico for fixed IPs',
      }));
    for (const p of pools.filter((p) => !p.cni.cilium?.pool)) {
      problems.push({
        key: 'netpin.io/pool',
        message: `Cilium selects pools by CiliumPodIPPool name, and netpin IPPool ${p.name} names none`,
        fix: `Set spec.cni.cilium.pool on IPPool ${p.name} to the CiliumPodIPPool name`,
      });
    }
    return [...problems, ...eipProblems(intent, 'A Cilium egress gateway'), ...netemProblems(intent, 'Cilium')];
  },

  render(intent, pools) {
    const annotations = bandwidthAnnotations(intent);
    const labels: Record<string, string> = {};
    const warnings: string[] = [];
    if (intent.ingressRate || intent.egressRate) {
      warnings.push('Cilium enforces kubernetes.io/*-bandwidth only with the bandwidth manager (bandwidthManager.enabled=true), and never on traffic between pods of the same node.');
    }
    if (intent.ingressRate) {
      warnings.push('Cilium limits ingress bandwidth only in recent releases (probably 1.18, release not pinned [unverified]) and with BPF host routing; older ones ignore kubernetes.io/ingress-bandwidth.');
    }
    for (const p of pools) {
      const name = p.cni.cilium?.pool;
      if (!name) continue; // refused by check()
      if (pools.length === 1) annotations['ipam.cilium.io/ip-pool'] = name;
      // One pool per family; the family keys win over ip-pool (pkg/ipam/metadata/manager.go).
      else for (const f of p.families) annotations[`ipam.cilium.io/${f}-pool`] = name;
    }
    if (pools.length > 0) {
      // The shape is not known here, and the rule holds for every workload, StatefulSets included.
      warnings.push('Cilium does not keep a pod IP across restarts, StatefulSet pods included: pool addresses come in node-local blocks.');
    }
    if (intent.egress) {
      const egress = egressByResource('cilium', intent.egress.ip);
      Object.assign(labels, egress.labels);
      warnings.push(...egress.warnings);
      if (intent.egress.ip.ipv6) {
        warnings.push('Cilium accepts an IPv6 egressIP only in recent releases (cilium#44524, probably 1.20 [unverified]), and cilium#48660 black-holes dual-stack destinationCIDRs with a v4 egressIP on 1.20.x.');
      }
    }
    return { annotations, labels, warnings };
  },
};
