import { describe, expect, it } from 'vitest';
import { formatCheck } from '../../src/cni/doctor.js';
import { pool, named, web, out, FORBIDDEN, run, outcomes, failing } from './doctor-fixtures.js';

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
