// `netpin doctor` on Cilium: multi-pool IPAM, the egress gateway for egress pools, and the
// CiliumPodIPPools netpin's IPPools name.
import type { Pool } from '../ipam/pool.js';
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
  type Resource,
} from './doctor.js';

const CILIUM_CONFIG = 'ConfigMap kube-system/cilium-config';
const CILIUM_POOLS: Resource = { group: 'cilium.io', version: 'v2alpha1', plural: 'ciliumpodippools' };

export async function ciliumChecks(inputs: DoctorInputs): Promise<Check[]> {
  const pinned = podPools(inputs.pools);
  const egress = egressPools(inputs.pools);
  const checks: Check[] = [];
  const config = await inputs.source.configMap('kube-system', 'cilium-config');
  if (config instanceof Unread) {
    const unchecked = [
      ...(pinned.length > 0 ? ['the IPAM mode (ipam)'] : []),
      ...(egress.length > 0 ? ['the egress gateway (enable-egress-gateway)'] : []),
    ];
    checks.push(
      unreadConfigMap(
        config,
        CILIUM_CONFIG,
        unchecked.join(' and '),
        'install Cilium with its Helm chart, which writes it',
      ),
    );
  } else {
    if (pinned.length > 0) checks.push(ipamModeCheck(config));
    if (egress.length > 0) checks.push(egressGatewayCheck(config, egress));
  }
  if (pinned.length > 0) {
    const listed = await inputs.source.list(CILIUM_POOLS);
    if (listed instanceof Unread) {
      checks.push(
        unreadList(
          listed,
          'CiliumPodIPPools (cilium.io/v2alpha1)',
          "that the CiliumPodIPPools netpin's IPPools name exist",
          'install Cilium with ipam.mode=multi-pool',
        ),
      );
    } else {
      const existing = new Set(listed.map(nameOf));
      checks.push(...pinned.map((pool) => ciliumPoolCheck(pool, existing)));
    }
  }
  return checks;
}

/** Cilium reads the pool annotations in multi-pool IPAM only; its default is cluster-pool (daemon/cmd/daemon_main.go). */
function ipamModeCheck(config: Record<string, string>): Check {
  const mode = config.ipam ?? 'cluster-pool';
  if (mode === 'multi-pool')
    return ok(`${CILIUM_CONFIG} sets ipam: multi-pool, the mode in which Cilium reads ipam.cilium.io/ip-pool`);
  return fail(
    `${CILIUM_CONFIG} sets ipam: ${mode}${config.ipam === undefined ? ' (the default)' : ''}, ` +
      'and Cilium reads ipam.cilium.io/ip-pool only with ipam: multi-pool',
    'install Cilium with ipam.mode=multi-pool (ipam: multi-pool in cilium-config); ' +
      "Cilium's documentation warns against changing the IPAM mode of a running cluster outside a documented migration",
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
      `IPPool ${pool.name} names no CiliumPodIPPool (spec.cni.cilium.pool), so netpin refuses pods that ask for it on Cilium`,
      `set spec.cni.cilium.pool on IPPool ${pool.name} to a CiliumPodIPPool (cilium.io/v2alpha1)`,
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
