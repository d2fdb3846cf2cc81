import { KEYS } from '../intent/keys.js';
import { needsAddress, type Problem } from '../intent/types.js';
import { addressList, formatRange, parseRange, rangeWithin, type AddressRange } from '../net/address.js';
import type { Pool } from '../ipam/pool.js';
import { bandwidthAnnotations } from './bandwidth.js';
import { netemProblems } from './netem.js';
import type { Dialect, PoolCheck } from './dialect.js';

const CALICO_IP_ADDRS = 'cni.projectcalico.org/ipAddrs';

const NO_EGRESS_IP =
  'set natOutgoingAddress per node in FelixConfiguration, use Calico Enterprise egress gateways, or use Kube-OVN, Antrea or Cilium';

export const calico: Dialect = {
  name: 'calico',
  title: 'Calico',
  // cni-plugin/pkg/k8s/k8s.go reads these four when it sets up the pod (docs/cni-contract.md, Calico).
  placementKeys: [
    CALICO_IP_ADDRS,
    'cni.projectcalico.org/ipAddrsNoIpam',
    'cni.projectcalico.org/ipv4pools',
    'cni.projectcalico.org/ipv6pools',
  ],
  addressKeys: [CALICO_IP_ADDRS, 'cni.projectcalico.org/ipAddrsNoIpam'],
  // Felix applies QoS changes live only from v3.30 with the Kubernetes datastore; older releases and
  // chained bandwidth plugins read rates once, at sandbox creation.
  liveKeys: [],

  // netpin picks the address even for a pool, so its ledger knows it, and ipAddrs pins it: Calico keeps no IP itself.
  pinsAddresses: (intent) => needsAddress(intent),

  check(intent) {
    const problems: Problem[] = [];
    if (intent.egress) {
      const key = intent.egress.ip ? KEYS.egressIp : KEYS.egressPool;
      problems.push({
        key,
        message:
          'Calico (open source) has no per-pod egress IP: cni.projectcalico.org/floatingIPs only DNATs inbound traffic to the pod',
        fix: `Remove ${key}; to fix the source address, ${NO_EGRESS_IP}`,
      });
      if (intent.egress.mode === 'eip') {
        problems.push({
          key: KEYS.egressMode,
          message:
            'Calico (open source) has no elastic IP for a pod: floatingIPs is inbound DNAT, not a 1:1 NAT for outbound traffic',
          fix: 'Remove netpin.io/egress-mode, or use Kube-OVN, whose ovn.kubernetes.io/eip is a 1:1 NAT',
        });
      }
    }
    return [...problems, ...netemProblems(intent, 'Calico')];
  },

  render(intent, _shape, placement) {
    const annotations = bandwidthAnnotations(intent);
    const warnings: string[] = [];
    if (intent.ingressRate || intent.egressRate) {
      warnings.push(
        'Calico applies kubernetes.io/*-bandwidth itself from v3.30 with the Kubernetes datastore; with an older release or the etcd datastore, check that the bandwidth plugin is chained in the CNI configuration, or the rates are not enforced.',
      );
    }
    // No pool annotation: with ipAddrs, calico-ipam itself checks the IP lies in one of its IPPools
    // (libcalico-go/lib/ipam/ipam.go AssignIP). JSON array, IPv4 first (cni-plugin/pkg/k8s/k8s.go parseIPAddrs).
    if (placement.addresses)
      annotations[CALICO_IP_ADDRS] = JSON.stringify(addressList(placement.addresses).map(String));
    return { annotations, labels: {}, warnings };
  },

  isWriteBack: () => false,

  nativePools: { group: 'crd.projectcalico.org', version: 'v1', plural: 'ippools' },
  checkPool: (pool, native) => checkBacking(pool, native),
};

/** The fields of a crd.projectcalico.org/v1 IPPool that decide whether Calico honours a pinned address. */
interface CalicoPool {
  name: string;
  range: AddressRange | undefined;
  disabled: boolean;
  autoAssigns: boolean;
  workloads: boolean;
}

function readCalicoPool(obj: unknown): CalicoPool {
  const o = obj as {
    metadata?: { name?: string };
    spec?: {
      cidr?: string;
      disabled?: boolean;
      nodeSelector?: string;
      assignmentMode?: string;
      allowedUses?: string[];
    };
  };
  const spec = o.spec ?? {};
  const range = typeof spec.cidr === 'string' ? parseRange(spec.cidr, false) : undefined;
  return {
    name: o.metadata?.name ?? '',
    range: typeof range === 'object' ? range : undefined,
    disabled: spec.disabled === true,
    // Calico assigns automatically from a pool unless assignmentMode is Manual (v3.30+) or its
    // nodeSelector selects no node (libcalico-go/lib/ipam/ipam.go determinePools).
    autoAssigns: spec.assignmentMode !== 'Manual' && spec.nodeSelector?.replace(/\s/g, '') !== '!all()',
    workloads: spec.allowedUses === undefined || spec.allowedUses.includes('Workload'),
  };
}

const MANUAL = 'set assignmentMode: Manual (before Calico 3.30: nodeSelector: "!all()")';

/**
 * Every range of a netpin IPPool must lie in a Calico IPPool that takes pinned addresses
 * (enabled, for workloads) and never hands them out by itself: else a pinned pod fails in
 * ContainerCreating, with "not in a configured pool" or "Address already assigned in block".
 */
function checkBacking(pool: Pool, native: readonly unknown[] | string | undefined): PoolCheck {
  const ranges = pool.families.flatMap((f) => pool.ranges[f]);
  const where = ranges.map(formatRange).join(', ');
  if (native === undefined || typeof native === 'string') {
    return {
      problems: [],
      warnings: [
        `netpin could not read Calico's IPPools${native ? ` (${native})` : ''}: check that a Calico IPPool covers ${where}, is not disabled (Calico refuses ipAddrs from a disabled pool), and never assigns from it by itself: ${MANUAL} on it.`,
      ],
    };
  }
  const calicoPools = native.map(readCalicoPool);
  const named = pool.cni.calico?.pool;
  const candidates = named === undefined ? calicoPools : calicoPools.filter((c) => c.name === named);
  const field = named === undefined ? 'spec.cidr' : 'spec.cni.calico.pool';
  if (named !== undefined && candidates.length === 0) {
    return {
      problems: [
        {
          key: field,
          message: `names Calico IPPool ${named}, which does not exist`,
          fix: `create Calico IPPool ${named} over ${where} and ${MANUAL} on it, or name an existing one`,
        },
      ],
      warnings: [],
    };
  }
  const problems: Problem[] = [];
  for (const r of ranges) {
    const home = candidates.find((c) => c.range && rangeWithin(r, c.range));
    if (!home) {
      problems.push({
        key: field,
        message: `${formatRange(r)} lies in no ${named === undefined ? 'Calico IPPool' : `part of Calico IPPool ${named}`}, and Calico refuses ipAddrs outside its pools ("The provided IP address is not in a configured pool")`,
        fix: `create a Calico IPPool over ${formatRange(r)} and ${MANUAL} on it`,
      });
    } else if (home.disabled) {
      problems.push({
        key: field,
        message: `${formatRange(r)} lies in Calico IPPool ${home.name}, which is disabled, and Calico refuses ipAddrs from a disabled pool`,
        fix: `set disabled: false on Calico IPPool ${home.name} and ${MANUAL}`,
      });
    } else if (!home.workloads) {
      problems.push({
        key: field,
        message: `${formatRange(r)} lies in Calico IPPool ${home.name}, whose allowedUses leaves out Workload`,
        fix: `add Workload to allowedUses of Calico IPPool ${home.name}`,
      });
    } else if (home.autoAssigns) {
      problems.push({
        key: field,
        message: `${formatRange(r)} lies in Calico IPPool ${home.name}, which Calico assigns from by itself, so a pinned pod can find its address taken ("Address already assigned in block")`,
        fix: `on Calico IPPool ${home.name}, ${MANUAL}; or back netpin's range with a Calico IPPool of its own`,
      });
    }
  }
  return { problems, warnings: [] };
}
