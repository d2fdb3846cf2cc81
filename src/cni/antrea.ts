import { formatDual, needsAddress, type Intent, type Problem } from '../intent/types.js';
import type { Pool } from '../ipam/pool.js';
import { bandwidthAnnotations, netemProblems } from './bandwidth.js';
import type { Dialect, WorkloadShape } from './dialect.js';
import { egressByResource, eipProblems } from './egress.js';

function unnamedPools(pools: Pool[]): Problem[] {
  return pools
    .filter((p) => !p.cni.antrea?.pool)
    .map((p) => ({
      key: 'netpin.io/pool',
      message: `Antrea selects pools by its own IPPool name, and netpin IPPool ${p.name} names none`,
      fix: `Set spec.cni.antrea.pool on IPPool ${p.name} to the Antrea IPPool name`,
    }));
}

// Antrea ignores pod-ips for StatefulSet pods and reserves their IPs itself, once, when the StatefulSet
// is created (pkg/controller/ipam/antrea_ipam_controller.go preallocateIPPoolForStatefulSet).
function statefulSetProblems(intent: Intent, shape: WorkloadShape): Problem[] {
  if (!shape.statefulSet) return [];
  const fixed = (['ip', 'ips'] as const).filter((k) => intent[k] !== undefined);
  const problems: Problem[] = fixed.map((k) => ({
    key: `netpin.io/${k}`,
    message: 'Antrea ignores ipam.antrea.io/pod-ips on StatefulSet pods and picks their IPs itself',
    fix: "Use netpin.io/pool instead: Antrea keeps each ordinal's IP across restarts, and keeps it on scale-down",
  }));
  if ((intent.pools?.length ?? 0) > 1) {
    problems.push({
      key: 'netpin.io/pool',
      message: 'Antrea reserves StatefulSet IPs from a single IPPool ("annotation of multiple IP Pools is not supported"), which rules out one pool per family',
      fix: 'Name one IPv4 pool in netpin.io/pool',
    });
  }
  return problems;
}

export const antrea: Dialect = {
  name: 'antrea',
  title: 'Antrea',
  addressKeys: ['ipam.antrea.io/pod-ips', 'ipam.antrea.io/ippools'],

  pinsAddresses: (intent, shape) => needsAddress(intent) && !shape.statefulSet,

  check(intent, shape, pools) {
    const problems = [...unnamedPools(pools), ...statefulSetProblems(intent, shape)];
    if (intent.egress && needsAddress(intent)) {
      problems.push({
        key: 'netpin.io/egress-ip',
        message: 'Antrea Egress works only in encap or hybrid mode, and its fixed pod IPs (flexible IPAM) need noEncap (docs/egress.md, docs/antrea-ipam.md)',
        fix: 'Choose one: remove netpin.io/egress-ip, or remove netpin.io/ip, netpin.io/ips and netpin.io/pool',
      });
    }
    return [...problems, ...eipProblems(intent, 'Antrea Egress'), ...netemProblems(intent, 'Antrea')];
  },

  render(intent, pools, allocation) {
    const annotations = bandwidthAnnotations(intent);
    const labels: Record<string, string> = {};
    const warnings: string[] = [];
    if (intent.ingressRate || intent.egressRate) {
      warnings.push('Antrea applies kubernetes.io/*-bandwidth through the chained bandwidth plugin, at sandbox creation only: a changed rate needs a pod restart.');
    }
    const used = allocation?.pools ?? pools;
    // check() sees only netpin.io/pool; the pool holding a netpin.io/ip address may still lack an Antrea name.
    for (const p of used.filter((p) => !p.cni.antrea?.pool)) {
      warnings.push(`Antrea: netpin IPPool ${p.name} sets no spec.cni.antrea.pool, and Antrea ignores ipam.antrea.io/pod-ips unless ipam.antrea.io/ippools names its pool.`);
    }
    const names = used.flatMap((p) => p.cni.antrea?.pool ?? []);
    if (names.length > 0) {
      // No spaces: Antrea splits on "," without trimming (pkg/agent/cniserver/ipam/antrea_ipam_controller.go getIPPoolsByPod).
      annotations['ipam.antrea.io/ippools'] = names.join(',');
      warnings.push('Antrea honours ipam.antrea.io/ippools only with the AntreaIPAM feature gate and enableBridgingMode, and its docs say primary-network flexible IPAM is IPv4-only.');
    }
    if (allocation) annotations['ipam.antrea.io/pod-ips'] = formatDual(allocation.addresses);
    // Pools without an allocation means a StatefulSet: pinsAddresses leaves those to Antrea.
    else if (intent.pools) {
      warnings.push("Antrea, not netpin, pins each StatefulSet ordinal's IP, from a block reserved when the StatefulSet is created; dedicate the pool to StatefulSets.");
    }
    if (intent.egress) {
      const egress = egressByResource('antrea', intent.egress.ip);
      Object.assign(labels, egress.labels);
      warnings.push(...egress.warnings, 'Antrea Egress works only in encap or hybrid traffic mode (docs/egress.md).');
    }
    return { annotations, labels, warnings };
  },
};
