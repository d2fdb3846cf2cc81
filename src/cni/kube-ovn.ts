import { familiesOf, formatDual, needsAddress, type Intent, type Problem, type Rate } from '../intent/types.js';
import type { Pool } from '../ipam/pool.js';
import { NETEM } from './bandwidth.js';
import type { Dialect } from './dialect.js';

const MBPS = 1_000_000n;
const OVN = 'ovn.kubernetes.io';

function subnets(pools: Pool[]): string[] {
  return [...new Set(pools.flatMap((p) => p.cni.kubeOvn?.subnet ?? []))];
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
        key: `netpin.io/${name}`,
        message: `Kube-OVN reads ${OVN}/${name} as a whole number of ${unit} and silently drops ${v}`,
        fix: `Write ${Math.floor(v) === 0 ? '' : `${Math.floor(v)} or `}${Math.ceil(v)} in netpin.io/${name}`,
      },
    ];
  });
}

function checkEgress(intent: Intent, replicas: number, kind: string): Problem[] {
  if (!intent.egress) return [];
  const problems: Problem[] = [];
  const [family, second] = familiesOf(intent.egress.ip);
  const fixed = [intent.ip, ...(intent.ips ?? [])].filter((a) => a !== undefined);
  if (second) {
    problems.push({
      key: 'netpin.io/egress-ip',
      message: `Kube-OVN's ${OVN}/snat and eip hold one IP, applied to the pod IP of the same family`,
      fix: 'Give netpin.io/egress-ip one address, of the family whose outbound traffic should use it',
    });
  } else if (family && fixed.some((a) => a[family] === undefined)) {
    problems.push({
      key: 'netpin.io/egress-ip',
      message: `Kube-OVN applies an egress IP only to the pod IP of its family, and the fixed pod IPs include no ${family} address`,
      fix: `Add an ${family} address to the pod's fixed IPs, or give netpin.io/egress-ip an address of the pod's family`,
    });
  }
  if (intent.egress.mode === 'eip' && replicas > 1) {
    problems.push({
      key: 'netpin.io/egress-mode',
      message: `Kube-OVN's ${OVN}/eip is a 1:1 NAT for one pod, and this ${kind} has ${replicas} replicas`,
      fix: 'Use netpin.io/egress-mode: snat, which pods can share, or one single-replica workload per EIP',
    });
  }
  return problems;
}

export const kubeOvn: Dialect = {
  name: 'kube-ovn',
  title: 'Kube-OVN',
  addressKeys: [`${OVN}/ip_address`, `${OVN}/ip_pool`],

  pinsAddresses: (intent) => needsAddress(intent),

  check(intent, shape, pools) {
    const problems: Problem[] = [];
    const named = subnets(pools);
    if (named.length > 1) {
      problems.push({
        key: 'netpin.io/pool',
        message: `Kube-OVN puts a pod in one Subnet (${OVN}/logical_switch), and the pools name ${named.join(' and ')}`,
        fix: 'Give the pools the same spec.cni.kubeOvn.subnet: the Kube-OVN Subnet that holds both CIDRs',
      });
    }
    problems.push(...wholeMbps('netpin.io/ingress-rate', intent.ingressRate));
    problems.push(...wholeMbps('netpin.io/egress-rate', intent.egressRate));
    problems.push(...wholeNetem(intent));
    if (intent.jitterMs !== undefined && intent.latencyMs === undefined) {
      problems.push({
        key: 'netpin.io/jitter',
        message: 'Kube-OVN passes jitter to netem as the variation of a latency, and no latency is set',
        fix: 'Set netpin.io/latency as well, or remove netpin.io/jitter',
      });
    }
    const netem = NETEM.filter(({ field }) => intent[field] !== undefined).map(({ name }) => `netpin.io/${name}`);
    if (intent.ingressRate && netem.length > 0) {
      // pkg/ovs/ovs-vsctl_linux.go: both need the port's single QoS row; HTB wins and SetNetemQos returns nil.
      problems.push({
        key: 'netpin.io/ingress-rate',
        message: `Kube-OVN cannot combine an ingress rate with ${netem.join(', ')}: the rate's HTB QoS takes the port and netem is silently not applied`,
        fix: `Drop netpin.io/ingress-rate or ${netem.join(', ')}; netpin.io/egress-rate can be combined with them`,
      });
    }
    return [...problems, ...checkEgress(intent, shape.replicas, shape.kind)];
  },

  // Kube-OVN ignores kubernetes.io/*-bandwidth (no bandwidth plugin in its conflist), so they are not written.
  render(intent, _pools, allocation) {
    const annotations: Record<string, string> = {};
    const warnings: string[] = [];
    if (allocation) {
      annotations[`${OVN}/ip_address`] = formatDual(allocation.addresses);
      // Only a pool pinned by netpin.io/ip can reach here with two Subnets; check() refuses it for netpin.io/pool.
      const [subnet, other] = subnets(allocation.pools);
      if (other) {
        warnings.push(
          `Kube-OVN: the pod's IPs lie in pools of different Subnets (${subnet}, ${other}); netpin sets no ${OVN}/logical_switch and Kube-OVN uses the namespace's Subnet, which must hold both IPs.`,
        );
      } else if (subnet) annotations[`${OVN}/logical_switch`] = subnet;
    }
    if (intent.ingressRate) annotations[`${OVN}/ingress_rate`] = String(intent.ingressRate.bitsPerSecond / MBPS);
    if (intent.egressRate) annotations[`${OVN}/egress_rate`] = String(intent.egressRate.bitsPerSecond / MBPS);
    for (const { field, name } of NETEM) {
      const v = intent[field];
      if (v !== undefined) annotations[`${OVN}/${name}`] = String(v);
    }
    if (intent.egress) {
      // The modes are named after Kube-OVN's keys: ovn.kubernetes.io/snat and ovn.kubernetes.io/eip.
      annotations[`${OVN}/${intent.egress.mode}`] = formatDual(intent.egress.ip);
      warnings.push(
        'Kube-OVN applies ovn.kubernetes.io/snat and eip only on a Subnet of the default VPC, with --enable-eip-snat (the default) and the ConfigMap ovn-external-gw-config in kube-system.',
      );
      const [family] = familiesOf(intent.egress.ip);
      if (allocation && family && !allocation.addresses[family]) {
        warnings.push(`Kube-OVN applies the egress IP only to a pod IP of its family, and this pod has no ${family} address: the egress IP is unused.`);
      }
    }
    return { annotations, labels: {}, warnings };
  },
};
