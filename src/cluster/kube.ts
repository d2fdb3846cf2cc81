import {
  ApiException,
  KubeConfig,
  Observable,
  type ApiConstructor,
  type ApiType,
  type Configuration,
  type ConfigurationOptions,
  type ObservableMiddleware,
} from '@kubernetes/client-node';
import { abortAfter, currentDeadlineSignal } from './deadline.js';

export const GROUP = 'netpin.io';
export const VERSION = 'v1alpha1';

type DispatcherFactory = (
  cluster: unknown,
  options: { ca?: Buffer; cert?: Buffer; key?: Buffer; servername?: string },
) => unknown;

/**
 * client-node builds a new undici Agent for every API call (KubeConfig.applySecurityAuthentication),
 * so every claim paid a fresh TLS handshake on both ends: in the benchmark that was most of
 * netpin's CPU per pod and doubled the API server's. One agent is kept while the TLS material
 * stays the same; a rotated client certificate gets a new one. Credentials sent as headers
 * (service account tokens) are still applied per call.
 *
 * A workaround of kubernetes-client/javascript#2893, whose fix (#2904) caches only the https.Agent
 * of watches and websockets. It overrides client-node's private createDispatcher: test/cluster/kube.test.ts
 * fails when client-node stops calling it, and when client-node keeps its dispatcher itself (then
 * this class can go).
 */
class KeepAliveKubeConfig extends KubeConfig {
  constructor() {
    super();
    const self = this as unknown as { createDispatcher: DispatcherFactory };
    const build = self.createDispatcher.bind(this);
    let cached: { server: unknown; options: Parameters<DispatcherFactory>[1]; dispatcher: unknown } | undefined;
    self.createDispatcher = (cluster, options) => {
      const server = (cluster as { server?: string } | null)?.server;
      const same = (a?: Buffer, b?: Buffer) => a === b || (a !== undefined && b !== undefined && a.equals(b));
      if (
        !cached ||
        cached.server !== server ||
        cached.options.servername !== options.servername ||
        !same(cached.options.ca, options.ca) ||
        !same(cached.options.cert, options.cert) ||
        !same(cached.options.key, options.key)
      ) {
        cached = { server, options, dispatcher: build(cluster, options) };
      }
      return cached.dispatcher;
    };
  }
}

/** From --kubeconfig outside a cluster, from the service account inside one. */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KeepAliveKubeConfig();
  if (path) kc.loadFromFile(path);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}

/**
 * Middleware that aborts a call with `signal()`. A call may have a deadline from its client
 * (makeApiClientWith) and one of its own: whichever passes first aborts it.
 */
function abortingWith(signal: () => AbortSignal | undefined): ObservableMiddleware {
  return {
    pre(context) {
      const mine = signal();
      const before = context.getSignal();
      if (mine) context.setSignal(before ? AbortSignal.any([before, mine]) : mine);
      return new Observable(Promise.resolve(context));
    },
    post: (response) => new Observable(Promise.resolve(response)),
  };
}

/**
 * Per-call options for the API calls an admission makes: inside one, the call is aborted at the
 * admission's deadline (withDeadline), so that a frozen API server gets an answer in time rather
 * than a hang. Watches and their lists do not pass it, and they must not: a watch lasts minutes.
 */
export const WITHIN_ADMISSION: ConfigurationOptions = {
  middleware: [abortingWith(currentDeadlineSignal)],
  middlewareMergeStrategy: 'append',
};

/** Per-call options that abort each call after `ms`: for API calls off the admission path. */
export function withTimeout(ms: number): ConfigurationOptions {
  return { middleware: [abortingWith(() => abortAfter(ms))], middlewareMergeStrategy: 'append' };
}

/**
 * How long a call off the admission path (the watches' lists, egress resources, the operator
 * commands) waits for the API server. Without one, undici waits 300 s for the response headers of an
 * API server that took the connection and froze. A healthy one answers a get, a write or a page of a
 * list in milliseconds, and well within 10 s even loaded: what takes longer is an outage, to be told
 * and retried. 10 s is also what the API server gives netpin's webhook.
 */
export const OFF_ADMISSION_MS = 10_000;
export const OFF_ADMISSION: ConfigurationOptions = withTimeout(OFF_ADMISSION_MS);

/**
 * A client whose every call has `options`, for calls made through helpers that take none (the paged
 * lists of pods and claims). makeApiClient builds the server, credentials and user agent into the
 * client's configuration; the options' middleware is added to it. client-node's makeApiClient takes
 * no middleware (kubernetes-client/javascript#1925): the "earlier of its client's deadline and its
 * own" test in test/cluster/kube.test.ts fails when it stops handing its configuration to the constructor.
 */
export function makeApiClientWith<T extends ApiType>(
  kc: KubeConfig,
  type: ApiConstructor<T>,
  options: ConfigurationOptions,
): T {
  const extra = options.middleware ?? [];
  class WithOptions {
    constructor(config: Configuration) {
      return new type({ ...config, middleware: [...config.middleware, ...extra] });
    }
  }
  return kc.makeApiClient(WithOptions as ApiConstructor<T>);
}

export function statusOf(e: unknown): number | undefined {
  return e instanceof ApiException ? e.code : undefined;
}

/** The API server's own words for a failed call, for messages and logs. */
export function describeApiError(e: unknown): string {
  if (e instanceof ApiException) {
    const body = typeof e.body === 'string' ? safeJson(e.body) : e.body;
    const message = (body as { message?: string } | undefined)?.message;
    return `HTTP ${e.code}${message ? `: ${message}` : ''}`;
  }
  if (!(e instanceof Error)) return String(e);
  // undici says only "fetch failed"; the socket's error under it says why (refused, reset, ...).
  let cause: unknown = e;
  while (cause instanceof Error && cause.cause instanceof Error) cause = cause.cause;
  return cause === e ? e.message : `${e.message}: ${(cause as Error).message}`;
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return { message: s };
  }
}
