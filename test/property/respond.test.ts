// The patch netpin answers with, against fast-json-patch's own compare: netpin's diff skips the subtrees
// the original and the mutated object share, and must give the same operations, in the same order.
import fc from 'fast-check';
import fastJsonPatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import { patched } from '../../src/admission/respond.js';
import type { KubeObject } from '../../src/admission/review.js';
import type { WireJson } from '../../harness/json.js';
import { runs } from './runs.js';

// Few keys, so that the two objects overlap; two that need escaping in a JSON Pointer.
const key = fc.constantFrom('a', 'b', 'c', 'metadata', 'x/y', 't~1');
const { value: json } = fc.letrec<{ value: WireJson; array: WireJson[]; object: Record<string, WireJson> }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.string({ maxLength: 3 }),
    fc.integer({ min: -3, max: 3 }),
    fc.boolean(),
    fc.constant(null),
    tie('array'),
    tie('object'),
  ),
  array: fc.array(tie('value'), { maxLength: 3 }),
  object: fc.dictionary(key, tie('value'), { maxKeys: 4, noNullPrototype: true }),
}));
const object = fc.dictionary(key, json, { maxKeys: 5, noNullPrototype: true });

/** What netpin's handlers do: copy what they change, share the rest; `choices` says which, at each step. */
function mutate(value: WireJson, choices: Iterator<number>, fresh: Iterator<WireJson>, root = false): WireJson {
  // The object under review is always copied; below it, anything goes.
  const choice = root ? 2 : (choices.next().value as number);
  if (choice === 0 || value === null || typeof value !== 'object') return choice < 2 ? value : fresh.next().value;
  if (choice === 1) return fresh.next().value;
  if (Array.isArray(value)) return value.map((v) => mutate(v, choices, fresh));
  const copy: Record<string, WireJson> = {};
  for (const [k, v] of Object.entries(value as Record<string, WireJson>)) {
    if ((choices.next().value as number) !== 3) copy[k] = mutate(v, choices, fresh);
  }
  if ((choices.next().value as number) === 4) copy[`added${choice}`] = fresh.next().value;
  return copy;
}

describe('patched', () => {
  it('gives the operations of fast-json-patch compare, and they turn the original into the mutated object', () => {
    fc.assert(
      fc.property(object, fc.infiniteStream(fc.nat(4)), fc.infiniteStream(json), (original, choices, fresh) => {
        const mutated = mutate(original, choices[Symbol.iterator](), fresh[Symbol.iterator](), true) as KubeObject;
        const expected = fastJsonPatch.compare(original, mutated as object);
        const verdict = patched(original as KubeObject, mutated);
        const ops = verdict.patch
          ? (JSON.parse(Buffer.from(verdict.patch, 'base64').toString('utf8')) as fastJsonPatch.Operation[])
          : [];
        expect(ops).toEqual(expected);
        const applied = fastJsonPatch.applyPatch(structuredClone(original), ops, true, false).newDocument;
        expect(applied).toEqual(JSON.parse(JSON.stringify(mutated)));
      }),
      { numRuns: runs(500) },
    );
  });
});
