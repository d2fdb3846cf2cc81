// Issue 21: one pod is decoded once per admission. Its netpin.io/ annotations are parsed once, and each
// CNI rendering is computed once per object: a CREATE renders its pod once (not a dry render before the
// claims, then again), an UPDATE renders its old and its new pod once each.
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as parse from '../../src/intent/parse.js';
import { admittedAnnotations, harness, pod, podCreate, podUpdate } from '../../harness/reviews.js';

vi.mock('../../src/intent/parse.js', async (original) => {
  const actual = await original<typeof parse>();
  return { ...actual, parseIntent: vi.fn(actual.parseIntent) };
});

const parses = vi.mocked(parse.parseIntent);

/** Counts the parses and the renders of one review, from the moment it is posted. */
async function counted<T>(h: Awaited<ReturnType<typeof harness>>, post: () => Promise<T>) {
  const render = vi.spyOn(h.deps.dialect, 'render');
  parses.mockClear();
  const answer = await post();
  const counts = { parses: parses.mock.calls.length, renders: render.mock.calls.length };
  render.mockRestore();
  return { answer, counts };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('one pod, one view per admission', () => {
  it.each([
    ['a pinned pod', { 'netpin.io/pool': 'web' }],
    ['a pinned pod with an egress address', { 'netpin.io/pool': 'web', 'netpin.io/egress-pool': 'out' }],
    ['a pinned pod with annotations of its own', { 'netpin.io/ip': '10.20.0.7', 'example.com/team': 'cart' }],
    ['a rate-limited pod', { 'netpin.io/egress-rate': '10M' }],
  ])('parses and renders %s once at CREATE, on /mutate and on /validate', async (_, annotations) => {
    const h = await harness({ cni: 'kube-ovn' });
    const body = podCreate({ name: 'a', annotations });
    const mutated = await counted(h, () => h.mutate(body));
    expect(mutated.counts).toEqual({ parses: 1, renders: 1 });
    const admitted = admittedAnnotations(body, mutated.answer);
    const validated = await counted(h, () => h.validate(podCreate({ name: 'a', annotations: admitted })));
    expect(validated.answer.response.allowed).toBe(true);
    expect(validated.counts).toEqual({ parses: 1, renders: 1 });
  });

  it('parses and renders the old and the new pod once each at UPDATE, live change or not', async () => {
    const h = await harness({ cni: 'kube-ovn' });
    const body = podCreate({ name: 'a', annotations: { 'netpin.io/pool': 'web', 'netpin.io/egress-rate': '10M' } });
    const stored = pod({ name: 'a', annotations: admittedAnnotations(body, await h.mutate(body)) });
    const rated = pod({
      name: 'a',
      annotations: { ...stored.metadata!.annotations, 'netpin.io/egress-rate': '20M' },
    });
    const labelled = pod({ name: 'a', annotations: stored.metadata!.annotations, labels: { tier: 'web' } });
    for (const changed of [rated, labelled]) {
      for (const post of [h.mutate, h.validate]) {
        const { answer, counts } = await counted(h, () => post(podUpdate(stored, changed)));
        expect(answer.response.allowed).toBe(true);
        expect(counts).toEqual({ parses: 2, renders: 2 });
      }
    }
  });
});
