import { describe, expect, it } from 'vitest';
import { netemProblems } from '../../src/cni/netem.js';
import { rate } from './fixtures.js';

describe('netemProblems', () => {
  it('refuses each netem key, naming the CNI and Kube-OVN', () => {
    const problems = netemProblems({ latencyMs: 10, jitterMs: 2, lossPercent: 0.5, limitPackets: 100 }, 'Calico');
    expect(problems.map((p) => p.key)).toEqual([
      'netpin.io/latency',
      'netpin.io/jitter',
      'netpin.io/loss',
      'netpin.io/limit',
    ]);
    for (const p of problems) {
      expect(p.message).toContain('Calico');
      expect(p.fix).toContain('Kube-OVN');
      expect(p.fix).toContain(`Remove ${p.key}`);
    }
  });

  it('has nothing to say without netem', () => {
    expect(netemProblems({ ingressRate: rate('1M', 1_000_000n) }, 'Cilium')).toEqual([]);
  });
});
