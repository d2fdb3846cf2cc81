import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * How long one admission may wait for an API server that does not answer at all, all its calls
 * together. The API server calls a webhook with a 10 s timeout, but an admission that needs the
 * ledger must answer within 2 s when the API server is frozen or gone; the other 0.5 s is far more than the rest of an admission takes
 * (under a millisecond, docs/benchmarks.md). A healthy API server creates a claim in milliseconds,
 * and the 300 claims of a StatefulSet's ordinals took 0.22 s together on two loaded cores.
 */
export const ADMISSION_DEADLINE_MS = 1_500;
/**
 * How long an admission waits for an API server that is slow but alive (it answers its /readyz
 * probe): under the webhook's 10 s timeoutSeconds, so that a loaded API server queueing claim
 * writes is waited for rather than turned into refusals.
 */
export const ADMISSION_HARD_DEADLINE_MS = 8_000;
const RECHECK_MS = 250;

/** The API server did not answer before the admission's deadline; the call was aborted. */
class DeadlineExceeded extends Error {
  constructor(ms: number) {
    super(`the API server did not answer within ${Math.round(ms / 100) / 10} s`);
  }
}

/** Whether the API server answers at all: lets a deadline tell a frozen or absent one from a slow one (ApiServerProbe). */
export interface ApiServerLiveness {
  /** performance.now() of its last answer; undefined before the first. */
  readonly lastAnsweredAt: number | undefined;
}

/**
 * One admission's deadline. Its signal is made on the first API call only, since most admissions
 * make none, and is shared by every call after. At `ms` the calls are aborted, unless the API
 * server has answered its probe since the admission began: then it is alive, only slow, and the
 * calls may go on until `hardMs`.
 */
class Deadline {
  private readonly started = performance.now();
  private controller?: AbortController;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly ms: number,
    private readonly hardMs: number,
    private readonly apiServer: ApiServerLiveness | undefined,
  ) {}

  get signal(): AbortSignal {
    if (!this.controller) {
      const controller = (this.controller = new AbortController());
      const check = () => {
        const elapsed = performance.now() - this.started;
        if ((this.apiServer?.lastAnsweredAt ?? -Infinity) > this.started && elapsed < this.hardMs)
          this.timer = setTimeout(check, RECHECK_MS);
        else controller.abort(new DeadlineExceeded(Math.max(this.ms, Math.min(elapsed, this.hardMs))));
      };
      this.timer = setTimeout(check, Math.max(0, this.started + this.ms - performance.now()));
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

/** A signal that aborts after `ms` with the same words as an admission's deadline, for calls off the admission path. */
export function abortAfter(ms: number): AbortSignal {
  const controller = new AbortController();
  setTimeout(() => controller.abort(new DeadlineExceeded(ms)), ms).unref();
  return controller.signal;
}

/**
 * Runs `fn` with a deadline for the API calls it makes through clients that honour it (see kube.ts).
 * Without `apiServer` (nothing probes it), the calls are aborted at `ms` whatever the API server does.
 */
export async function withDeadline<T>(
  ms: number,
  fn: () => Promise<T>,
  hardMs = ADMISSION_HARD_DEADLINE_MS,
  apiServer?: ApiServerLiveness,
): Promise<T> {
  const deadline = new Deadline(ms, hardMs, apiServer);
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
