// Issue 20, attack 2: a refusal's size follows netpin's rules, not the request.
import { describe, expect, it } from 'vitest';
import { checkIntent } from '../../src/admission/context.js';
import { LISTED_PROBLEMS, MESSAGE_CHARS, renderProblems } from '../../src/admission/respond.js';
import { calico } from '../../src/cni/calico.js';
import type { Problem } from '../../src/intent/types.js';
import { harness } from '../../harness/reviews.js';

const problems = (n: number, size = 10): Problem[] =>
  Array.from({ length: n }, (_, i) => ({ key: `netpin.io/k${i}`, message: 'm'.repeat(size), fix: 'f' }));

describe('renderProblems', () => {
  it(`lists ${LISTED_PROBLEMS} problems, then says how many more`, () => {
    expect(renderProblems(problems(LISTED_PROBLEMS), calico).split('; ')).toHaveLength(LISTED_PROBLEMS);
    const message = renderProblems(problems(100_000), calico);
    const parts = message.split('; ');
    expect(parts.slice(0, LISTED_PROBLEMS).map((p) => p.slice(0, p.indexOf(' ')))).toEqual([
      'netpin.io/k0',
      'netpin.io/k1',
      'netpin.io/k2',
      'netpin.io/k3',
      'netpin.io/k4',
    ]);
    expect(parts.slice(LISTED_PROBLEMS)).toEqual([`and ${100_000 - LISTED_PROBLEMS} more problems, not listed`]);
    expect(renderProblems(problems(LISTED_PROBLEMS + 1), calico)).toMatch(/; and 1 more problem, not listed$/);
  });

  it('cuts each problem, and the whole message, whatever a rule repeats of the request', () => {
    const message = renderProblems(problems(3, 1 << 20), calico);
    const parts = message.split('; ');
    expect(parts).toHaveLength(3);
    for (const p of parts) {
      expect(p.length).toBeLessThanOrEqual(1024);
      expect(p).toMatch(/… \(cut from \d+ characters\)$/);
    }
    const many = renderProblems(
      Array.from({ length: 5 }, () => ({ key: 'netpin.io/ip', message: 'm'.repeat(1000), fix: 'f'.repeat(1000) })),
      calico,
    );
    expect(many.length).toBeLessThanOrEqual(MESSAGE_CHARS);
  });

  it('quotes a key longer than any of netpin, cut', () => {
    const key = `netpin.io/${'k'.repeat(1 << 20)}`;
    expect(renderProblems([{ key, message: 'm', fix: 'f' }], calico)).toBe(
      `"${key.slice(0, 64)}"… (${key.length} characters) (CNI Calico): m. Fix: f`,
    );
  });
});

describe('checkIntent', () => {
  it("takes any number of a rule's problems without overflowing the stack", async () => {
    const h = await harness();
    const dialect = { ...calico, check: () => problems(300_000) };
    const checked = await checkIntent(
      { 'netpin.io/pool': 'web' },
      { kind: 'Pod', replicas: 1, statefulSet: false },
      'shop',
      {
        ...h.deps,
        dialect,
      },
    );
    expect(checked.problems).toHaveLength(300_000);
  });
});
