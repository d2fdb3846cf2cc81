import { describe, expect, it } from 'vitest';
import { CNI_NAMES, dialectFor } from '../../src/cni/index.js';

describe('dialectFor', () => {
  it('has a dialect for every CNI name, under that name', () => {
    expect(CNI_NAMES.map((n) => [n, dialectFor(n).name, dialectFor(n).title])).toEqual([
      ['calico', 'calico', 'Calico'],
      ['kube-ovn', 'kube-ovn', 'Kube-OVN'],
      ['antrea', 'antrea', 'Antrea'],
      ['cilium', 'cilium', 'Cilium'],
      ['netpin-ipam', 'netpin-ipam', 'netpin-ipam'],
    ]);
  });
});
