import ipaddr from 'ipaddr.js';
import type { WorkloadShape } from '../../src/cni/dialect.js';
import type { Allocation } from '../../src/ipam/allocator.js';
import type { Rate } from '../../src/intent/types.js';
import { compilePool, type CniPoolNames, type Pool } from '../../src/ipam/pool.js';

export const v4 = (s: string) => ipaddr.parse(s) as ipaddr.IPv4;
export const v6 = (s: string) => ipaddr.parse(s) as ipaddr.IPv6;
export const rate = (text: string, bitsPerSecond: bigint): Rate => ({ text, bitsPerSecond });

export const pool = (name: string, cidr: string, cni: CniPoolNames = {}): Pool =>
  compilePool({ metadata: { name }, spec: { cidr, cni } });

export const POD: WorkloadShape = { kind: 'Pod', replicas: 1, statefulSet: false };
export const DEPLOYMENT: WorkloadShape = { kind: 'Deployment', replicas: 3, statefulSet: false };
export const STATEFULSET: WorkloadShape = { kind: 'StatefulSet', replicas: 3, statefulSet: true };

export const allocation = (pools: Pool[], ipv4?: string, ipv6?: string): Allocation => ({
  addresses: { ...(ipv4 && { ipv4: v4(ipv4) }), ...(ipv6 && { ipv6: v6(ipv6) }) },
  pools,
});
