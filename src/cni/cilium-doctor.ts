// `netpin doctor` on Cilium: multi-pool IPAM, the egress gateway for egress pools, the CiliumPodIPPools
// netpin's IPPools name, and for pinned IPPools (one CiliumPodIPPool per address, src/cni/cilium-pools.ts)
// the dialect's own checkPool, as at admission, and the pools Cilium pre-allocates on every node.
import { describeRanges, type Pool } from '../ipam/pool.js';
import { cilium } from './cilium.js';
import { CILIUM_POD_IP_POOLS, isPinnedOnCilium } from './cilium-pools.js';
import {
  egressPools,
  fail,
  nameOf,
  ok,
  podPools,
  poolNames,
  Unread,
  unreadConfigMap,
  unreadList,
  warn,
  type Check,
  type DoctorInputs,
} from './doctor.js';

const CILIUM_CONFIG = 'ConfigMap kube-system/cilium-config';
const PRE_ALLOCATION = 'ipam-multi-pool-pre-allocation';
const POOL_ANNOTATIONS = 'ipam.cilium.io/ip-pool (ipv4-pool, ipv6-pool)';
// pinnedPoolName: the single-address pools netpin keeps.
const NETPIN_POOL_PREFIX = 'netpin-';

export async function ciliumChecks(inputs: DoctorInputs): Promise<Check[]> {
  // Pod pools either name a CiliumPodIPPool Cilium assigns from or are pinned by netpin: both need multi-pool.
  const pods = podPools(inputs.pools);
  const pinned = pods.filter(isPinnedOnCilium);
  const egress = egressPools(inputs.pools);
  const checks: Check[] = [];
  const config = await inputs.source.configMap('kube-system', 'cilium-config');
  if (config instanceof Unread) {
    const unchecked = [
      ...(pods.length > 0 ? ['the IPAM mode (ipam)'] : []),
      ...(pinned.length > 0 ? [`the pools pre-allocated on every node (${PRE_ALLOCATION})`] : []),
      ...(egress.length > 0 ? ['the egress gateway (enable-egress-gateway)'] : []),
    ];
    checks.push(
      unreadConfigMap(config, CILIUM_CONFIG, inWords(unchecked), 'install Cilium with its Helm chart, which writes it'),
    );
  } else {
    if (pods.length > 0) checks.push(ipamModeCheck(config));
    if (pinned.length > 0) checks.push(preAllocationCheck(config, pinned));
    if (egress.length > 0) checks.push(egressGatewayCheck(config, egress));
  }
  if (pods.length > 0) {
    const listed = await inputs.source.list(CILIUM_POD_IP_POOLS);
    if (listed instanceof Unread) {
      const unchecked = [
        ...(pinned.length < pods.length ? ["that the CiliumPodIPPools netpin's IPPools name exist"] : []),
        ...(pinned.length > 0 ? ['that no CiliumPodIPPool Cilium assigns from overlaps a pinned IPPool'] : []),
      ];
      checks.push(
        unreadList(
          listed,
          'CiliumPodIPPools (cilium.io/v2alpha1)',
          inWords(unchecked),
          'install Cilium with ipam.mode=multi-pool',
        ),
      );
    } else {
      const existing = new Set(listed.map(nameOf));
      for (const pool of pods) {
        checks.push(...(isPinnedOnCilium(pool) ? pinnedPoolChecks(pool, listed) : [ciliumPoolCheck(pool, existing)]));
      }
    }
  }
  return checks;
}

/** "a", "a and b", "a, b and c". */
function inWords(items: readonly string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} and ${items.at(-1)}`;
}

/**
 * Cilium reads the pool annotations in multi-pool IPAM only; its default is cluster-pool (daemon/cmd/daemon_main.go).
 * netpin writes ipam.cilium.io/ip-pool for a pool that names a CiliumPodIPPool, and ipv4-pool / ipv6-pool
 * for a pinned address.
 */
function ipamModeCheck(config: Record<string, string>): Check {
  const mode = config.ipam ?? 'cluster-pool';
  if (mode === 'multi-pool')
    return ok(`${CILIUM_CONFIG} sets ipam: multi-pool, the mode in which Cilium reads ${POOL_ANNOTATIONS}`);
  return fail(
    `${CILIUM_CONFIG} sets ipam: ${mode}${config.ipam === undefined ? ' (the default)' : ''}, ` +
      `and Cilium reads ${POOL_ANNOTATIONS} only with ipam: multi-pool`,
    'install Cilium with ipam.mode=multi-pool (ipam: multi-pool in cilium-config); ' +
      "Cilium's documentation warns against changing the IPAM mode of a running cluster outside a documented migration",
  );
}

/**
 * The pools named in ipam-multi-pool-pre-allocation ("pool=N,pool2=M", or a JSON object), as Cilium
 * reads it (pkg/command/map_string.go ToStringMapStringE); none when it is empty or unreadable.
 */
function preAllocated(text: string | undefined): Map<string, string> {
  const s = text?.trim() ?? '';
  if (s === '') return new Map();
  if (s.startsWith('{')) {
    try {
      const parsed: unknown = JSON.parse(s);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return new Map();
      return new Map(Object.entries(parsed).map(([k, v]) => [k, String(v)]));
    } catch {
      return new Map(); // the agent refuses to start on it, which no check of netpin's needs to say
    }
  }
  return new Map(
    s.split(',').flatMap((kv) => {
      const [k, v, ...rest] = kv.split('=');
      return k !== undefined && v !== undefined && rest.length === 0 ? [[k.trim(), v.trim()] as const] : [];
    }),
  );
}

/**
 * Every agent keeps N addresses of each pool in ipam-multi-pool-pre-allocation and waits at startup until
 * it has them (pkg/ipam/multipool_manager.go computeNeededIPsPerPoolLocked, waitForAllPools). A single-address
 * pool of netpin's there has one block for all the nodes: the node that gets it never gives it back, with or
 * without the pod, and every other agent that (re)starts waits for it forever. N = 0 asks for nothing.
 */
function preAllocationCheck(config: Record<string, string>, pinned: readonly Pool[]): Check {
  const listed = [...preAllocated(config[PRE_ALLOCATION])].filter(
    ([pool, n]) => pool.startsWith(NETPIN_POOL_PREFIX) && n !== '0',
  );
  if (listed.length === 0) {
    return ok(
      `${CILIUM_CONFIG} pre-allocates (${PRE_ALLOCATION}) none of the single-address CiliumPodIPPools ` +
        `netpin keeps for IPPool ${poolNames(pinned)}`,
    );
  }
  const names = listed.map(([pool]) => pool).join(', ');
  return fail(
    `${CILIUM_CONFIG} lists netpin's single-address CiliumPodIPPool ${names} in ${PRE_ALLOCATION}: ` +
      'every node asks for its one block, the node that gets it keeps it, Cilium agents on the other nodes ' +
      'block at startup waiting for it, and the pinned pod never starts on another node',
    `remove ${names} from ipam.multiPoolPreAllocation in Cilium's Helm values (${PRE_ALLOCATION} in cilium-config; ` +
      'keep default=<N> there) and restart cilium-agent',
  );
}

/**
 * Cilium applies CiliumEgressGatewayPolicies only with the egress gateway on: enable-egress-gateway from
 * Cilium 1.18, enable-ipv4-egress-gateway before (renamed in 1.18, no longer read from 1.19).
 */
function egressGatewayCheck(config: Record<string, string>, egress: readonly Pool[]): Check {
  if (config['enable-egress-gateway'] === 'true') {
    return ok(
      `${CILIUM_CONFIG} sets enable-egress-gateway: "true", so Cilium applies the CiliumEgressGatewayPolicies netpin keeps`,
    );
  }
  const fix =
    'set egressGateway.enabled=true in Cilium\'s Helm values (enable-egress-gateway: "true" in cilium-config) ' +
    'and restart cilium-agent and cilium-operator';
  if (config['enable-ipv4-egress-gateway'] === 'true') {
    return warn(
      `${CILIUM_CONFIG} sets enable-ipv4-egress-gateway: "true", ` +
        'a name Cilium reads only before 1.19 (1.18 renamed it enable-egress-gateway)',
      fix,
    );
  }
  return fail(
    `${CILIUM_CONFIG} does not set enable-egress-gateway: "true", ` +
      `so Cilium ignores the CiliumEgressGatewayPolicies netpin keeps for IPPool ${poolNames(egress)}`,
    fix,
  );
}

function ciliumPoolCheck(pool: Pool, existing: ReadonlySet<string>): Check {
  const named = pool.cni.cilium?.pool;
  if (!named) {
    return fail(
      `IPPool ${pool.name} names no CiliumPodIPPool (spec.cni.cilium.pool) and is not pinned (spec.cni.cilium.pinned), ` +
        'so netpin refuses pods that ask for it on Cilium',
      `set spec.cni.cilium.pool on IPPool ${pool.name} to a CiliumPodIPPool (cilium.io/v2alpha1), ` +
        'or spec.cni.cilium.pinned: true to have netpin pin each address',
    );
  }
  if (!existing.has(named)) {
    return fail(
      `IPPool ${pool.name} names CiliumPodIPPool ${named} (spec.cni.cilium.pool), which does not exist, ` +
        'so its pods wait in ContainerCreating ("pool not (yet) available")',
      `create CiliumPodIPPool ${named} (cilium.io/v2alpha1), or name an existing one`,
    );
  }
  return ok(`IPPool ${pool.name}: CiliumPodIPPool ${named} (cilium.io/v2alpha1) exists`);
}

/** A pinned IPPool: the same check as at its admission, against the CiliumPodIPPools as they are now. */
function pinnedPoolChecks(pool: Pool, listed: readonly unknown[]): Check[] {
  const { problems, warnings } = cilium.checkPool(pool, listed);
  if (problems.length === 0 && warnings.length === 0) {
    return [
      ok(
        `IPPool ${pool.name} (pinned): ${describeRanges(pool)} overlaps no CiliumPodIPPool that Cilium assigns from ` +
          '(those without app.kubernetes.io/managed-by=netpin), so no address netpin pins is also given to another pod',
      ),
    ];
  }
  return [
    ...problems.map((p) => fail(`IPPool ${pool.name} (${p.key}): ${p.message}`, p.fix)),
    ...warnings.map((w) => warn(`IPPool ${pool.name}: ${w}`)),
  ];
}
