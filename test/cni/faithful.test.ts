// Whatever a dialect lets through, it renders as its CNI reads it: for every combination of
// intent, pools and shape that check() accepts, the annotations pass that CNI's own acceptance
// rules (as docs/cni-contract.md states them). What a CNI would ignore must have been refused.
import { describe, expect, it } from 'vitest';
import type { Dialect, WorkloadShape } from '../../src/cni/dialect.js';
import { dialectFor } from '../../src/cni/index.js';
import { parseIntent, parseRate } from '../../src/intent/parse.js';
import type { Intent } from '../../src/intent/types.js';
import { fromBigInt, parseAddress, type DualAddress } from '../../src/net/address.js';
import type { Placement } from '../../src/ipam/allocator.js';
import { poolContains, type Pool } from '../../src/ipam/pool.js';
import { pinnedPool } from '../../src/cni/cilium-pools.js';
import { DEPLOYMENT, pool, POD, STATEFULSET } from './fixtures.js';

const NAMED = { calico: { pool: 'c' }, kubeOvn: { subnet: 's1' }, antrea: { pool: 'a' }, cilium: { pool: 'p' } };
const POOLS: Pool[] = [
  pool('named4', '10.1.0.0/24', NAMED),
  pool('named6', 'fd00:1::/120', NAMED),
  pool('other6', 'fd00:2::/120', {
    ...NAMED,
    kubeOvn: { subnet: 's2' },
    antrea: { pool: 'a6' },
    cilium: { pool: 'p6' },
  }),
  pool('bare4', '10.2.0.0/24'),
  pool('bare6', 'fd00:3::/120'),
  pool('pinned4', '10.3.0.0/24', { cilium: { pinned: true } }),
  pool('pinned6', 'fd00:4::/120', { cilium: { pinned: true } }),
];

const ADDRESS_INTENTS: Array<Record<string, string>> = [
  {},
  { 'netpin.io/ip': '10.1.0.5' },
  { 'netpin.io/ip': '10.1.0.5,fd00:1::5' },
  { 'netpin.io/ip': '10.1.0.5,fd00:2::5' },
  { 'netpin.io/ip': '10.2.0.5' },
  { 'netpin.io/ip': '10.2.0.5,fd00:1::5' },
  { 'netpin.io/ips': '10.1.0.5;10.1.0.6' },
  { 'netpin.io/ips': '10.2.0.5;10.2.0.6' },
  { 'netpin.io/ip': '10.3.0.5' },
  { 'netpin.io/ip': '10.3.0.5,fd00:4::5' },
  { 'netpin.io/ip': '10.3.0.5,fd00:1::5' },
  { 'netpin.io/ips': '10.3.0.5;10.3.0.6' },
  ...[
    'named4',
    'bare4',
    'named4,named6',
    'named4,other6',
    'named4,bare6',
    'bare4,bare6',
    'pinned4',
    'pinned4,pinned6',
    'pinned4,named6',
  ].map((p) => ({
    'netpin.io/pool': p,
  })),
];
const QOS_INTENTS: Array<Record<string, string>> = [
  {},
  { 'netpin.io/egress-rate': '10M', 'netpin.io/ingress-rate': '1500k' },
  { 'netpin.io/ingress-rate': '20M', 'netpin.io/latency': '5' },
  { 'netpin.io/egress-rate': '2M', 'netpin.io/latency': '5.5', 'netpin.io/loss': '0.5', 'netpin.io/jitter': '1' },
  { 'netpin.io/egress-ip': '203.0.113.9' },
  { 'netpin.io/egress-ip': '203.0.113.9', 'netpin.io/egress-mode': 'eip' },
];
const SHAPES: WorkloadShape[] = [POD, DEPLOYMENT, STATEFULSET, { kind: 'Pod', replicas: 1, statefulSet: true }];

/** The pools an intent draws from, as the allocator's plan resolves them. */
function poolsFor(intent: Intent): Pool[] {
  if (intent.pools) return intent.pools.map((n) => POOLS.find((p) => p.name === n)!);
  const entry = intent.ip ?? intent.ips?.[0];
  if (!entry) return [];
  const addrs = [entry.ipv4, entry.ipv6].filter((a) => a !== undefined);
  return [...new Set(addrs.map((a) => POOLS.find((p) => poolContains(p, a))!))];
}

/** The pools, and the addresses netpin would pin, as the allocator gives them. */
function placementFor(intent: Intent, pools: Pool[], pins: boolean): Placement {
  if (!pins) return { pools };
  if (intent.pools) {
    const addresses: DualAddress = {};
    for (const p of pools)
      for (const f of p.families) Object.assign(addresses, { [f]: fromBigInt(p.ranges[f][0]!.first, f) });
    return { pools, addresses };
  }
  return { pools, addresses: intent.ip ?? intent.ips![0]! };
}

const ips = (text: string) => text.split(',').map((t) => parseAddress(t));

/** Each CNI's reading of what netpin wrote; a returned string is why the CNI would ignore or refuse it. */
const ACCEPTS: Record<
  string,
  (a: Record<string, string>, placement: Placement, shape: WorkloadShape) => string | undefined
> = {
  calico(a) {
    const v = a['cni.projectcalico.org/ipAddrs'];
    if (v !== undefined) {
      const list = JSON.parse(v) as unknown;
      if (!Array.isArray(list) || list.length === 0) return 'ipAddrs is not a non-empty JSON array';
      const parsed = list.map((x) => parseAddress(String(x)));
      if (parsed.some((x) => !x)) return 'ipAddrs holds a non-address';
      if (new Set(parsed.map((x) => x!.kind())).size !== parsed.length) return 'ipAddrs has two of a family';
    }
    return undefined;
  },
  'kube-ovn'(a, placement) {
    const ip = a['ovn.kubernetes.io/ip_address'];
    if (ip !== undefined && ips(ip).some((x) => !x))
      return 'ip_address holds a non-address (a CIDR fails acquireStaticAddress)';
    const subnets = new Set(placement.pools.map((p) => p.cni.kubeOvn?.subnet));
    const ls = a['ovn.kubernetes.io/logical_switch'];
    if (ip !== undefined && ls !== undefined && (subnets.size !== 1 || !subnets.has(ls)))
      return `logical_switch ${ls} does not hold every address`;
    if (ip !== undefined && ls === undefined && [...subnets].some((s) => s !== undefined))
      return 'a pool names a Subnet but logical_switch is missing';
    for (const k of ['ingress_rate', 'egress_rate', 'latency', 'jitter', 'limit']) {
      const v = a[`ovn.kubernetes.io/${k}`];
      if (v !== undefined && !/^\d+$/.test(v)) return `${k} is not a whole number (Atoi)`;
    }
    if (
      a['ovn.kubernetes.io/ingress_rate'] !== undefined &&
      ['latency', 'jitter', 'loss', 'limit'].some((k) => a[`ovn.kubernetes.io/${k}`] !== undefined)
    ) {
      return 'netem beside ingress_rate is silently dropped';
    }
    if (a['kubernetes.io/egress-bandwidth'] || a['kubernetes.io/ingress-bandwidth'])
      return 'Kube-OVN ignores kubernetes.io/*-bandwidth';
    return undefined;
  },
  antrea(a, placement, shape) {
    const podIps = a['ipam.antrea.io/pod-ips'];
    const pools = a['ipam.antrea.io/ippools'];
    if (pools !== undefined && /\s/.test(pools)) return 'ippools has a space, which Antrea keeps in the name';
    if (podIps !== undefined) {
      if (shape.statefulSet) return 'Antrea ignores pod-ips on StatefulSet pods';
      if (!pools) return 'pod-ips without ippools is ignored';
      const names = pools.split(',');
      for (const p of placement.pools)
        if (!names.includes(p.cni.antrea?.pool ?? '')) return `ippools does not name the Antrea pool of ${p.name}`;
    }
    return undefined;
  },
  cilium(a, placement) {
    const keys = ['ipam.cilium.io/ip-pool', 'ipam.cilium.io/ipv4-pool', 'ipam.cilium.io/ipv6-pool'];
    if (placement.addresses) {
      // Each pinned address through the pool netpin keeps for exactly it, from a pool Cilium never assigns from.
      if (!placement.pools.every((p) => p.cni.cilium?.pinned))
        return 'an address pinned from a pool Cilium assigns from';
      const named = keys.map((k) => a[k]).filter((v) => v !== undefined);
      const want = [placement.addresses.ipv4, placement.addresses.ipv6]
        .filter((x) => x !== undefined)
        .map((x) => pinnedPool(x).metadata.name);
      if (named.sort().join() !== want.sort().join()) return `the pool keys name ${named.join()}, not ${want.join()}`;
      // ip-pool would ask the single-family pool for the cluster's other family too, which it never gives.
      if (a['ipam.cilium.io/ip-pool'] !== undefined) return 'ip-pool for a pool of one family';
      return undefined;
    }
    const names = new Set(placement.pools.map((p) => p.cni.cilium?.pool));
    for (const k of keys) {
      if (a[k] !== undefined && !names.has(a[k])) return `${k} names no CiliumPodIPPool of the pod's pools`;
    }
    return undefined;
  },
};

function containerdAccepts(a: Record<string, string>): string | undefined {
  for (const k of ['kubernetes.io/ingress-bandwidth', 'kubernetes.io/egress-bandwidth']) {
    if (a[k] !== undefined && typeof parseRate(a[k]) === 'string') return `${k} would fail the sandbox`;
  }
  return undefined;
}

describe.each(['calico', 'kube-ovn', 'antrea', 'cilium'] as const)('%s renders only what it honours', (cni) => {
  const dialect: Dialect = dialectFor(cni);
  it('for every accepted combination of intent, pools and shape', () => {
    let accepted = 0;
    for (const address of ADDRESS_INTENTS) {
      for (const qos of QOS_INTENTS) {
        const { intent, problems } = parseIntent({ ...address, ...qos });
        expect(problems).toEqual([]);
        for (const shape of SHAPES) {
          const pools = poolsFor(intent);
          const placement = placementFor(intent, pools, dialect.pinsAddresses(intent, shape, pools));
          if (dialect.check(intent, shape, placement.pools).length > 0) continue;
          accepted++;
          const { annotations } = dialect.render(intent, shape, placement);
          const why = ACCEPTS[cni]!(annotations, placement, shape) ?? containerdAccepts(annotations);
          expect(
            why,
            `${JSON.stringify({ ...address, ...qos })} as ${shape.kind}${shape.statefulSet ? ' (StatefulSet)' : ''}`,
          ).toBeUndefined();
        }
      }
    }
    // The rules must leave something to render, or this test proves nothing.
    expect(accepted).toBeGreaterThan(20);
  });
});
