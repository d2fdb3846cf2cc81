// Pods, one handler per operation and endpoint (cert-manager's way): each decodes its pod once into
// a view (pod-view.ts), and refuses with problems that stay data until the answer is built.
import { ALLOCATED_KEY } from '../intent/keys.js';
import type { Owner } from '../ipam/claim.js';
import type { Admit } from './context.js';
import { mutatePodCreate } from './pod-create.js';
import { mutatePodUpdate, validatePodUpdate } from './pod-update.js';
import { validatePodCreate } from './pod-validate.js';
import { namespaceOf, statefulSetOf } from './pod-view.js';
import { allowed, type Verdict } from './respond.js';
import type { AdmissionRequest } from './review.js';

/**
 * Pod CREATE: refuse what the validating webhook would, then allocate and write the CNI's
 * annotations. UPDATE: re-render what the CNI applies live. DELETE: release, for the memory ledger.
 */
export function mutatePod(req: AdmissionRequest, admit: Admit): Promise<Verdict> | Verdict {
  if (req.operation === 'CREATE') return mutatePodCreate(req, admit);
  if (req.operation === 'UPDATE') return mutatePodUpdate(req, admit);
  if (req.operation === 'DELETE') return releasePod(req, admit);
  return allowed();
}

/** Pod CREATE and UPDATE, after every mutating webhook. */
export function validatePod(req: AdmissionRequest, admit: Admit): Promise<Verdict> | Verdict {
  if (req.operation === 'CREATE') return validatePodCreate(req, admit);
  if (req.operation === 'UPDATE') return validatePodUpdate(req, admit);
  return allowed();
}

/** Pod DELETE, for the memory ledger only: a StatefulSet's ordinal keeps its reservation. */
async function releasePod(req: AdmissionRequest, admit: Admit): Promise<Verdict> {
  const pod = req.oldObject;
  if (!admit.releaseOnDelete || req.dryRun || !pod || statefulSetOf(pod)) return allowed();
  const namespace = namespaceOf(req, pod);
  const mine = new Set((pod.metadata?.annotations?.[ALLOCATED_KEY] ?? '').split(','));
  const own = (o: Owner) =>
    (o.kind === 'Pod' || (o.kind === 'Egress' && o.workload === 'Pod')) && o.namespace === namespace;
  for (const claim of [...admit.index.allClaims()]) {
    if (
      own(claim.owner) &&
      (claim.owner.name === req.name || (claim.owner.kind === 'Pod' && mine.has(claim.ip.toString())))
    ) {
      await admit.ledger.release(claim);
    }
  }
  return allowed();
}
