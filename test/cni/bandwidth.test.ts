import { describe, expect, it } from 'vitest';
import { bandwidthAnnotations, bandwidthProblems } from '../../src/cni/bandwidth.js';
import { rate } from './fixtures.js';

describe('bandwidthAnnotations', () => {
  it.each([
    [10_000_000n, '10M'],
    [500_000n, '500k'],
    [1_500_000n, '1500k'],
    [1_000n, '1k'],
    [1_001n, '1001'],
    [12_345_678n, '12345678'],
    [1_000_000_000n, '1G'],
    [2_500_000_000_000n, '2500G'],
    [7n * 10n ** 12n, '7T'],
    [10n ** 15n, '1P'],
  ])('renders %s bit/s as %s', (bits, text) => {
    expect(bandwidthAnnotations({ ingressRate: rate('x', bits) })).toEqual({ 'kubernetes.io/ingress-bandwidth': text });
    expect(bandwidthAnnotations({ egressRate: rate('x', bits) })).toEqual({ 'kubernetes.io/egress-bandwidth': text });
  });

  it('renders both directions and nothing without a rate', () => {
    expect(
      bandwidthAnnotations({ ingressRate: rate('10M', 10_000_000n), egressRate: rate('1.5M', 1_500_000n) }),
    ).toEqual({
      'kubernetes.io/ingress-bandwidth': '10M',
      'kubernetes.io/egress-bandwidth': '1500k',
    });
    expect(bandwidthAnnotations({})).toEqual({});
  });
});

describe('bandwidthProblems', () => {
  it('refuses a hand-written value containerd would refuse, white space around it included, naming its key', () => {
    const problems = bandwidthProblems({
      'kubernetes.io/ingress-bandwidth': '10M\n',
      'kubernetes.io/egress-bandwidth': ' 1G',
    });
    expect(problems.map(({ key, message }) => ({ key, message }))).toEqual([
      {
        key: 'kubernetes.io/ingress-bandwidth',
        message:
          '"10M\\n" has white space around it, which a Kubernetes quantity may not have, so containerd would refuse the pod sandbox',
      },
      {
        key: 'kubernetes.io/egress-bandwidth',
        message:
          '" 1G" has white space around it, which a Kubernetes quantity may not have, so containerd would refuse the pod sandbox',
      },
    ]);
    expect(bandwidthProblems({ 'kubernetes.io/ingress-bandwidth': '10M' })).toEqual([]);
  });
});
