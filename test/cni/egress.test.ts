import { describe, expect, it } from 'vitest';
import { EGRESS_LABEL, egressLabelValue, egressResources } from '../../src/cni/egress.js';
import { compilePool } from '../../src/ipam/pool.js';
import { v4, v6 } from './fixtures.js';

const LABEL_VALUE = /^[A-Za-z0-9]([-_.A-Za-z0-9]*[A-Za-z0-9])?$/;

describe('egressLabelValue', () => {
  it.each([
    [{ ipv4: v4('10.0.0.9') }, '10.0.0.9'],
    [{ ipv6: v6('fd00::9') }, 'fd00--9'],
    [{ ipv4: v4('10.0.0.9'), ipv6: v6('fd00::9') }, '10.0.0.9_fd00--9'],
    [{ ipv6: v6('::1') }, '0--1'],
    [{ ipv6: v6('fd00::') }, 'fd00--0'],
    [{ ipv4: v4('10.0.0.9'), ipv6: v6('fd00::') }, '10.0.0.9_fd00--0'],
    [{ ipv6: v6('FD00:0:0:0:0:0:0:9') }, 'fd00--9'],
  ])('encodes %o as %s, a valid label value', (ip, value) => {
    expect(egressLabelValue(ip)).toBe(value);
    expect(value).toMatch(LABEL_VALUE);
  });

  it('fits the longest dual-stack pair in 63 characters', () => {
    const value = egressLabelValue({
      ipv4: v4('255.255.255.255'),
      ipv6: v6('ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe'),
    });
    expect(value).toMatch(LABEL_VALUE);
    expect(value.length).toBeLessThanOrEqual(63);
  });
});

describe('the resources netpin keeps', () => {
  const gw = { nodeSelector: { matchLabels: { egress: 'yes' } } };
  const eg = compilePool({
    metadata: { name: 'eg' },
    spec: { ranges: ['10.0.0.8-10.0.0.15', 'fd00::8-fd00::f'], egress: gw },
  });
  const uses = [
    { address: v4('10.0.0.9'), namespace: 'shop', labelValue: '10.0.0.9_fd00--9', pool: eg },
    { address: v6('fd00::9'), namespace: 'shop', labelValue: '10.0.0.9_fd00--9', pool: eg },
  ];
  const managed = { labels: { 'app.kubernetes.io/managed-by': 'netpin' } };

  it("for Antrea: one ExternalIPPool per egress pool, one Egress per address, in the pods' namespace", () => {
    const [pool, e4, e6, ...more] = egressResources('antrea', uses, []);
    expect(more).toEqual([]);
    expect(pool).toEqual({
      apiVersion: 'crd.antrea.io/v1beta1',
      kind: 'ExternalIPPool',
      plural: 'externalippools',
      metadata: { name: 'netpin-eg', ...managed },
      spec: {
        ipRanges: [
          { start: '10.0.0.8', end: '10.0.0.15' },
          { start: 'fd00::8', end: 'fd00::f' },
        ],
        nodeSelector: gw.nodeSelector,
      },
    });
    const appliedTo = {
      podSelector: { matchLabels: { [EGRESS_LABEL]: '10.0.0.9_fd00--9' } },
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'shop' } },
    };
    expect(e4).toEqual({
      apiVersion: 'crd.antrea.io/v1beta1',
      kind: 'Egress',
      plural: 'egresses',
      metadata: { name: 'netpin-egress-10.0.0.9', ...managed },
      spec: { appliedTo, egressIP: '10.0.0.9', externalIPPool: 'netpin-eg' },
    });
    expect(e6?.spec).toMatchObject({ egressIP: 'fd00::9' });
  });

  it('for Cilium: one policy per address, destinations and exclusions of its family, never an interface', () => {
    const [p4, p6, ...more] = egressResources('cilium', uses, ['10.0.0.0/8', 'fd00::/8']);
    expect(more).toEqual([]);
    expect(p4).toEqual({
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumEgressGatewayPolicy',
      plural: 'ciliumegressgatewaypolicies',
      metadata: { name: 'netpin-egress-10.0.0.9', ...managed },
      spec: {
        selectors: [
          {
            podSelector: { matchLabels: { [EGRESS_LABEL]: '10.0.0.9_fd00--9', 'io.kubernetes.pod.namespace': 'shop' } },
          },
        ],
        destinationCIDRs: ['0.0.0.0/0'],
        excludedCIDRs: ['10.0.0.0/8'],
        egressGateway: { nodeSelector: gw.nodeSelector, egressIP: '10.0.0.9' },
      },
    });
    expect(p6?.spec).toMatchObject({
      destinationCIDRs: ['::/0'],
      excludedCIDRs: ['fd00::/8'],
      egressGateway: { egressIP: 'fd00::9' },
    });
    expect(JSON.stringify(p6)).not.toContain('interface');
  });
});
