// `netpin doctor` on Antrea: flexible IPAM turned on (the AntreaIPAM gate, bridging mode), and each
// netpin IPPool lies in the Antrea IPPool it names.
import { parse as parseYaml } from 'yaml';
import { describeRanges, type Pool } from '../ipam/pool.js';
import { formatRange, type AddressRange } from '../net/address.js';
import {
  fail,
  nameOf,
  ok,
  parsedRanges,
  podPools,
  uncovered,
  Unread,
  unreadConfigMap,
  unreadList,
  warn,
  type Check,
  type DoctorInputs,
  type Resource,
} from './doctor.js';

const ANTREA_CONFIG = 'ConfigMap kube-system/antrea-config';
// IPPool is served at v1beta1 from Antrea 2.0, at v1alpha2 before.
const ANTREA_POOLS: Resource[] = ['v1beta1', 'v1alpha2'].map((version) => ({
  group: 'crd.antrea.io',
  version,
  plural: 'ippools',
}));

/** antrea-agent.conf or antrea-controller.conf, parsed; a string says why it could not be. */
type AntreaConf = Record<string, unknown> | string;

function antreaConf(config: Record<string, string>, key: string): AntreaConf {
  try {
    // An absent file leaves every setting at its default.
    const parsed: unknown = parseYaml(config[key] ?? '');
    return parsed !== null && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : {};
  } catch (e) {
    return `${key} in ${ANTREA_CONFIG} is not YAML (${(e as Error).message.split('\n')[0]})`;
  }
}

export async function antreaChecks(inputs: DoctorInputs): Promise<Check[]> {
  const pinned = podPools(inputs.pools);
  // Egress pools need neither flexible IPAM nor Antrea IPPools.
  if (pinned.length === 0) {
    return [
      ok(
        'no netpin IPPool gives pod addresses, so Antrea needs neither the AntreaIPAM feature gate nor Antrea IPPools',
      ),
    ];
  }
  const config = await inputs.source.configMap('kube-system', 'antrea-config');
  const checks =
    config instanceof Unread
      ? [
          unreadConfigMap(
            config,
            ANTREA_CONFIG,
            'the AntreaIPAM feature gate and enableBridgingMode',
            'install Antrea with its manifest or Helm chart, which write it',
          ),
        ]
      : antreaConfigChecks(config);
  let listed = await inputs.source.list(ANTREA_POOLS[0]!);
  if (listed instanceof Unread && listed.missing) listed = await inputs.source.list(ANTREA_POOLS[1]!);
  if (listed instanceof Unread) {
    checks.push(
      unreadList(
        listed,
        'Antrea IPPools (crd.antrea.io)',
        "that the Antrea IPPools netpin's IPPools name exist and hold them",
        'install Antrea',
      ),
    );
  } else {
    checks.push(...pinned.map((pool) => antreaPoolCheck(pool, listed.map(readAntreaPool))));
  }
  return checks;
}

/**
 * Antrea's pool annotations take effect only with the AntreaIPAM feature gate on in antrea-controller
 * and antrea-agent, and bridging mode in antrea-agent (docs/antrea-ipam.md); without them Antrea
 * ignores ipam.antrea.io/ippools and pod-ips.
 */
function antreaConfigChecks(config: Record<string, string>): Check[] {
  return [
    gateCheck('antrea-controller', antreaConf(config, 'antrea-controller.conf')),
    gateCheck('antrea-agent', antreaConf(config, 'antrea-agent.conf')),
    bridgingCheck(antreaConf(config, 'antrea-agent.conf')),
  ];
}

function gateCheck(component: 'antrea-controller' | 'antrea-agent', conf: AntreaConf): Check {
  const file = `${component}.conf in ${ANTREA_CONFIG}`;
  if (typeof conf === 'string')
    return warn(`${conf}: not checked that ${component} turns on the AntreaIPAM feature gate`);
  const gates = (conf.featureGates ?? {}) as Record<string, unknown>;
  // AntreaIPAM is alpha: AllAlpha turns it on unless it is set itself (pkg/features/antrea_features.go).
  if ((gates.AntreaIPAM ?? gates.AllAlpha) === true)
    return ok(`${file} turns on the AntreaIPAM feature gate (featureGates.AntreaIPAM)`);
  return fail(
    `${file} leaves the AntreaIPAM feature gate off (featureGates.AntreaIPAM), ` +
      "and Antrea's IPPools need it on in both antrea-controller and antrea-agent",
    `set featureGates: {AntreaIPAM: true} in ${component}.conf (Helm: --set featureGates.AntreaIPAM=true) and restart ${component}`,
  );
}

function bridgingCheck(agent: AntreaConf): Check {
  const file = `antrea-agent.conf in ${ANTREA_CONFIG}`;
  if (typeof agent === 'string') return warn(`${agent}: not checked that antrea-agent turns on bridging mode`);
  if (agent.enableBridgingMode !== true) {
    return fail(
      `${file} leaves enableBridgingMode off, ` +
        'so Antrea gives primary-network pods addresses of its own and ignores ipam.antrea.io/ippools and pod-ips',
      'set enableBridgingMode: true, trafficEncapMode: noEncap and noSNAT: true in antrea-agent.conf ' +
        '(Helm: --set enableBridgingMode=true,trafficEncapMode=noEncap,noSNAT=true) and restart antrea-agent',
    );
  }
  const mode = typeof agent.trafficEncapMode === 'string' ? agent.trafficEncapMode : 'encap';
  // antrea-agent exits at start otherwise (cmd/antrea-agent/options.go, validateAntreaIPAMConfig).
  if (mode.toLowerCase() !== 'noencap' || agent.noSNAT !== true) {
    return fail(
      `${file} sets enableBridgingMode: true with trafficEncapMode: ${mode} and noSNAT: ${agent.noSNAT === true}, ` +
        'and antrea-agent refuses to start in bridging mode unless trafficEncapMode is noEncap and noSNAT is true',
      'set trafficEncapMode: noEncap and noSNAT: true in antrea-agent.conf and restart antrea-agent',
    );
  }
  return ok(`${file} turns on bridging mode (enableBridgingMode: true, trafficEncapMode: noEncap, noSNAT: true)`);
}

interface AntreaPool {
  name: string;
  ranges: AddressRange[];
}

function readAntreaPool(obj: unknown): AntreaPool {
  const ranges =
    (obj as { spec?: { ipRanges?: Array<{ cidr?: string; start?: string; end?: string }> } }).spec?.ipRanges ?? [];
  return { name: nameOf(obj), ranges: parsedRanges(ranges.map((r) => r.cidr ?? `${r.start}-${r.end}`)) };
}

function antreaPoolCheck(pool: Pool, natives: AntreaPool[]): Check {
  const named = pool.cni.antrea?.pool;
  const where = describeRanges(pool);
  if (!named) {
    return fail(
      `IPPool ${pool.name} names no Antrea IPPool (spec.cni.antrea.pool), so netpin refuses its pods on Antrea: ` +
        "Antrea reads ipam.antrea.io/pod-ips only beside the pool's name",
      `create an Antrea IPPool (crd.antrea.io) whose spec.ipRanges hold ${where}, ` +
        `and name it in spec.cni.antrea.pool of IPPool ${pool.name}`,
    );
  }
  const native = natives.find((n) => n.name === named);
  if (!native) {
    return fail(
      `IPPool ${pool.name} names Antrea IPPool ${named} (spec.cni.antrea.pool), which does not exist, ` +
        'so Antrea fails its pods ("no valid IPPool found")',
      `create Antrea IPPool ${named} (crd.antrea.io) with spec.ipRanges that hold ${where}, or name an existing one`,
    );
  }
  const outside = uncovered(pool, native.ranges);
  if (outside.length > 0) {
    return fail(
      `IPPool ${pool.name}: ${outside.map(formatRange).join(', ')} lies outside spec.ipRanges of Antrea IPPool ${named}, ` +
        'and Antrea refuses a pinned address outside its pool ("does not belong to IP pool")',
      `add ${outside.map(formatRange).join(', ')} to spec.ipRanges of Antrea IPPool ${named}`,
    );
  }
  return ok(`IPPool ${pool.name}: Antrea IPPool ${named} exists and its spec.ipRanges hold ${where}`);
}
