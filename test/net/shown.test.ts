import { describe, expect, it } from 'vitest';
import { bounded, shown, SHOWN_CHARS } from '../../src/net/shown.js';

describe('shown', () => {
  it('quotes a value as JSON, so that white space shows', () => {
    expect(shown('10.0.0.5 ')).toBe('"10.0.0.5 "');
    expect(shown('a\nb')).toBe('"a\\nb"');
  });

  it(`cuts a value past ${SHOWN_CHARS} characters and says how long it was`, () => {
    expect(shown('x'.repeat(SHOWN_CHARS))).toBe(`"${'x'.repeat(SHOWN_CHARS)}"`);
    expect(shown('x'.repeat(1 << 20))).toBe(`"${'x'.repeat(SHOWN_CHARS)}"… (1048576 characters)`);
  });

  it('never cuts a character in two', () => {
    const text = `${'x'.repeat(SHOWN_CHARS - 1)}😀😀`;
    expect(shown(text)).toBe(`"${'x'.repeat(SHOWN_CHARS - 1)}"… (${text.length} characters)`);
  });
});

describe('bounded', () => {
  it('leaves short text alone and cuts long text to its limit, saying how long it was', () => {
    expect(bounded('short', 10)).toBe('short');
    const cut = bounded('y'.repeat(10_000), 100);
    expect(cut).toHaveLength(100);
    expect(cut.endsWith('… (cut from 10000 characters)')).toBe(true);
  });

  it('never cuts a character in two', () => {
    const cut = bounded('😀'.repeat(1_000), 101);
    expect(cut).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
  });
});
