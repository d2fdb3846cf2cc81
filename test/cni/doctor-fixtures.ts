// What the tests of each CNI's doctor checks share: netpin IPPools, and a cluster read from plain objects.
import ipaddr from 'ipaddr.js';
import type { CniName } from '../../src/cni/dialect.js';
import {
  formatCheck,
  Unread,
  type Check,
  type ClusterSource,
  type DaemonSetState,
  type Resource,
  type RunningPod,
} from '../../src/cni/doctor.js';
import { doctorFor } from '../../src/cni/index.js';
import type { Claim, Owner } from '../../src/ipam/claim.js';
import { compilePool, type IPPoolSpec, type Pool } from '../../src/ipam/pool.js';
import type { Address } from '../../src/net/address.js';

export const pool = (name: string, spec: IPPoolSpec) => compilePool({ metadata: { name }, spec });
export const claim = (p: string, ip: string, owner: Owner): Claim => ({
  pool: p,
  ip: ipaddr.parse(ip) as Address,
  owner,
  createdAt: 0,
});
export const named = (kind: string, name: string, spec: object) => ({ kind, metadata: { name }, spec });

export const web = pool('web', {
  cidr: '10.50.0.0/24',
  cni: {
    calico: { pool: 'netpin-web' },
    kubeOvn: { subnet: 'web-subnet' },
    antrea: { pool: 'web-pool' },
    cilium: { pool: 'web-pool' },
  },
});
// netpin picks each address and gives it to Cilium as a CiliumPodIPPool of its own (src/cni/cilium-pools.ts).
export const fixed = pool('fixed', { cidr: '10.70.0.0/28', cni: { cilium: { pinned: true } } });
export const out = pool('out', {
  ranges: ['10.90.0.1-10.90.0.4'],
  egress: { nodeSelector: { matchLabels: { egress: 'true' } } },
});

export const FORBIDDEN = new Unread(false, 'HTTP 403: configmaps "x" is forbidden');

export interface FakeCluster {
  /** By "<plural>.<group>/<version>". */
  lists?: Record<string, readonly unknown[] | Unread>;
  /** By "<namespace>/<name>". */
  configMaps?: Record<string, Record<string, string> | Unread>;
  pods?: RunningPod[];
  daemonSets?: DaemonSetState[] | Unread;
  nodes?: number | Unread;
}

export function source(fake: FakeCluster): ClusterSource {
  return {
    list: async (r: Resource) =>
      fake.lists?.[`${r.plural}.${r.group}/${r.version}`] ??
      new Unread(true, `the cluster serves no ${r.plural}.${r.group}`),
    configMap: async (ns, name) =>
      fake.configMaps?.[`${ns}/${name}`] ?? new Unread(true, `ConfigMap ${ns}/${name} does not exist`),
    runningPods: async () => fake.pods ?? [],
    daemonSets: async () => fake.daemonSets ?? [],
    nodeCount: async () => fake.nodes ?? 1,
  };
}

export function run(cni: CniName, pools: Pool[], fake: FakeCluster, claims: Claim[] = []): Promise<Check[]> {
  return doctorFor(cni)({ pools, claims, source: source(fake) });
}

export const outcomes = (checks: Check[]) => checks.map((c) => c.outcome);
export const failing = (checks: Check[]) => checks.filter((c) => c.outcome === 'FAIL').map(formatCheck);
