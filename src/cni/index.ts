import { antrea } from './antrea.js';
import { antreaChecks } from './antrea-doctor.js';
import { calico } from './calico.js';
import { calicoChecks } from './calico-doctor.js';
import { cilium } from './cilium.js';
import { ciliumChecks } from './cilium-doctor.js';
import type { CniName, Dialect } from './dialect.js';
import type { CniChecks } from './doctor.js';
import { kubeOvn } from './kube-ovn.js';
import { kubeOvnChecks } from './kube-ovn-doctor.js';
import { netpinIpam } from './netpin-ipam.js';
import { netpinIpamChecks } from './netpin-ipam-doctor.js';

export { CNI_NAMES } from './dialect.js';

const DIALECTS: Record<CniName, Dialect> = { calico, 'kube-ovn': kubeOvn, antrea, cilium, 'netpin-ipam': netpinIpam };

export function dialectFor(name: CniName): Dialect {
  return DIALECTS[name];
}

const DOCTORS: Record<CniName, CniChecks> = {
  calico: calicoChecks,
  'kube-ovn': kubeOvnChecks,
  antrea: antreaChecks,
  cilium: ciliumChecks,
  'netpin-ipam': netpinIpamChecks,
};

/** `netpin doctor`'s checks of the CNI's own configuration against netpin's IPPools, in order. */
export function doctorFor(name: CniName): CniChecks {
  return DOCTORS[name];
}
