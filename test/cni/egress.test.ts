import { describe, expect, it } from 'vitest';
import { EGRESS_LABEL, egressByResource, egressLabelValue } from '../../src/cni/egress.js';
import { applied, v4, v6 } from './fixtures.js';

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
    const value = egressLabelValue({ ipv4: v4('255.255.255.255'), ipv6: v6('ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe') });
    expect(value).toMatch(LABEL_VALUE);
    expect(value.length).toBeLessThanOrEqual(63);
  });
});

describe('egressByResource', () => {
  it('labels the pod and gives the Antrea Egress to apply', () => {
    const r = egressByResource('antrea', { ipv4: v4('10.0.0.9') });
    expect(r.labels).toEqual({ [EGRESS_LABEL]: '10.0.0.9' });
    expect(r.warnings).toHaveLength(2);
    expect(applied(r.warnings[0]!)).toEqual({
      apiVersion: 'crd.antrea.io/v1beta1',
      kind: 'Egress',
      metadata: { name: 'netpin-egress-10.0.0.9' },
      spec: { appliedTo: { podSelector: { matchLabels: { 'netpin.io/egress': '10.0.0.9' } } }, egressIP: '10.0.0.9' },
    });
    expect(r.warnings[1]).toContain('configured on a node');
  });

  it('gives one Antrea Egress per family for dual stack, with the condition to check', () => {
    const r = egressByResource('antrea', { ipv4: v4('10.0.0.9'), ipv6: v6('fd00::9') });
    expect(r.labels).toEqual({ [EGRESS_LABEL]: '10.0.0.9_fd00--9' });
    const selector = { podSelector: { matchLabels: { 'netpin.io/egress': '10.0.0.9_fd00--9' } } };
    expect(applied(r.warnings[0]!)).toMatchObject({ metadata: { name: 'netpin-egress-10.0.0.9' }, spec: { appliedTo: selector, egressIP: '10.0.0.9' } });
    expect(applied(r.warnings[1]!)).toMatchObject({ metadata: { name: 'netpin-egress-fd00--9' }, spec: { appliedTo: selector, egressIP: 'fd00::9' } });
    expect(r.warnings[3]).toContain('check that your Antrea release applies both');
  });

  it('gives the CiliumEgressGatewayPolicy to apply, one family per policy', () => {
    const r = egressByResource('cilium', { ipv4: v4('10.0.0.9'), ipv6: v6('fd00::9') });
    expect(r.labels).toEqual({ [EGRESS_LABEL]: '10.0.0.9_fd00--9' });
    const selectors = [{ podSelector: { matchLabels: { 'netpin.io/egress': '10.0.0.9_fd00--9' } } }];
    expect(applied(r.warnings[0]!)).toEqual({
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumEgressGatewayPolicy',
      metadata: { name: 'netpin-egress-10.0.0.9' },
      spec: {
        selectors,
        destinationCIDRs: ['0.0.0.0/0'],
        egressGateway: { nodeSelector: { matchLabels: '<fill in: labels of the nodes that hold 10.0.0.9>' }, egressIP: '10.0.0.9' },
      },
    });
    expect(applied(r.warnings[1]!)).toMatchObject({
      metadata: { name: 'netpin-egress-fd00--9' },
      spec: { selectors, destinationCIDRs: ['::/0'], egressGateway: { egressIP: 'fd00::9' } },
    });
    expect(r.warnings[2]).toContain('configured on the gateway node');
    expect(r.warnings[2]).toContain('interface as well as egressIP');
  });

  it('stays well inside the API server warning budget (4096 runes before truncation)', () => {
    const r = egressByResource('cilium', { ipv4: v4('255.255.255.255'), ipv6: v6('ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe') });
    expect(r.warnings.join('').length).toBeLessThan(2048);
  });
});
