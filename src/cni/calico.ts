import { KEYS } from '../intent/keys.js';
import { addressList, needsAddress, type Problem } from '../intent/types.js';
import { bandwidthAnnotations, netemProblems } from './bandwidth.js';
import type { Dialect } from './dialect.js';

export const CALICO_IP_ADDRS = 'cni.projectcalico.org/ipAddrs';

const NO_EGRESS_IP =
  'set natOutgoingAddress per node in FelixConfiguration, use Calico Enterprise egress gateways, or use Kube-OVN, Antrea or Cilium';

export const calico: Dialect = {
  name: 'calico',
  title: 'Calico',
  // cni-plugin/pkg/k8s/k8s.go reads these four when it sets up the pod (docs/cni-contract.md, Calico).
  placementKeys: [CALICO_IP_ADDRS, 'cni.projectcalico.org/ipAddrsNoIpam', 'cni.projectcalico.org/ipv4pools', 'cni.projectcalico.org/ipv6pools'],
  addressKeys: [CALICO_IP_ADDRS, 'cni.projectcalico.org/ipAddrsNoIpam'],
  // Felix applies QoS changes live only from v3.30 with the Kubernetes datastore; older releases and
  // chained bandwidth plugins read rates once, at sandbox creation.
  liveKeys: [],

  // netpin picks the address even for a pool, so its ledger knows it, and ipAddrs pins it: Calico keeps no IP itself.
  pinsAddresses: (intent) => needsAddress(intent),

  check(intent) {
    const problems: Problem[] = [];
    if (intent.egress) {
      problems.push({
        key: KEYS.egressIp,
        message:
          'Calico (open source) has no per-pod egress IP: cni.projectcalico.org/floatingIPs only DNATs inbound traffic to the pod',
        fix: `Remove netpin.io/egress-ip; to fix the source address, ${NO_EGRESS_IP}`,
      });
      if (intent.egress.mode === 'eip') {
        problems.push({
          key: KEYS.egressMode,
          message: 'Calico (open source) has no elastic IP for a pod: floatingIPs is inbound DNAT, not a 1:1 NAT for outbound traffic',
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
        'Calico enforces kubernetes.io/*-bandwidth itself only from v3.30 and with the Kubernetes datastore (under etcd they appear to be ignored, [unverified]); older releases need the bandwidth plugin chained in the CNI config.',
      );
    }
    // No pool annotation: with ipAddrs, calico-ipam itself checks the IP lies in one of its IPPools
    // (libcalico-go/lib/ipam/ipam.go AssignIP). JSON array, IPv4 first (cni-plugin/pkg/k8s/k8s.go parseIPAddrs).
    if (placement.addresses) annotations[CALICO_IP_ADDRS] = JSON.stringify(addressList(placement.addresses).map(String));
    return { annotations, labels: {}, warnings };
  },

  isWriteBack: () => false,
};
