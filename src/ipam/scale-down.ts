/**
 * When a StatefulSet scaled down gives back the reservations of the ordinals above its new size: an
 * annotation on the StatefulSet's own metadata (not its pod template: it is the StatefulSet's to say).
 */
export const SCALE_DOWN_RELEASE = 'netpin.io/scale-down-release';

/**
 * Without the annotation: an hour. Long enough that a scale-down and back up (an HPA's, whose own
 * scale-down window is 5 minutes; a drain; a restart by scaling to 0 and back) keeps every ordinal's
 * address; short enough that scaling to 0 is no way to hold a pool's addresses with no pods for long.
 */
const DEFAULT_SCALE_DOWN_RELEASE_MS = 3_600_000;

/** The longest period written as a duration; beyond it, say "never". */
const MAX_MS = 366 * 24 * 3_600_000;

const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000 };

/**
 * The period after a scale-down before the ordinals above the new size give their addresses back, in
 * milliseconds; `never` for no release while the StatefulSet exists; `problem` says what is wrong.
 * Absent: the default. Values as Go durations without fractions: `90s`, `30m`, `1h30m`, `0s`.
 */
export function scaleDownRelease(
  annotations: Record<string, string> | undefined,
): number | 'never' | { problem: string } {
  const text = annotations?.[SCALE_DOWN_RELEASE];
  if (text === undefined) return DEFAULT_SCALE_DOWN_RELEASE_MS;
  const value = text.trim();
  if (value === 'never') return 'never';
  const m = /^(?:(\d{1,7})h)?(?:(\d{1,9})m)?(?:(\d{1,11})s)?$/.exec(value);
  if (!m || value === '') return { problem: 'must be a duration such as 30m, 1h or 90s, or "never"' };
  const ms = [m[1], m[2], m[3]].reduce(
    (n, part, i) => n + (part === undefined ? 0 : Number(part) * UNIT_MS['hms'[i]!]!),
    0,
  );
  if (ms > MAX_MS) return { problem: 'may be at most 8784h (366 days); for no release, say "never"' };
  return ms;
}
