import { KEYS } from '../intent/keys.js';
import { needsAddress, type Intent, type Problem } from '../intent/types.js';
import { formatDual } from '../net/address.js';
import { describeRanges } from '../ipam/pool.js';
import { bandwidthAnnotations } from './bandwidth.js';
import { netemProblems } from './netem.js';
import type { Dialect, WorkloadShape } from './dialect.js';
import { egressByResource, egressPoolProblems, eipProblems } from './egress.js';
import { fixedAddressProblems, nativeNames, unnamedPoolProblems } from './rules.js';

const POD_IPS = 'ipam.antrea.io/pod-ips';
const IPPOOLS = 'ipam.antrea.io/ippools';

// Antrea ignores pod-ips for StatefulSet pods and reserves their IPs itself, once, when the StatefulSet
// is created (pkg/controller/ipam/antrea_ipam_controller.go preallocateIPPoolForStatefulSet).
function statefulSetProblems(intent: Intent, shape: WorkloadShape): Problem[] {
  if (!shape.statefulSet) return [];
  const problems = fixedAddressProblems(
    intent,
    'Antrea ignores ipam.antrea.io/pod-ips on StatefulSet pods and picks their IPs itself',
    "Use netpin.io/pool instead: Antrea keeps each ordinal's IP across restarts, and keeps it on scale-down",
  );
  if ((intent.pools?.length ?? 0) > 1) {
    problems.push({
      key: KEYS.pool,
      message:
        'Antrea reserves StatefulSet IPs from a single IPPool ("annotation of multiple IP Pools is not supported"), which rules out one pool per family',
      fix: 'Name one IPv4 pool in netpin.io/pool',
    });
  }
  return problems;
}

export const antrea: Dialect = {
  name: 'antrea',
  title: 'Antrea',
  placementKeys: [POD_IPS, IPPOOLS],
  addressKeys: [POD_IPS],
  // Rates reach Antrea through the chained bandwidth plugin, which reads them at sandbox creation only.
  liveKeys: [],

  pinsAddresses: (intent, shape) => needsAddress(intent) && !shape.statefulSet,

  check(intent, shape, pools, egressPools = []) {
    // Antrea reads pod-ips only beside an ippools annotation naming the address's pool
    // (pkg/agent/cniserver/ipam/antrea_ipam_controller.go getIPPoolsByPod).
    const problems = [
      ...unnamedPoolProblems(intent, pools, 'antrea', 'Antrea IPPool', 'Antrea'),
      ...statefulSetProblems(intent, shape),
    ];
    if (intent.egress && needsAddress(intent)) {
      problems.push({
        key: KEYS.egressIp,
        message:
          'Antrea Egress works only in encap or hybrid mode, and its fixed pod IPs (flexible IPAM) need noEncap (docs/egress.md, docs/antrea-ipam.md)',
        fix: 'Choose one: remove netpin.io/egress-ip, or remove netpin.io/ip, netpin.io/ips and netpin.io/pool',
      });
    }
    problems.push(...egressPoolProblems(intent, egressPools, 'Antrea', false));
    return [...problems, ...eipProblems(intent, 'Antrea Egress'), ...netemProblems(intent, 'Antrea')];
  },

  render(intent, shape, placement) {
    const annotations = bandwidthAnnotations(intent);
    const labels: Record<string, string> = {};
    const warnings: string[] = [];
    if (intent.ingressRate || intent.egressRate) {
      warnings.push(
        'Antrea applies kubernetes.io/*-bandwidth through the chained bandwidth plugin, at sandbox creation only: a changed rate needs a pod restart.',
      );
    }
    const names = nativeNames(placement.pools, (cni) => cni.antrea?.pool);
    if (names.length > 0) {
      // No spaces: Antrea splits on "," without trimming (pkg/agent/cniserver/ipam/antrea_ipam_controller.go getIPPoolsByPod).
      annotations[IPPOOLS] = names.join(',');
      warnings.push(
        'Antrea honours ipam.antrea.io/ippools only with the AntreaIPAM feature gate and enableBridgingMode, and its docs say primary-network flexible IPAM is IPv4-only.',
      );
    }
    if (placement.addresses) annotations[POD_IPS] = formatDual(placement.addresses);
    else if (shape.statefulSet && intent.pools) {
      warnings.push(
        "Antrea, not netpin, pins each StatefulSet ordinal's IP, from a block reserved when the StatefulSet is created; dedicate the pool to StatefulSets.",
      );
    }
    if (intent.egress) {
      // netpin keeps the Egress and the ExternalIPPool that select the pod by this label.
      const egress = egressByResource('Antrea', placement.egress);
      Object.assign(labels, egress.labels);
      warnings.push(...egress.warnings, 'Antrea Egress works only in encap or hybrid traffic mode (docs/egress.md).');
    }
    return { annotations, labels, warnings };
  },

  isWriteBack: () => false,

  checkPool: (pool) => ({
    problems: [],
    warnings: [
      `Antrea assigns addresses of an Antrea IPPool to every pod whose namespace names it in ipam.antrea.io/ippools: check that ${pool.cni.antrea?.pool ? `Antrea IPPool ${pool.cni.antrea.pool}` : `the Antrea IPPool holding ${describeRanges(pool)}`} serves netpin's pods only, or a pinned pod may find its address taken ("IP is already allocated"). See docs/cni-contract.md.`,
    ],
  }),
};
