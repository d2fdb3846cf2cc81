import { Health, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { ApiServerLiveness } from './deadline.js';

/**
 * Every second, one GET /readyz of the API server, given a second to answer: readiness turns false
 * within about 2 s of the API server freezing or going away (and of etcd going away, which its
 * /readyz reports), and true within about 1 s of its answering again. The watches cannot tell: a
 * frozen API server leaves their connections open and silent. /readyz is open to every client
 * (the default system:public-info-viewer role) and costs the API server next to nothing.
 */
const PROBE_EVERY_MS = 1_000;
const PROBE_TIMEOUT_MS = 1_000;

/** Whether the API server answers, for /readyz; liveness does not depend on it, so that an outage restarts nothing. */
export class ApiServerProbe implements ApiServerLiveness {
  private readonly health: Health;
  private problem: string | undefined;
  /** performance.now() of the last answer that said ready. */
  lastAnsweredAt: number | undefined;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;

  constructor(
    kc: KubeConfig,
    private readonly log?: Logger,
    private readonly everyMs = PROBE_EVERY_MS,
    private readonly timeoutMs = PROBE_TIMEOUT_MS,
  ) {
    this.health = new Health(kc);
  }

  /** Why the API server is taken for unavailable; empty while it answers. */
  get problems(): string[] {
    return this.problem ? [this.problem] : [];
  }

  start(): void {
    const tick = () => {
      // A probe still waiting is not doubled: its timeout ends it.
      this.running ??= this.probe().finally(() => (this.running = undefined));
    };
    tick();
    this.timer = setInterval(tick, this.everyMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  private async probe(): Promise<void> {
    let problem: string | undefined;
    try {
      if (!(await this.health.readyz({ signal: AbortSignal.timeout(this.timeoutMs) })))
        problem = 'API server: /readyz answers not ready';
      else this.lastAnsweredAt = performance.now();
    } catch (e) {
      // client-node wraps undici's error, which wraps the socket's: the innermost one says what happened.
      let cause = e;
      while (cause instanceof Error && cause.cause !== undefined) cause = cause.cause;
      problem =
        cause instanceof Error && cause.name === 'TimeoutError'
          ? `API server: no answer to /readyz within ${this.timeoutMs / 1000} s`
          : `API server: unreachable (${cause instanceof Error ? cause.message : String(cause)})`;
    }
    if (problem !== this.problem) {
      if (problem) this.log?.warn({ problem }, 'API server unavailable: not ready');
      else this.log?.info('API server answers again: ready');
    }
    this.problem = problem;
  }
}
