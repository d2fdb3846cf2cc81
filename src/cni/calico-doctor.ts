// `netpin doctor` on Calico: netpin's ranges lie in Calico IPPools that take pinned addresses (the
// dialect's own checkPool, as at admission), and no pod holds one of them that netpin did not give.
import { describeRanges } from '../ipam/pool.js';
import { calico } from './calico.js';
import {
  egressPools,
  fail,
  foreignAddresses,
  ok,
  podPools,
  poolNames,
  Unread,
  warn,
  type Check,
  type DoctorInputs,
} from './doctor.js';

const MANUAL = 'assignmentMode: Manual, or nodeSelector: "!all()"';

export async function calicoChecks(inputs: DoctorInputs): Promise<Check[]> {
  const listed = await inputs.source.list(calico.nativePools!);
  // Unreadable Calico pools (the etcd datastore, RBAC) are the warning checkPool gives at admission.
  const native = listed instanceof Unread ? listed.reason : listed;
  const checks = podPools(inputs.pools).flatMap((pool) => {
    const { problems, warnings } = calico.checkPool(pool, native);
    if (problems.length === 0 && warnings.length === 0) {
      return [
        ok(
          `IPPool ${pool.name}: ${describeRanges(pool)} lies in Calico IPPools (crd.projectcalico.org/v1) that are enabled ` +
            '(spec.disabled), take workloads (spec.allowedUses) and never assign by themselves (spec.assignmentMode or spec.nodeSelector)',
        ),
      ];
    }
    return [
      ...problems.map((p) => fail(`IPPool ${pool.name} (${p.key}): ${p.message}`, p.fix)),
      ...warnings.map((w) => warn(`IPPool ${pool.name}: ${w}`)),
    ];
  });
  const egress = egressPools(inputs.pools);
  if (egress.length > 0) {
    checks.push(
      warn(
        `IPPool ${poolNames(egress)}: an egress pool, and Calico (open source) has no per-pod egress IP, ` +
          'so netpin refuses netpin.io/egress-pool and egress-ip on Calico',
      ),
    );
  }
  checks.push(
    ...(await foreignAddresses(
      inputs,
      (pod, pool) =>
        `make the Calico IPPool over ${describeRanges(pool)} never assign by itself (${MANUAL}), ` +
        `then delete pod ${pod.namespace}/${pod.name} so that Calico gives it an address elsewhere`,
    )),
  );
  return checks;
}
