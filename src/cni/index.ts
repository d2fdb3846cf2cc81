import { antrea } from './antrea.js';
import { calico } from './calico.js';
import { cilium } from './cilium.js';
import type { CniName, Dialect } from './dialect.js';
import { kubeOvn } from './kube-ovn.js';

export { CNI_NAMES } from './dialect.js';

const DIALECTS: Record<CniName, Dialect> = { calico, 'kube-ovn': kubeOvn, antrea, cilium };

export function dialectFor(name: CniName): Dialect {
  return DIALECTS[name];
}
