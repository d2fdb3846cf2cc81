/** The most of a user's value a message repeats: enough to recognise it, never the megabyte a tenant sent. */
export const SHOWN_CHARS = 64;

/**
 * A value as netpin's messages quote it: in JSON quotes, so that a space or a line break shows, and cut
 * to SHOWN_CHARS with its length said. Every refusal, event and log line that repeats what a tenant
 * wrote goes through here, so that their size does not follow the request's.
 */
export function shown(value: string): string {
  if (value.length <= SHOWN_CHARS) return JSON.stringify(value);
  return `${JSON.stringify(value.slice(0, SHOWN_CHARS))}… (${value.length} characters)`;
}
