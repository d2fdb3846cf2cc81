// What `netpin doctor` checks, per CNI: whether the CNI's own configuration in the cluster can honour
// what netpin writes. Everything is read through a ClusterSource, so the checks run without a cluster.
import { parse as parseYaml } from 'yaml';
import { calico } from '../cni/calico.js';
import type { CniName } from '../cni/dialect.js';
import { describeOwner, type Claim, type Owner } from '../ipam/claim.js';
import { describeRanges, poolContains, type Pool } from '../ipam/pool.js';
import { formatRange, parseAddress, parseRange, type AddressRange } from '../net/address.js';

type Outcome = 'ok' | 'WARN' | 'FAIL';

export interface Check {
  outcome: Outcome;
  text: string;
  fix?: string;
}

/** Why something was not read: `missing` when the cluster has no such object or resource (404). */
export class Unread {
  constructor(
    readonly missing: boolean,
    readonly reason: string,
  ) {}
}

export interface Resource {
  group: string;
  version: string;
  plural: string;
}

/** A running pod and the addresses its CNI gave it (status.podIPs). */
export interface RunningPod {
  namespace: string;
  name: string;
  podIPs: string[];
}

/** Where the checks read the cluster; each CNI's checks read only what they need. */
export interface ClusterSource {
  list(resource: Resource): Promise<readonly unknown[] | Unread>;
  configMap(namespace: string, name: string): Promise<Record<string, string> | Unread>;
  runningPods(): Promise<RunningPod[]>;
}

export interface Inputs {
  pools: readonly Pool[];
  claims: readonly Claim[];
  source: ClusterSource;
}

const ok = (text: string): Check => ({ outcome: 'ok', text });
const warn = (text: string, fix?: string): Check => ({ outcome: 'WARN', text, ...(fix && { fix }) });
const fail = (text: string, fix: string): Check => ({ outcome: 'FAIL', text, fix });

export function formatCheck(c: Check): string {
  return `${c.outcome.padEnd(4)}  ${c.text}${c.fix ? `. Fix: ${c.fix}` : ''}`;
}

// Pod pools hold the addresses netpin pins or selects; egress pools never become pod addresses.
const podPools = (pools: readonly Pool[]) => pools.filter((p) => !p.egress);
const egressPools = (pools: readonly Pool[]) => pools.filter((p) => p.egress);
const names = (pools: readonly Pool[]) => pools.map((p) => p.name).join(', ');

const CHECKS: Record<CniName, (inputs: Inputs) => Promise<Check[]>> = {
  calico: calicoChecks,
  'kube-ovn': kubeOvnChecks,
  antrea: antreaChecks,
  cilium: ciliumChecks,
};

/** Every check for the CNI, in order. */
export async function diagnose(cni: CniName, inputs: Inputs): Promise<Check[]> {
  if (inputs.pools.length === 0) {
    return [warn('no netpin IPPool (netpin.io/v1alpha1) exists, so there is nothing to check against the CNI')];
  }
  return CHECKS[cni](inputs);
}

/** A CNI resource that could not be listed: missing is a failure; unreadable (RBAC) says what went unchecked. */
function unreadList(unread: Unread, what: string, unchecked: string, install: string): Check {
  return unread.missing
    ? fail(`${unread.reason}, so there are no ${what}`, `${install}, or pass the --cni this cluster runs`)
    : warn(`could not read ${what} (${unread.reason}): not checked ${unchecked}`);
}

function unreadConfigMap(unread: Unread, where: string, unchecked: string, install: string): Check {
  return unread.missing
    ? fail(`${where} does not exist, so ${unchecked} cannot be read`, `${install}, or pass the --cni this cluster runs`)
    : warn(`could not read ${where} (${unread.reason}): not checked ${unchecked}`);
}

/** The ranges of `pool` that lie in none of `outer` (each must lie inside one). */
function uncovered(pool: Pool, outer: readonly AddressRange[]): AddressRange[] {
  const inside = (r: AddressRange) =>
    outer.some((o) => o.family === r.family && o.first <= r.first && r.last <= o.last);
  return pool.families.flatMap((f) => pool.ranges[f]).filter((r) => !inside(r));
}

function parsedRanges(texts: readonly string[]): AddressRange[] {
  return texts.flatMap((t) => {
    const r = parseRange(t, false);
    return typeof r === 'string' ? [] : [r];
  });
}

function nameOf(obj: unknown): string {
  return (obj as { metadata?: { name?: string } }).metadata?.name ?? '';
}

// ---------------------------------------------------------------------------
// Addresses the CNI gave out by itself (Calico, Kube-OVN: the CNIs where netpin pins every address)

/** Whether netpin gave the claim's address to this pod: by name, by StatefulSet ordinal, or before the pod had a name. */
function givenTo(owner: Owner, pod: RunningPod): boolean {
  if (owner.namespace !== pod.namespace) return false;
  if (owner.kind === 'StatefulSet') return pod.name === `${owner.name}-${owner.ordinal}`;
  return owner.kind === 'Pod' && (owner.name === '' || owner.name === pod.name);
}

/**
 * Every running pod whose status.podIPs holds an address of a netpin pod pool that netpin did not
 * give it: the CNI assigns from netpin's range, so a pod netpin pins there can find its address taken.
 */
async function foreignAddresses(inputs: Inputs, fix: (pod: RunningPod, pool: Pool) => string): Promise<Check[]> {
  const pinned = podPools(inputs.pools);
  const byIp = new Map(inputs.claims.map((c) => [c.ip.toString(), c]));
  const checks: Check[] = [];
  for (const pod of await inputs.source.runningPods()) {
    for (const text of pod.podIPs) {
      const ip = parseAddress(text);
      const pool = ip && pinned.find((p) => poolContains(p, ip));
      if (!ip || !pool) continue;
      const claim = byIp.get(ip.toString());
      if (claim && givenTo(claim.owner, pod)) continue;
      const holder = claim ? `which netpin gave to ${describeOwner(claim.owner)}` : 'and netpin holds no IPClaim on it';
      checks.push(
        fail(
          `pod ${pod.namespace}/${pod.name} uses ${ip.toString()} (status.podIPs) of netpin IPPool ${pool.name}, ${holder}: ` +
            'a pod netpin pins to it would find it taken',
          fix(pod, pool),
        ),
      );
    }
  }
  if (checks.length > 0) return checks;
  return [
    ok(
      'no running pod uses an address of a netpin IPPool that netpin did not give it ' +
        '(status.podIPs of every pod, against the IPClaims)',
    ),
  ];
}

// ---------------------------------------------------------------------------
// Calico

const MANUAL = 'assignmentMode: Manual, or nodeSelector: "!all()"';

async function calicoChecks(inputs: Inputs): Promise<Check[]> {
  const listed = await inputs.source.list(calico.nativePools!);
  // Unreadable Calico pools (the etcd datastore, RBAC) are the warning checkPool gives at admission.
  const native = listed instanceof Unread ? listed.reason : listed;
  const checks = podPools(inputs.pools).flatMap((pool) => {
    const { problems, warnings } = calico.checkPool(pool, native);
    if (problems.length === 0 && warnings.length === 0) {
      return [
        ok(
          `IPPool ${pool.name}: ${describeRanges(pool)} lies in Calico IPPools (crd.projectcalico.org/v1) that are enabled ` +
            '(spec.disabled), take workloads (spec.allowedUses) and never assign by themselves (spec.assignmentMode or spec.nodeSelector)',
        ),
      ];
    }
    return [
      ...problems.map((p) => fail(`IPPool ${pool.name} (${p.key}): ${p.message}`, p.fix)),
      ...warnings.map((w) => warn(`IPPool ${pool.name}: ${w}`)),
    ];
  });
  const egress = egressPools(inputs.pools);
  if (egress.length > 0) {
    checks.push(
      warn(
        `IPPool ${names(egress)}: an egress pool, and Calico (open source) has no per-pod egress IP, ` +
          'so netpin refuses netpin.io/egress-pool and egress-ip on Calico',
      ),
    );
  }
  checks.push(
    ...(await foreignAddresses(
      inputs,
      (pod, pool) =>
        `make the Calico IPPool over ${describeRanges(pool)} never assign by itself (${MANUAL}), ` +
        `then delete pod ${pod.namespace}/${pod.name} so that Calico gives it an address elsewhere`,
    )),
  );
  return checks;
}

// ---------------------------------------------------------------------------
// Kube-OVN

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

async function kubeOvnChecks(inputs: Inputs): Promise<Check[]> {
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

// ---------------------------------------------------------------------------
// Antrea

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

async function antreaChecks(inputs: Inputs): Promise<Check[]> {
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

// ---------------------------------------------------------------------------
// Cilium

const CILIUM_CONFIG = 'ConfigMap kube-system/cilium-config';
const CILIUM_POOLS: Resource = { group: 'cilium.io', version: 'v2alpha1', plural: 'ciliumpodippools' };

async function ciliumChecks(inputs: Inputs): Promise<Check[]> {
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
      `so Cilium ignores the CiliumEgressGatewayPolicies netpin keeps for IPPool ${names(egress)}`,
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
