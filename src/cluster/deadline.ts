import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * How long one admission may wait for the API server, all its calls together. The API server calls
 * a webhook with a 10 s timeout, but an admission that needs the ledger must answer within 2 s even
 * when the API server is frozen; the other 0.5 s is far more than the rest of an admission takes
 * (under a millisecond, docs/benchmarks.md). A healthy API server creates a claim in milliseconds,
 * and the 300 claims of a StatefulSet's ordinals took 0.22 s together on two loaded cores.
 */
export const ADMISSION_DEADLINE_MS = 1_500;

/** The API server did not answer before the admission's deadline; the call was aborted. */
export class DeadlineExceeded extends Error {
  constructor(ms: number) {
    super(`the API server did not answer within ${ms / 1000} s`);
  }
}

/**
 * One admission's deadline. Its signal is made on the first API call only, since most admissions
 * make none, and is shared by every call after: a later call gets what is left.
 */
class Deadline {
  private readonly at: number;
  private controller?: AbortController;
  private timer?: NodeJS.Timeout;

  constructor(private readonly ms: number) {
    this.at = performance.now() + ms;
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      const controller = (this.controller = new AbortController());
      this.timer = setTimeout(() => controller.abort(new DeadlineExceeded(this.ms)), Math.max(0, this.at - performance.now()));
    }
    return this.controller.signal;
  }

  dispose(): void {
    clearTimeout(this.timer);
  }
}

// The admission under way, so that the API clients deep in the ledger and the cluster view find its
// deadline without every interface in between carrying it.
const current = new AsyncLocalStorage<Deadline>();

/** Runs `fn` with a deadline for the API calls it makes through clients that honour it (see kube.ts). */
export async function withDeadline<T>(ms: number, fn: () => Promise<T>): Promise<T> {
  const deadline = new Deadline(ms);
  try {
    return await current.run(deadline, fn);
  } finally {
    deadline.dispose();
  }
}

/** The signal that aborts an API call made now; undefined outside an admission (watches, lists, the reconciler). */
export function currentDeadlineSignal(): AbortSignal | undefined {
  return current.getStore()?.signal;
}
