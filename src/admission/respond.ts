import fastJsonPatch from 'fast-json-patch';
import type { AdmissionResponse, KubeObject } from './review.js';

/** A handler's answer before the request uid is attached. */
export type Verdict = Omit<AdmissionResponse, 'uid'>;

export function allowed(warnings: string[] = []): Verdict {
  return withWarnings({ allowed: true }, warnings);
}

export function denied(message: string, warnings: string[] = []): Verdict {
  return withWarnings({ allowed: false, status: { code: 403, reason: 'Forbidden', message } }, warnings);
}

/** An in-band error: the review was fine but netpin could not decide (for example, the API server failed). */
export function errored(message: string): Verdict {
  return { allowed: false, status: { code: 500, reason: 'InternalError', message } };
}

/** Allows with the JSONPatch from `original` to `mutated`; no patch field when nothing changed. */
export function patched(original: KubeObject, mutated: KubeObject, warnings: string[] = []): Verdict {
  const ops = patchOps(original, mutated);
  const v: Verdict = { allowed: true };
  if (ops.length > 0) {
    v.patchType = 'JSONPatch';
    v.patch = Buffer.from(JSON.stringify(ops)).toString('base64');
  }
  return withWarnings(v, warnings);
}

/**
 * netpin changes metadata only, and shares every other field with the original: then only metadata
 * is compared, since diffing a pod's spec would cost more than the rest of its admission.
 */
function patchOps(original: KubeObject, mutated: KubeObject): fastJsonPatch.Operation[] {
  const sameBesideMetadata =
    original.metadata !== undefined &&
    mutated.metadata !== undefined &&
    Object.keys(original).length === Object.keys(mutated).length &&
    Object.keys(mutated).every((k) => k === 'metadata' || mutated[k] === original[k]);
  if (!sameBesideMetadata) return fastJsonPatch.compare(original, mutated);
  return fastJsonPatch
    .compare(original.metadata!, mutated.metadata!)
    .map((op) => ({ ...op, path: `/metadata${op.path}` }));
}

export function complete(uid: string, verdict: Verdict): AdmissionResponse {
  return { uid, ...verdict };
}

function withWarnings(v: Verdict, warnings: string[]): Verdict {
  if (warnings.length > 0) v.warnings = warnings;
  return v;
}
