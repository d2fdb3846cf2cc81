/**
 * JSON as it comes off the wire, or a review broken on purpose: tests read it with optional chaining
 * and leave the checking to their assertions. The one loose type the tests allow, named so that each
 * use says what it is.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
export type WireJson = any;
