/** The most of a user's value a message repeats: enough to recognise it, never the megabyte a tenant sent. */
export const SHOWN_CHARS = 64;

/**
 * A value as netpin's messages quote it: in JSON quotes, so that a space or a line break shows, and cut
 * to SHOWN_CHARS with its length said. Every refusal, event and log line that repeats what a tenant
 * wrote goes through here, so that their size does not follow the request's.
 */
export function shown(value: string): string {
  if (value.length <= SHOWN_CHARS) return JSON.stringify(value);
  return `${JSON.stringify(head(value, SHOWN_CHARS))}… (${value.length} characters)`;
}

/**
 * Text netpin wrote, cut to `limit` characters with its length said: the backstop for a message
 * that puts many values together (a refusal, an error, a warning), so that none grows with the request.
 */
export function bounded(text: string, limit: number): string {
  if (text.length <= limit) return text;
  const tail = `… (cut from ${text.length} characters)`;
  return `${head(text, Math.max(0, limit - tail.length))}${tail}`;
}

/** The first `n` UTF-16 units, one fewer rather than half a surrogate pair. */
function head(text: string, n: number): string {
  const code = text.charCodeAt(n - 1);
  return text.slice(0, code >= 0xd800 && code <= 0xdbff ? n - 1 : n);
}
