// `netpin doctor` on Kube-OVN: each netpin IPPool lies in the Kube-OVN Subnet its pods go to, and no
// pod holds an address of it that netpin did not give.
import { describeRanges, type Pool } from '../ipam/pool.js';
import { formatRange, type AddressRange } from '../net/address.js';
import {
  fail,
  foreignAddresses,
  nameOf,
  ok,
  parsedRanges,
  podPools,
  uncovered,
  Unread,
  unreadList,
  warn,
  type Check,
  type DoctorInputs,
  type Resource,
} from './doctor.js';

const SUBNETS: Resource = { group: 'kubeovn.io', version: 'v1', plural: 'subnets' };

interface Subnet {
  name: string;
  cidrBlock: string;
  cidrs: AddressRange[];
}

function readSubnet(obj: unknown): Subnet {
  const cidrBlock = (obj as { spec?: { cidrBlock?: string } }).spec?.cidrBlock ?? '';
  // One string for both families: "10.16.0.0/16,fd00:10:16::/64" (pkg/apis/kubeovn/v1/subnet.go, CIDRBlock).
  return { name: nameOf(obj), cidrBlock, cidrs: parsedRanges(cidrBlock.split(',')) };
}

export async function kubeOvnChecks(inputs: DoctorInputs): Promise<Check[]> {
  const listed = await inputs.source.list(SUBNETS);
  const checks =
    listed instanceof Unread
      ? [
          unreadList(
            listed,
            'Kube-OVN Subnets (kubeovn.io/v1)',
            "that the Subnets netpin's IPPools name exist and hold them",
            'install Kube-OVN',
          ),
        ]
      : podPools(inputs.pools).map((pool) => subnetCheck(pool, listed.map(readSubnet)));
  checks.push(
    ...(await foreignAddresses(
      inputs,
      (pod, pool) =>
        `keep Kube-OVN from assigning ${describeRanges(pool)} by itself (see docs/cni-contract.md, Kube-OVN), ` +
        `then delete pod ${pod.namespace}/${pod.name} so that it gets an address elsewhere`,
    )),
  );
  return checks;
}

/** Kube-OVN looks for a pinned address in the pod's Subnet only (pkg/controller/pod.go, acquireStaticAddress). */
function subnetCheck(pool: Pool, subnets: Subnet[]): Check {
  const named = pool.cni.kubeOvn?.subnet;
  const where = describeRanges(pool);
  if (!named) {
    const home = subnets.find((s) => uncovered(pool, s.cidrs).length === 0);
    return home
      ? warn(
          `IPPool ${pool.name} names no Kube-OVN Subnet (spec.cni.kubeOvn.subnet), so its pods stay in their namespace's Subnet, ` +
            `where Kube-OVN looks for their addresses; Subnet ${home.name} holds ${where}`,
          `set spec.cni.kubeOvn.subnet: ${home.name} on IPPool ${pool.name}`,
        )
      : fail(
          `IPPool ${pool.name}: no Kube-OVN Subnet's spec.cidrBlock holds ${where}, ` +
            "and Kube-OVN gives a pinned address only from its pod's Subnet",
          `create a Subnet (kubeovn.io/v1) whose spec.cidrBlock holds ${where}, ` +
            `and name it in spec.cni.kubeOvn.subnet of IPPool ${pool.name}`,
        );
  }
  const subnet = subnets.find((s) => s.name === named);
  if (!subnet) {
    return fail(
      `IPPool ${pool.name} names Kube-OVN Subnet ${named} (spec.cni.kubeOvn.subnet), which does not exist`,
      `create Subnet ${named} (kubeovn.io/v1) with a spec.cidrBlock that holds ${where}, or name an existing Subnet`,
    );
  }
  const outside = uncovered(pool, subnet.cidrs);
  if (outside.length > 0) {
    return fail(
      `IPPool ${pool.name}: ${outside.map(formatRange).join(', ')} lies outside spec.cidrBlock ${subnet.cidrBlock || '(empty)'} ` +
        `of Kube-OVN Subnet ${named}, where Kube-OVN looks for the pinned address`,
      `name a Subnet whose spec.cidrBlock holds ${where} in spec.cni.kubeOvn.subnet, or move IPPool ${pool.name} into ${subnet.cidrBlock}`,
    );
  }
  return ok(
    `IPPool ${pool.name}: Kube-OVN Subnet ${named} exists and its spec.cidrBlock ${subnet.cidrBlock} holds ${where}`,
  );
}
