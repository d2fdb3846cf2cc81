import fastJsonPatch from 'fast-json-patch';
import { bounded } from '../net/shown.js';
import type { AdmissionResponse, KubeObject } from './review.js';

/**
 * The longest message an answer carries, refusal or error: a backstop under renderProblems and shown(),
 * so that no message, whoever wrote it, follows the size of the request (issue 20). Five problems fit.
 */
export const MESSAGE_CHARS = 4096;
/** Warnings per answer, and characters per warning: the API server passes them all to the client. */
const WARNINGS = 16;
const WARNING_CHARS = 1024;

/** A handler's answer before the request uid is attached. */
export type Verdict = Omit<AdmissionResponse, 'uid'>;

export function allowed(warnings: string[] = []): Verdict {
  return withWarnings({ allowed: true }, warnings);
}

export function denied(message: string, warnings: string[] = []): Verdict {
  return withWarnings(
    { allowed: false, status: { code: 403, reason: 'Forbidden', message: bounded(message, MESSAGE_CHARS) } },
    warnings,
  );
}

/** An in-band error: the review was fine but netpin could not decide (for example, the API server failed). */
export function errored(message: string): Verdict {
  return { allowed: false, status: { code: 500, reason: 'InternalError', message: bounded(message, MESSAGE_CHARS) } };
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

type Json = unknown;
type JsonObject = Record<string, Json>;

function isObject(v: Json): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A key as a JSON Pointer segment (RFC 6901): "~" then "/" escaped. */
function pointer(key: string): string {
  return key.replaceAll('~', '~0').replaceAll('/', '~1');
}

/**
 * The operations fast-json-patch's compare gives, in its order (existing keys last to first, then
 * added keys), without walking what the two objects share: netpin copies only what it changes
 * (metadata, annotations, labels) and shares every other subtree of the pod, whose walk cost more
 * than the rest of its admission. Arrays that differ go to compare itself.
 */
function patchOps(original: Json, mutated: Json, path = '', ops: fastJsonPatch.Operation[] = []) {
  if (original === mutated) return ops;
  if (isObject(original) && isObject(mutated)) {
    const keys = Object.keys(original);
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i]!;
      const before = original[key];
      const after = mutated[key];
      if (before === after) continue;
      const at = `${path}/${pointer(key)}`;
      if (after !== undefined && Object.hasOwn(mutated, key)) patchOps(before, after, at, ops);
      else ops.push({ op: 'remove', path: at });
    }
    for (const key of Object.keys(mutated)) {
      if (!Object.hasOwn(original, key) && mutated[key] !== undefined)
        ops.push({ op: 'add', path: `${path}/${pointer(key)}`, value: mutated[key] });
    }
  } else if (Array.isArray(original) && Array.isArray(mutated)) {
    for (const op of fastJsonPatch.compare(original, mutated)) ops.push({ ...op, path: `${path}${op.path}` });
  } else {
    ops.push({ op: 'replace', path, value: mutated });
  }
  return ops;
}

export function complete(uid: string, verdict: Verdict): AdmissionResponse {
  return { uid, ...verdict };
}

function withWarnings(v: Verdict, warnings: string[]): Verdict {
  if (warnings.length > 0) v.warnings = warnings.slice(0, WARNINGS).map((w) => bounded(w, WARNING_CHARS));
  return v;
}
