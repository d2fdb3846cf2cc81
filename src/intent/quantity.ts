/**
 * Kubernetes resource quantities (k8s.io/apimachinery/pkg/api/resource/quantity.go),
 * parsed exactly as a fraction so that "is this a whole number of Mbps" has a true answer.
 */
export interface Fraction {
  num: bigint;
  den: bigint;
}

const DECIMAL: Record<string, [bigint, bigint]> = {
  n: [1n, 1_000_000_000n],
  u: [1n, 1_000_000n],
  m: [1n, 1000n],
  '': [1n, 1n],
  k: [1000n, 1n],
  M: [1_000_000n, 1n],
  G: [1_000_000_000n, 1n],
  T: [1_000_000_000_000n, 1n],
  P: [1_000_000_000_000_000n, 1n],
  E: [1_000_000_000_000_000_000n, 1n],
};
const BINARY: Record<string, bigint> = {
  Ki: 1n << 10n,
  Mi: 1n << 20n,
  Gi: 1n << 30n,
  Ti: 1n << 40n,
  Pi: 1n << 50n,
  Ei: 1n << 60n,
};

const QUANTITY = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$/;

/** Parses a quantity; undefined when the text is not one (the same strings ParseQuantity refuses). */
export function parseQuantity(text: string): Fraction | undefined {
  const m = QUANTITY.exec(text);
  if (!m) return undefined;
  const [, sign, digits, suffix = ''] = m as unknown as [string, string, string, string | undefined];
  const [whole, frac = ''] = digits.split('.') as [string, string?];
  let num = BigInt((whole || '0') + frac);
  let den = 10n ** BigInt(frac.length);
  if (sign === '-') num = -num;
  if (suffix in BINARY) {
    num *= BINARY[suffix]!;
  } else if (suffix in DECIMAL) {
    const [mul, div] = DECIMAL[suffix]!;
    num *= mul;
    den *= div;
  } else {
    const exp = Number(suffix.slice(1));
    if (Math.abs(exp) > 30) return undefined;
    if (exp >= 0) num *= 10n ** BigInt(exp);
    else den *= 10n ** BigInt(-exp);
  }
  return { num, den };
}

export function isWhole(f: Fraction): boolean {
  return f.num % f.den === 0n;
}

export function wholeValue(f: Fraction): bigint {
  return f.num / f.den;
}

// Largest first; computed once, since formatting runs for every pod with a rate.
const DECIMAL_SUFFIXES: ReadonlyArray<readonly [string, bigint]> = [
  ['P', 10n ** 15n],
  ['T', 10n ** 12n],
  ['G', 10n ** 9n],
  ['M', 10n ** 6n],
  ['k', 1000n],
];

/** Writes bits/s with the largest decimal suffix that divides it: 10000000 is "10M". */
export function formatQuantity(n: bigint): string {
  for (const [suffix, mul] of DECIMAL_SUFFIXES) {
    if (n >= mul && n % mul === 0n) return `${n / mul}${suffix}`;
  }
  return n.toString();
}
