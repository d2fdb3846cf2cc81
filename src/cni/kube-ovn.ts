import { addressList, familiesOf, familyOf, formatDual } from '../net/address.js';
import { KEYS } from '../intent/keys.js';
import { parseDual } from '../intent/parse.js';
import { needsAddress, type Intent, type Problem, type Rate } from '../intent/types.js';
import { describeRanges, type Pool } from '../ipam/pool.js';
import { NETEM } from './netem.js';
import type { Dialect, WorkloadShape } from './dialect.js';
import { egressPoolProblems } from './egress.js';
import { addressIntentKeys, nativeNames } from './rules.js';

const MBPS = 1_000_000n;
const OVN = 'ovn.kubernetes.io';

const IP_ADDRESS = `${OVN}/ip_address`;
const LOGICAL_SWITCH = `${OVN}/logical_switch`;
/** The keys that choose a pod's addresses, its Subnet, or the address its traffic leaves by (pkg/util/const.go). */
const PLACEMENT = [IP_ADDRESS, `${OVN}/ip_pool`, LOGICAL_SWITCH, `${OVN}/snat`, `${OVN}/eip`];
/**
 * Each key also has a form per network attachment, `<provider>.kubernetes.io/X` where the provider
 * is `<nad>.<namespace>.ovn`: `*.` in a placement key stands for that prefix.
 */
const PER_ATTACHMENT = PLACEMENT.map((k) => `*.${k}`);

/** The key a per-attachment key is a form of: `net1.shop.ovn.kubernetes.io/ip_address` is an ip_address. */
function baseKey(key: string): string {
  const at = key.indexOf(`.${OVN}/`);
  return at > 0 ? key.slice(at + 1) : key;
}

const subnets = (pools: readonly Pool[]) => nativeNames(pools, (cni) => cni.kubeOvn?.subnet);

// A pod lives in one Subnet (logical_switch), and Kube-OVN looks for every requested address there
// (pkg/controller/pod.go acquireStaticAddress): all the pod's pools name one Subnet, or none does
// and the namespace's Subnet is used.
function subnetProblems(intent: Intent, pools: readonly Pool[]): Problem[] {
  const named = subnets(pools);
  const key = addressIntentKeys(intent)[0] ?? KEYS.pool;
  if (named.length > 1) {
    return [
      {
        key,
        message: `Kube-OVN puts a pod in one Subnet (${LOGICAL_SWITCH}), and the pools name ${named.join(' and ')}`,
        fix: 'Give the pools the same spec.cni.kubeOvn.subnet: the Kube-OVN Subnet that holds both CIDRs',
      },
    ];
  }
  const bare = pools.filter((p) => !p.cni.kubeOvn?.subnet);
  if (named.length === 1 && bare.length > 0) {
    return [
      {
        key,
        message: `IPPool ${bare.map((p) => p.name).join(', ')} names no Subnet while the pod's other pool names ${named[0]}, so Kube-OVN would look for every address of the pod in Subnet ${named[0]}`,
        fix: `Set spec.cni.kubeOvn.subnet on IPPool ${bare.map((p) => p.name).join(', ')} to the Subnet that holds its range (${named[0]} if it holds both)`,
      },
    ];
  }
  return [];
}

// ingress_rate/egress_rate are integer Mbps (pkg/util/validator.go ValidatePodNetwork); a bad one blocks IP allocation.
function wholeMbps(key: string, rate: Rate | undefined): Problem[] {
  if (!rate || rate.bitsPerSecond % MBPS === 0n) return [];
  const below = rate.bitsPerSecond / MBPS;
  return [
    {
      key,
      message: `Kube-OVN takes rates in whole Mbps only and ${rate.text} is not one; netpin does not round a limit`,
      fix: below === 0n ? `Write 1M in ${key}` : `Write ${below}M or ${below + 1n}M in ${key}`,
    },
  ];
}

// latency, jitter and limit go through strconv.Atoi with the error ignored (SetNetemQos), so a fraction becomes 0.
function wholeNetem(intent: Intent): Problem[] {
  return NETEM.filter(({ name }) => name !== 'loss').flatMap(({ field, name, unit }) => {
    const v = intent[field];
    if (v === undefined || Number.isInteger(v)) return [];
    return [
      {
        key: KEYS[name],
        message: `Kube-OVN reads ${OVN}/${name} as a whole number of ${unit} and silently drops ${v}`,
        fix: `Write ${Math.floor(v) === 0 ? '' : `${Math.floor(v)} or `}${Math.ceil(v)} in netpin.io/${name}`,
      },
    ];
  });
}

function checkEgress(intent: Intent, shape: WorkloadShape, egressPools: readonly Pool[]): Problem[] {
  if (!intent.egress) return [];
  const problems: Problem[] = [];
  const key = intent.egress.ip ? KEYS.egressIp : KEYS.egressPool;
  const [family, second] = intent.egress.ip
    ? familiesOf(intent.egress.ip)
    : [...new Set(egressPools.flatMap((p) => p.families))];
  const fixed = [intent.ip, ...(intent.ips ?? [])].filter((a) => a !== undefined);
  if (second) {
    problems.push({
      key,
      message: `Kube-OVN's ${OVN}/snat and eip hold one IP, applied to the pod IP of the same family`,
      fix: `Give ${key} one family: the family whose outbound traffic should use it`,
    });
  } else if (family && fixed.some((a) => a[family] === undefined)) {
    problems.push({
      key,
      message: `Kube-OVN applies an egress IP only to the pod IP of its family, and the fixed pod IPs include no ${family} address`,
      fix: `Add an ${family} address to the pod's fixed IPs, or give ${key} an address of the pod's family`,
    });
  }
  // An egress pool gives each StatefulSet ordinal its own EIP; one fixed address serves one pod only.
  if (intent.egress.mode === 'eip' && shape.replicas > 1 && !(shape.statefulSet && intent.egress.pools)) {
    problems.push({
      key: KEYS.egressMode,
      message: `Kube-OVN's ${OVN}/eip is a 1:1 NAT for one pod, and this ${shape.kind} has ${shape.replicas} replicas`,
      fix: 'Use netpin.io/egress-mode: snat, which pods can share, or one single-replica workload per EIP (a StatefulSet with netpin.io/egress-pool gets one EIP per ordinal)',
    });
  }
  return problems;
}

export const kubeOvn: Dialect = {
  name: 'kube-ovn',
  title: 'Kube-OVN',
  placementKeys: [...PLACEMENT, ...PER_ATTACHMENT],
  addressKeys: [IP_ADDRESS],
  // pkg/daemon/controller.go enqueueUpdatePod applies changed rates and netem values to a running pod.
  liveKeys: [KEYS.ingressRate, KEYS.egressRate, KEYS.latency, KEYS.jitter, KEYS.loss, KEYS.limit],

  pinsAddresses: (intent) => needsAddress(intent),

  check(intent, shape, pools, egressPools = []) {
    const problems = subnetProblems(intent, pools);
    problems.push(...wholeMbps(KEYS.ingressRate, intent.ingressRate));
    problems.push(...wholeMbps(KEYS.egressRate, intent.egressRate));
    problems.push(...wholeNetem(intent));
    if (intent.jitterMs !== undefined && intent.latencyMs === undefined) {
      problems.push({
        key: KEYS.jitter,
        message: 'Kube-OVN passes jitter to netem as the variation of a latency, and no latency is set',
        fix: 'Set netpin.io/latency as well, or remove netpin.io/jitter',
      });
    }
    const netem = NETEM.filter(({ field }) => intent[field] !== undefined).map(({ name }) => KEYS[name]);
    if (intent.ingressRate && netem.length > 0) {
      // pkg/ovs/ovs-vsctl_linux.go: both need the port's single QoS row; HTB wins and SetNetemQos returns nil.
      problems.push({
        key: KEYS.ingressRate,
        message: `Kube-OVN cannot combine an ingress rate with ${netem.join(', ')}: the rate's HTB QoS takes the port and netem is silently not applied`,
        fix: `Drop netpin.io/ingress-rate or ${netem.join(', ')}; netpin.io/egress-rate can be combined with them`,
      });
    }
    return [
      ...problems,
      ...checkEgress(intent, shape, egressPools),
      ...egressPoolProblems(intent, egressPools, 'Kube-OVN', false),
    ];
  },

  // Kube-OVN ignores kubernetes.io/*-bandwidth (no bandwidth plugin in its conflist), so they are not written.
  render(intent, _shape, placement) {
    const annotations: Record<string, string> = {};
    const warnings: string[] = [];
    if (placement.addresses) {
      annotations[IP_ADDRESS] = formatDual(placement.addresses);
      // check() saw to it that the pools name one Subnet or none; with none, the namespace's Subnet applies.
      const [subnet] = subnets(placement.pools);
      if (subnet) annotations[LOGICAL_SWITCH] = subnet;
    }
    if (intent.ingressRate) annotations[`${OVN}/ingress_rate`] = String(intent.ingressRate.bitsPerSecond / MBPS);
    if (intent.egressRate) annotations[`${OVN}/egress_rate`] = String(intent.egressRate.bitsPerSecond / MBPS);
    for (const { field, name } of NETEM) {
      const v = intent[field];
      if (v !== undefined) annotations[`${OVN}/${name}`] = String(v);
    }
    if (intent.egress && placement.egress) {
      // The modes are named after Kube-OVN's keys: ovn.kubernetes.io/snat and ovn.kubernetes.io/eip.
      annotations[`${OVN}/${intent.egress.mode}`] = formatDual(placement.egress);
      warnings.push(
        'Kube-OVN applies ovn.kubernetes.io/snat and eip only on a Subnet of the default VPC, with --enable-eip-snat (the default) and the ConfigMap ovn-external-gw-config in kube-system.',
      );
      const [family] = familiesOf(placement.egress);
      if (placement.addresses && family && !placement.addresses[family]) {
        warnings.push(
          `Kube-OVN applies the egress IP only to a pod IP of its family, and this pod has no ${family} address: the egress IP is unused.`,
        );
      }
    }
    return { annotations, labels: {}, warnings };
  },

  checkPool: (pool) => ({
    problems: [],
    warnings: [
      `Kube-OVN also assigns addresses of its Subnets to pods that ask for none: check that no pod outside netpin can be given an address of IPPool ${pool.name} (${describeRanges(pool)}), or a pinned pod may find its address taken and wait in ContainerCreating (AddressConflict). See docs/cni-contract.md.`,
    ],
  }),

  // The controller writes the addresses and Subnet it used back onto the pod, once, after IPAM
  // (pkg/controller/pod.go reconcileAllocateSubnets), for the primary network and each attachment. It
  // allocates exactly the address asked for, and on a dual-stack Subnet fills in the other family from
  // its own IPAM (checkAndAppendIpsForDual). So a write-back keeps what netpin rendered, family by
  // family, and adds at most one address of a family netpin left to Kube-OVN; the admission layer sees
  // to it that such an address is no netpin pool's. A second write, or one of another key, is not Kube-OVN's.
  isWriteBack(key, rendered, before, after) {
    if (after === undefined || (before !== undefined && before !== rendered)) return false;
    const base = baseKey(key);
    if (base === LOGICAL_SWITCH) return rendered === undefined || after === rendered;
    if (base !== IP_ADDRESS) return false;
    const written = parseDual(after);
    if (typeof written === 'string') return false;
    const given = rendered === undefined ? {} : parseDual(rendered);
    if (typeof given === 'string') return false;
    return addressList(given).every((a) => written[familyOf(a)]?.toString() === a.toString());
  },
};
