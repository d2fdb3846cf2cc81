import { describe, expect, it } from 'vitest';
import { Unread } from '../../src/cni/doctor.js';
import { failing, outcomes, pool, run } from './doctor-fixtures.js';

const placed = pool('placed', { cidr: '10.60.0.0/24', exclude: ['10.60.0.1'] });
const unplaced = pool('unplaced', { ranges: ['10.61.0.10-10.61.0.20'] });
const agents = (desired: number, ready: number) => [
  { namespace: 'netpin-system', name: 'netpin-ipam', desired, ready },
];

describe('netpin doctor --cni netpin-ipam', () => {
  it('passes with the plugin ready on every node and pools that place their addresses; without pods, the conflist is left to check by hand', async () => {
    const checks = await run('netpin-ipam', [placed], { daemonSets: agents(3, 3), nodes: 3 });
    expect(outcomes(checks)).toEqual(['ok', 'ok', 'WARN']);
    expect(checks[0]!.text).toBe('DaemonSet netpin-system/netpin-ipam has netpin-ipam ready on 3 of 3 nodes');
    expect(checks[1]!.text).toBe('IPPool placed: netpin-ipam places its addresses in 10.60.0.0/24 via 10.60.0.1');
    expect(checks[2]!.fix).toContain('io.kubernetes.cri.pod-annotations');
  });

  it('judges the nodes by the pods netpin addressed: on their netpin.io/allocated, or not', async () => {
    const pod = (name: string, podIPs: string[], allocated?: string) => ({
      namespace: 'shop',
      name,
      podIPs,
      allocated,
    });
    const good = await run('netpin-ipam', [placed], {
      daemonSets: agents(1, 1),
      pods: [pod('a', ['10.60.0.7', 'fd00::7'], '10.60.0.7,fd00:0:0::7'), pod('plain', ['10.244.0.9'])],
    });
    expect(good[2]).toEqual({
      outcome: 'ok',
      text: "every running pod netpin addressed (1) runs on its netpin.io/allocated: the nodes running them hand netpin-ipam the pod's annotations",
    });
    const bad = await run('netpin-ipam', [placed], {
      daemonSets: agents(1, 1),
      pods: [pod('a', ['10.60.0.7'], '10.60.0.7'), pod('b', ['10.244.0.9'], '10.60.0.8')],
    });
    expect(bad[2]!.outcome).toBe('FAIL');
    expect(bad[2]!.text).toBe(
      'running pods that netpin addressed use other addresses: shop/b runs on 10.244.0.9, not 10.60.0.8',
    );
    expect(bad[2]!.fix).toContain('io.kubernetes.cri.pod-annotations');
  });

  it('fails a pool that gives no subnet, and a DaemonSet not ready everywhere', async () => {
    const checks = await run('netpin-ipam', [unplaced], { daemonSets: agents(3, 2), nodes: 3 });
    expect(failing(checks)).toEqual([
      'FAIL  DaemonSet netpin-system/netpin-ipam has netpin-ipam ready on 2 of 3 nodes: pods on the others fail in ContainerCreating. Fix: see kubectl -n netpin-system describe daemonset netpin-ipam',
      'FAIL  IPPool unplaced (spec.subnets): the pool has no spec.cidr and no spec.subnets, so netpin-ipam knows no prefix length or gateway for its addresses. Fix: set spec.subnets on IPPool unplaced: each subnet its ranges lie in (cidr) and its gateway',
    ]);
  });

  it('warns when no DaemonSet installs the plugin, when it skips nodes, and when DaemonSets cannot be read', async () => {
    const none = await run('netpin-ipam', [placed], { daemonSets: [], nodes: 2 });
    expect(none[0]!.outcome).toBe('WARN');
    expect(none[0]!.text).toContain('no DaemonSet labelled app.kubernetes.io/component=ipam-plugin');
    const some = await run('netpin-ipam', [placed], { daemonSets: agents(2, 2), nodes: 3 });
    expect(some[0]!.outcome).toBe('WARN');
    expect(some[0]!.text).toContain('runs on 2 of 3 nodes');
    const denied = await run('netpin-ipam', [placed], { daemonSets: new Unread(false, 'HTTP 403'), nodes: 3 });
    expect(denied[0]!.text).toBe(
      'could not read DaemonSets (HTTP 403): not checked that netpin-ipam is installed on every node',
    );
  });
});
