import fastJsonPatch from 'fast-json-patch';
import type { Dialect } from '../cni/dialect.js';
import type { Problem } from '../intent/types.js';
import { bounded, shown, SHOWN_CHARS } from '../net/shown.js';
import { isObject } from '../config/manifest.js';
import type { AdmissionResponse, KubeObject } from './review.js';

/**
 * The longest message an answer carries, refusal or error: a backstop under renderProblems and shown(),
 * so that no message, whoever wrote it, follows the size of the request (issue 20). Five problems fit.
 */
export const MESSAGE_CHARS = 4096;
/** Warnings per answer, and characters per warning: the API server passes them all to the client. */
const WARNINGS = 16;
const WARNING_CHARS = 1024;

/** An answer as the API server reads it, before the request uid is attached. */
export type Answer = Omit<AdmissionResponse, 'uid'>;

/**
 * A refusal, kept as data until answer() states it: the metrics read the key at fault, and every
 * kind's problems are stated in one format (renderProblems).
 */
export interface Refusal {
  allowed: false;
  problems: readonly Problem[];
  warnings: string[];
  /** The object whose fields the problems' keys name, stated before each: "IPPool web". None for a pod's or template's annotations. */
  of?: string;
  /** Problems of the object as a whole: each message names the object, and no key or CNI is stated. */
  keyless?: boolean;
}

/** How a refusal's problems are stated. */
type Statement = Pick<Refusal, 'of' | 'keyless'>;

/** A handler's decision: an answer, or a refusal that is still data. */
export type Verdict = Answer | Refusal;

export function refused(problems: readonly Problem[], warnings: string[] = [], how: Statement = {}): Refusal {
  return { allowed: false, problems, warnings, ...how };
}

export function isRefusal(v: Verdict): v is Refusal {
  return 'problems' in v;
}

/** The one place a decision becomes an answer: a refusal's problems are stated here, and only here. */
export function answer(v: Verdict, dialect: Dialect): Answer {
  return isRefusal(v) ? denied(renderProblems(v.problems, dialect, v), v.warnings) : v;
}

/** A refusal names this many problems at most, then says how many more: the first ones are what to fix first. */
export const LISTED_PROBLEMS = 5;
/** One problem's part of a refusal, at most; its key and the values it repeats are cut before (shown()). */
const PROBLEM_CHARS = 1024;

/** One message that names each annotation at fault, the CNI, and the fix; the first LISTED_PROBLEMS of them. */
export function renderProblems(problems: readonly Problem[], dialect: Dialect, how: Statement = {}): string {
  const listed = problems.slice(0, LISTED_PROBLEMS).map((p) => bounded(stated(p, dialect, how), PROBLEM_CHARS));
  const more = problems.length - listed.length;
  if (more > 0) listed.push(`and ${more} more ${more === 1 ? 'problem' : 'problems'}, not listed`);
  return bounded(listed.join('; '), MESSAGE_CHARS);
}

/** "<of>: <key> (CNI <title>): <message>. Fix: <fix>", without what `how` leaves out. */
function stated(p: Problem, dialect: Dialect, how: Statement): string {
  // A key netpin does not know is the tenant's text too.
  const key = `${p.key.length > SHOWN_CHARS ? shown(p.key) : p.key}${p.source ? ` (${p.source})` : ''}`;
  const where = how.keyless ? '' : `${how.of ? `${how.of}: ` : ''}${key} (CNI ${dialect.title}): `;
  return `${where}${p.message}. Fix: ${p.fix}`;
}

export function allowed(warnings: string[] = []): Answer {
  return withWarnings({ allowed: true }, warnings);
}

/** A refusal's answer; handlers refuse with refused(), which answer() states through this. */
export function denied(message: string, warnings: string[] = []): Answer {
  return withWarnings(
    { allowed: false, status: { code: 403, reason: 'Forbidden', message: bounded(message, MESSAGE_CHARS) } },
    warnings,
  );
}

/** An in-band error: the review was fine but netpin could not decide (for example, the API server failed). */
export function errored(message: string): Answer {
  return { allowed: false, status: { code: 500, reason: 'InternalError', message: bounded(message, MESSAGE_CHARS) } };
}

/** Allows with the JSONPatch from `original` to `mutated`; no patch field when nothing changed. */
export function patched(original: KubeObject, mutated: KubeObject, warnings: string[] = []): Answer {
  const ops = patchOps(original, mutated);
  const v: Answer = { allowed: true };
  if (ops.length > 0) {
    v.patchType = 'JSONPatch';
    v.patch = Buffer.from(JSON.stringify(ops)).toString('base64');
  }
  return withWarnings(v, warnings);
}

type Json = unknown;

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

export function complete(uid: string, answer: Answer): AdmissionResponse {
  return { uid, ...answer };
}

function withWarnings(v: Answer, warnings: string[]): Answer {
  if (warnings.length > 0) v.warnings = warnings.slice(0, WARNINGS).map((w) => bounded(w, WARNING_CHARS));
  return v;
}
