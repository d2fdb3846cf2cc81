// How many cases a property runs: its own count in the test command, that count times
// NETPIN_PROPERTY_SCALE under `npm run chaos` (which runs these files at ≥ 100 000 cases in all).
// With NETPIN_PROPERTY_TALLY set to a file, each property adds its count there, so that chaos
// reports the cases that ran rather than a sum worked out by hand.
import { appendFileSync } from 'node:fs';

export function runs(count: number): number {
  const scale = Number(process.env.NETPIN_PROPERTY_SCALE ?? '1');
  const n = Math.max(1, Math.round(count * (Number.isFinite(scale) && scale > 0 ? scale : 1)));
  const tally = process.env.NETPIN_PROPERTY_TALLY;
  if (tally) appendFileSync(tally, `${n}\n`);
  return n;
}
