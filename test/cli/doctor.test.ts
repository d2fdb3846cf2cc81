import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import { diagnose, formatCheck } from '../../src/cli/doctor.js';
import { Unread, type Check, type ClusterSource, type Resource, type RunningPod } from '../../src/cni/doctor.js';
import type { CniName } from '../../src/cni/dialect.js';
import type { Claim, Owner } from '../../src/ipam/claim.js';
import { compilePool, type IPPoolSpec, type Pool } from '../../src/ipam/pool.js';
import type { Address } from '../../src/net/address.js';

const pool = (name: string, spec: IPPoolSpec) => compilePool({ metadata: { name }, spec });
const claim = (p: string, ip: string, owner: Owner): Claim => ({
  pool: p,
  ip: ipaddr.parse(ip) as Address,
  owner,
  createdAt: 0,
});
const named = (kind: string, name: string, spec: object) => ({ kind, metadata: { name }, spec });

const web = pool('web', {
  cidr: '10.50.0.0/24',
  cni: {
    calico: { pool: 'netpin-web' },
    kubeOvn: { subnet: 'web-subnet' },
    antrea: { pool: 'web-pool' },
    cilium: { pool: 'web-pool' },
  },
});
const out = pool('out', {
  ranges: ['10.90.0.1-10.90.0.4'],
  egress: { nodeSelector: { matchLabels: { egress: 'true' } } },
});

const FORBIDDEN = new Unread(false, 'HTTP 403: configmaps "x" is forbidden');

interface FakeCluster {
  /** By "<plural>.<group>/<version>". */
  lists?: Record<string, readonly unknown[] | Unread>;
  /** By "<namespace>/<name>". */
  configMaps?: Record<string, Record<string, string> | Unread>;
  pods?: RunningPod[];
}

function source(fake: FakeCluster): ClusterSource {
  return {
    list: async (r: Resource) =>
      fake.lists?.[`${r.plural}.${r.group}/${r.version}`] ??
      new Unread(true, `the cluster serves no ${r.plural}.${r.group}`),
    configMap: async (ns, name) =>
      fake.configMaps?.[`${ns}/${name}`] ?? new Unread(true, `ConfigMap ${ns}/${name} does not exist`),
    runningPods: async () => fake.pods ?? [],
  };
}

function run(cni: CniName, pools: Pool[], fake: FakeCluster, claims: Claim[] = []): Promise<Check[]> {
  return diagnose(cni, { pools, claims, source: source(fake) });
}

const outcomes = (checks: Check[]) => checks.map((c) => c.outcome);
const failing = (checks: Check[]) => checks.filter((c) => c.outcome === 'FAIL').map(formatCheck);

it('says there is nothing to check without a netpin IPPool', async () => {
  const checks = await run('calico', [], {});
  expect(checks.map(formatCheck)).toEqual([
    'WARN  no netpin IPPool (netpin.io/v1alpha1) exists, so there is nothing to check against the CNI',
  ]);
});

it('prints a check on one line, with its fix', () => {
  expect(formatCheck({ outcome: 'ok', text: 'fine' })).toBe('ok    fine');
  expect(formatCheck({ outcome: 'FAIL', text: 'broken', fix: 'mend it' })).toBe('FAIL  broken. Fix: mend it');
});

describe('Calico', () => {
  const calicoPools = (...pools: object[]) => ({ 'ippools.crd.projectcalico.org/v1': pools });
  const manual = named('IPPool', 'netpin-web', { cidr: '10.50.0.0/24', nodeSelector: '!all()' });

  it('passes a pool inside a Calico IPPool that never assigns by itself, and pods that netpin gave their addresses', async () => {
    const claims = [
      claim('web', '10.50.0.1', { kind: 'StatefulSet', namespace: 'shop', name: 'db', ordinal: 0 }),
      claim('web', '10.50.0.2', { kind: 'Pod', namespace: 'shop', name: 'solo' }),
      claim('web', '10.50.0.3', { kind: 'Pod', namespace: 'shop', name: '', uid: 'req' }),
    ];
    const pods = [
      { namespace: 'shop', name: 'db-0', podIPs: ['10.50.0.1'] },
      { namespace: 'shop', name: 'solo', podIPs: ['10.50.0.2'] },
      { namespace: 'shop', name: 'new-abc', podIPs: ['10.50.0.3'] },
      { namespace: 'other', name: 'elsewhere', podIPs: ['192.168.0.5'] },
    ];
    const checks = await run('calico', [web], { lists: calicoPools(manual), pods }, claims);
    expect(outcomes(checks)).toEqual(['ok', 'ok']);
    expect(checks[0]!.text).toContain('spec.assignmentMode or spec.nodeSelector');
  });

  it.each<[string, object, RegExp]>([
    [
      'auto-assigning',
      { cidr: '10.50.0.0/24' },
      /assigns from by itself.*Fix: on Calico IPPool netpin-web, set assignmentMode: Manual/,
    ],
    [
      'disabled',
      { cidr: '10.50.0.0/24', nodeSelector: '!all()', disabled: true },
      /which is disabled.*Fix: set disabled: false/,
    ],
    [
      'too small',
      { cidr: '10.50.0.0/25', nodeSelector: '!all()' },
      /lies in no part of Calico IPPool netpin-web.*Fix: create a Calico IPPool over/,
    ],
  ])('fails a pool in a Calico IPPool that is %s, naming the setting to change', async (_, spec, message) => {
    const checks = await run('calico', [web], { lists: calicoPools(named('IPPool', 'netpin-web', spec)) });
    expect(failing(checks)).toEqual([expect.stringMatching(message)]);
  });

  it('warns, without failing, when Calico IPPools cannot be read', async () => {
    const checks = await run('calico', [web], { lists: { 'ippools.crd.projectcalico.org/v1': FORBIDDEN } });
    expect(outcomes(checks)).toEqual(['WARN', 'ok']);
    expect(checks[0]!.text).toContain("could not read Calico's IPPools (HTTP 403");
  });

  it('fails a running pod that uses a pool address netpin did not give it, naming the holder', async () => {
    const claims = [claim('web', '10.50.0.7', { kind: 'Pod', namespace: 'shop', name: 'cart' })];
    const pods = [
      { namespace: 'plain', name: 'rogue', podIPs: ['10.50.0.9'] },
      { namespace: 'shop', name: 'thief', podIPs: ['10.50.0.7'] },
    ];
    const checks = await run('calico', [web], { lists: calicoPools(manual), pods }, claims);
    expect(failing(checks)).toEqual([
      'FAIL  pod plain/rogue uses 10.50.0.9 (status.podIPs) of netpin IPPool web, and netpin holds no IPClaim on it: ' +
        'a pod netpin pins to it would find it taken. Fix: make the Calico IPPool over 10.50.0.1-10.50.0.254 never assign by itself ' +
        '(assignmentMode: Manual, or nodeSelector: "!all()"), then delete pod plain/rogue so that Calico gives it an address elsewhere',
      expect.stringMatching(/^FAIL {2}pod shop\/thief uses 10\.50\.0\.7 .*, which netpin gave to pod shop\/cart: /),
    ]);
  });

  it('warns that an egress pool is of no use on Calico', async () => {
    const checks = await run('calico', [web, out], { lists: calicoPools(manual) });
    expect(checks.map(formatCheck)).toContainEqual(
      expect.stringMatching(/^WARN {2}IPPool out: an egress pool, and Calico \(open source\) has no per-pod egress IP/),
    );
  });
});

describe('Kube-OVN', () => {
  const subnets = (...s: object[]) => ({ 'subnets.kubeovn.io/v1': s });
  const open = pool('open', { ranges: ['10.60.0.1-10.60.0.8', 'fd00::1-fd00::8'] });

  it('passes a pool whose Subnet exists and holds it, and warns about a pool that names none', async () => {
    const checks = await run('kube-ovn', [web, open], {
      lists: subnets(
        named('Subnet', 'web-subnet', { cidrBlock: '10.50.0.0/16' }),
        named('Subnet', 'dual', { cidrBlock: '10.60.0.0/24,fd00::/64' }),
      ),
    });
    expect(checks.map(formatCheck)).toEqual([
      'ok    IPPool web: Kube-OVN Subnet web-subnet exists and its spec.cidrBlock 10.50.0.0/16 holds 10.50.0.1-10.50.0.254',
      "WARN  IPPool open names no Kube-OVN Subnet (spec.cni.kubeOvn.subnet), so its pods stay in their namespace's Subnet, " +
        'where Kube-OVN looks for their addresses; Subnet dual holds 10.60.0.1-10.60.0.8, fd00::1-fd00::8. ' +
        'Fix: set spec.cni.kubeOvn.subnet: dual on IPPool open',
      'ok    no running pod uses an address of a netpin IPPool that netpin did not give it ' +
        '(status.podIPs of every pod, against the IPClaims)',
    ]);
  });

  it('fails a Subnet that is missing or does not hold the pool, and a pool no Subnet holds', async () => {
    const missing = await run('kube-ovn', [web], { lists: subnets() });
    expect(failing(missing)).toEqual([
      expect.stringMatching(
        /names Kube-OVN Subnet web-subnet \(spec\.cni\.kubeOvn\.subnet\), which does not exist\. Fix: create Subnet/,
      ),
    ]);
    const small = await run('kube-ovn', [web, open], {
      lists: subnets(named('Subnet', 'web-subnet', { cidrBlock: '10.50.0.0/25' })),
    });
    expect(failing(small)).toEqual([
      expect.stringMatching(
        /IPPool web: 10\.50\.0\.1-10\.50\.0\.254 lies outside spec\.cidrBlock 10\.50\.0\.0\/25 of Kube-OVN Subnet/,
      ),
      expect.stringMatching(/IPPool open: no Kube-OVN Subnet's spec\.cidrBlock holds .*Fix: create a Subnet/),
    ]);
  });

  it('warns when Subnets cannot be read, and fails when the cluster has none', async () => {
    expect(outcomes(await run('kube-ovn', [web], { lists: { 'subnets.kubeovn.io/v1': FORBIDDEN } }))).toEqual([
      'WARN',
      'ok',
    ]);
    expect(failing(await run('kube-ovn', [web], {}))).toEqual([
      'FAIL  the cluster serves no subnets.kubeovn.io, so there are no Kube-OVN Subnets (kubeovn.io/v1). ' +
        'Fix: install Kube-OVN, or pass the --cni this cluster runs',
    ]);
  });

  it('fails a pod Kube-OVN gave an address of a netpin pool', async () => {
    const checks = await run('kube-ovn', [web], {
      lists: subnets(named('Subnet', 'web-subnet', { cidrBlock: '10.50.0.0/16' })),
      pods: [{ namespace: 'a', name: 'b', podIPs: ['10.50.0.3'] }],
    });
    expect(failing(checks)).toEqual([
      expect.stringMatching(
        /pod a\/b uses 10\.50\.0\.3 .*Fix: keep Kube-OVN from assigning 10\.50\.0\.1-10\.50\.0\.254 by itself/,
      ),
    ]);
  });
});

describe('Antrea', () => {
  const AGENT_OK =
    'featureGates:\n  AntreaIPAM: true\nenableBridgingMode: true\ntrafficEncapMode: "noEncap"\nnoSNAT: true\n';
  const CONTROLLER_OK = 'featureGates:\n  AntreaIPAM: true\n';
  const config = (agent: string, controller = CONTROLLER_OK) => ({
    'kube-system/antrea-config': { 'antrea-agent.conf': agent, 'antrea-controller.conf': controller },
  });
  const antreaPools = (...p: object[]) => ({ 'ippools.crd.antrea.io/v1beta1': p });
  const webPool = named('IPPool', 'web-pool', {
    ipRanges: [{ cidr: '10.50.0.0/24' }],
    subnetInfo: { gateway: '10.50.0.1', prefixLength: 24 },
  });

  it('passes the feature gate, bridging mode and an Antrea IPPool that holds the pool', async () => {
    const checks = await run('antrea', [web, out], { configMaps: config(AGENT_OK), lists: antreaPools(webPool) });
    expect(checks.map(formatCheck)).toEqual([
      'ok    antrea-controller.conf in ConfigMap kube-system/antrea-config turns on the AntreaIPAM feature gate (featureGates.AntreaIPAM)',
      'ok    antrea-agent.conf in ConfigMap kube-system/antrea-config turns on the AntreaIPAM feature gate (featureGates.AntreaIPAM)',
      'ok    antrea-agent.conf in ConfigMap kube-system/antrea-config turns on bridging mode ' +
        '(enableBridgingMode: true, trafficEncapMode: noEncap, noSNAT: true)',
      'ok    IPPool web: Antrea IPPool web-pool exists and its spec.ipRanges hold 10.50.0.1-10.50.0.254',
    ]);
  });

  it('takes AllAlpha for the alpha AntreaIPAM gate, unless the gate is set itself', async () => {
    const allAlpha = 'featureGates:\n  AllAlpha: true\n';
    expect(
      outcomes(await run('antrea', [web], { configMaps: config(AGENT_OK, allAlpha), lists: antreaPools(webPool) }))[0],
    ).toBe('ok');
    const off = 'featureGates:\n  AllAlpha: true\n  AntreaIPAM: false\n';
    expect(
      outcomes(await run('antrea', [web], { configMaps: config(AGENT_OK, off), lists: antreaPools(webPool) }))[0],
    ).toBe('FAIL');
  });

  it.each<[string, string, RegExp]>([
    // The chart writes an unset gate as a comment.
    [
      'the gate left at its default',
      'featureGates:\n#  AntreaIPAM: false\nenableBridgingMode: true\ntrafficEncapMode: noEncap\nnoSNAT: true\n',
      /antrea-agent\.conf .* leaves the AntreaIPAM feature gate off .*Fix: set featureGates: \{AntreaIPAM: true\} in antrea-agent/,
    ],
    [
      'bridging mode off',
      'featureGates:\n  AntreaIPAM: true\nenableBridgingMode: false\n',
      /leaves enableBridgingMode off.*Fix: set enableBridgingMode: true, trafficEncapMode: noEncap and noSNAT: true in antrea-agent\.conf/,
    ],
    [
      'bridging mode in encap mode',
      'featureGates:\n  AntreaIPAM: true\nenableBridgingMode: true\n',
      /sets enableBridgingMode: true with trafficEncapMode: encap and noSNAT: false, and antrea-agent refuses to start/,
    ],
  ])('fails %s', async (_, agent, message) => {
    const checks = await run('antrea', [web], { configMaps: config(agent), lists: antreaPools(webPool) });
    expect(failing(checks)).toEqual([expect.stringMatching(message)]);
  });

  it('fails the controller without the gate', async () => {
    const checks = await run('antrea', [web], {
      configMaps: config(AGENT_OK, 'featureGates: {}\n'),
      lists: antreaPools(webPool),
    });
    expect(failing(checks)).toEqual([
      expect.stringMatching(/^FAIL {2}antrea-controller\.conf .*restart antrea-controller$/),
    ]);
  });

  it('warns, and goes on, when antrea-config cannot be read or parsed', async () => {
    const forbidden = await run('antrea', [web], {
      configMaps: { 'kube-system/antrea-config': FORBIDDEN },
      lists: antreaPools(webPool),
    });
    expect(forbidden.map(formatCheck)).toEqual([
      'WARN  could not read ConfigMap kube-system/antrea-config (HTTP 403: configmaps "x" is forbidden): ' +
        'not checked the AntreaIPAM feature gate and enableBridgingMode',
      'ok    IPPool web: Antrea IPPool web-pool exists and its spec.ipRanges hold 10.50.0.1-10.50.0.254',
    ]);
    const garbled = await run('antrea', [web], {
      configMaps: config('featureGates: [\n'),
      lists: antreaPools(webPool),
    });
    expect(outcomes(garbled)).toEqual(['ok', 'WARN', 'WARN', 'ok']);
    expect(garbled[1]!.text).toMatch(/^antrea-agent\.conf in ConfigMap kube-system\/antrea-config is not YAML/);
    expect(failing(await run('antrea', [web], { lists: antreaPools(webPool) }))).toEqual([
      expect.stringMatching(/^FAIL {2}ConfigMap kube-system\/antrea-config does not exist/),
    ]);
  });

  it('reads IPPools at v1alpha2 from an Antrea before 2.0', async () => {
    const old = named('IPPool', 'web-pool', {
      ipVersion: 4,
      ipRanges: [{ start: '10.50.0.1', end: '10.50.0.254', gateway: '10.50.0.1', prefixLength: 24 }],
    });
    const checks = await run('antrea', [web], {
      configMaps: config(AGENT_OK),
      lists: { 'ippools.crd.antrea.io/v1alpha2': [old] },
    });
    expect(outcomes(checks)).toEqual(['ok', 'ok', 'ok', 'ok']);
  });

  it('fails an Antrea IPPool that is missing or too small, and a pool that names none', async () => {
    const unnamed = pool('bare', { cidr: '10.60.0.0/29' });
    const small = named('IPPool', 'web-pool', { ipRanges: [{ start: '10.50.0.1', end: '10.50.0.99' }] });
    expect(
      failing(await run('antrea', [web, unnamed], { configMaps: config(AGENT_OK), lists: antreaPools(small) })),
    ).toEqual([
      expect.stringMatching(
        /IPPool web: 10\.50\.0\.1-10\.50\.0\.254 lies outside spec\.ipRanges of Antrea IPPool web-pool/,
      ),
      expect.stringMatching(/IPPool bare names no Antrea IPPool \(spec\.cni\.antrea\.pool\)/),
    ]);
    expect(failing(await run('antrea', [web], { configMaps: config(AGENT_OK), lists: antreaPools() }))).toEqual([
      expect.stringMatching(
        /names Antrea IPPool web-pool \(spec\.cni\.antrea\.pool\), which does not exist.*Fix: create Antrea IPPool/,
      ),
    ]);
  });

  it('checks nothing of flexible IPAM for egress pools alone', async () => {
    expect(outcomes(await run('antrea', [out], {}))).toEqual(['ok']);
  });
});

describe('Cilium', () => {
  const ciliumPools = (...n: string[]) => ({
    'ciliumpodippools.cilium.io/v2alpha1': n.map((name) => named('CiliumPodIPPool', name, {})),
  });
  const config = (data: Record<string, string>) => ({ 'kube-system/cilium-config': data });

  it('passes multi-pool IPAM, the egress gateway and the CiliumPodIPPools named', async () => {
    const checks = await run('cilium', [web, out], {
      configMaps: config({ ipam: 'multi-pool', 'enable-egress-gateway': 'true' }),
      lists: ciliumPools('web-pool'),
    });
    expect(checks.map(formatCheck)).toEqual([
      'ok    ConfigMap kube-system/cilium-config sets ipam: multi-pool, the mode in which Cilium reads ipam.cilium.io/ip-pool',
      'ok    ConfigMap kube-system/cilium-config sets enable-egress-gateway: "true", ' +
        'so Cilium applies the CiliumEgressGatewayPolicies netpin keeps',
      'ok    IPPool web: CiliumPodIPPool web-pool (cilium.io/v2alpha1) exists',
    ]);
  });

  it('fails another IPAM mode, set or by default, naming the Helm value', async () => {
    for (const [data, said] of [
      [{ ipam: 'cluster-pool' }, 'ipam: cluster-pool,'],
      [{}, 'ipam: cluster-pool (the default),'],
    ] as const) {
      const checks = await run('cilium', [web], { configMaps: config(data), lists: ciliumPools('web-pool') });
      expect(failing(checks)).toEqual([
        expect.stringContaining(
          `cilium-config sets ${said} and Cilium reads ipam.cilium.io/ip-pool only with ipam: multi-pool. ` +
            'Fix: install Cilium with ipam.mode=multi-pool',
        ),
      ]);
    }
  });

  it('fails the egress gateway off, and warns about its name before Cilium 1.18', async () => {
    const off = await run('cilium', [out], { configMaps: config({}) });
    expect(off.map(formatCheck)).toEqual([
      'FAIL  ConfigMap kube-system/cilium-config does not set enable-egress-gateway: "true", ' +
        'so Cilium ignores the CiliumEgressGatewayPolicies netpin keeps for IPPool out. ' +
        'Fix: set egressGateway.enabled=true in Cilium\'s Helm values (enable-egress-gateway: "true" in cilium-config) ' +
        'and restart cilium-agent and cilium-operator',
    ]);
    const old = await run('cilium', [out], { configMaps: config({ 'enable-ipv4-egress-gateway': 'true' }) });
    expect(outcomes(old)).toEqual(['WARN']);
    expect(old[0]!.text).toContain('a name Cilium reads only before 1.19');
  });

  it('fails a missing CiliumPodIPPool and a pool that names none', async () => {
    const unnamed = pool('bare', { cidr: '10.60.0.0/29' });
    const checks = await run('cilium', [web, unnamed], {
      configMaps: config({ ipam: 'multi-pool' }),
      lists: ciliumPools(),
    });
    expect(failing(checks)).toEqual([
      expect.stringMatching(
        /IPPool web names CiliumPodIPPool web-pool \(spec\.cni\.cilium\.pool\), which does not exist.*Fix: create/,
      ),
      expect.stringMatching(/IPPool bare names no CiliumPodIPPool \(spec\.cni\.cilium\.pool\)/),
    ]);
  });

  it('warns what went unchecked when cilium-config cannot be read', async () => {
    const checks = await run('cilium', [web, out], {
      configMaps: { 'kube-system/cilium-config': FORBIDDEN },
      lists: ciliumPools('web-pool'),
    });
    expect(checks.map(formatCheck)[0]).toBe(
      'WARN  could not read ConfigMap kube-system/cilium-config (HTTP 403: configmaps "x" is forbidden): ' +
        'not checked the IPAM mode (ipam) and the egress gateway (enable-egress-gateway)',
    );
    expect(outcomes(checks)).toEqual(['WARN', 'ok']);
  });
});
