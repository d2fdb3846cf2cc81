import { Transform } from 'node:stream';
import Fastify, {
  LogController,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
} from 'fastify';
import type { Logger } from 'pino';
import type { AdmissionDeps } from '../admission/context.js';
import { Admission, type Endpoint } from '../admission/handler.js';
import { MalformedReview } from '../admission/review.js';
import type { ApiServerLiveness } from '../cluster/deadline.js';
import { Metrics } from './metrics.js';
import type { CertificateSource } from './tls.js';

export interface AppOptions {
  deps: AdmissionDeps;
  /** Serve HTTPS with this certificate, and pick up its rotations; without it, plain HTTP (for inject()). */
  certificates?: CertificateSource;
  logger?: Logger;
  /** What keeps the webhook from being ready beyond the certificate (the ledger not synced, the API server not answering); empty when ready. */
  readiness?: () => string[];
  replayCacheSize?: number;
  /** Where outcomes are counted and /metrics reads; made by whoever also hands them to the ledger and the reconciler. By default, metrics of this app alone. */
  metrics?: Metrics;
  /** Whether the API server answers (ApiServerProbe), so that admissions wait for a slow one; none without a cluster. */
  apiServer?: ApiServerLiveness;
  /** Serve /metrics on a listener of its own (--metrics-listen), not on the webhook's. */
  separateMetrics?: boolean;
  /** Bytes of request bodies being received at once, across all connections (tests lower it). */
  inFlightBytes?: number;
}

const MiB = 1024 * 1024;

/**
 * The largest review netpin reads. An UPDATE review carries `object` and `oldObject`. Each of them
 * reached the API server in a request body of at most 3 MiB (its MaxRequestBodyBytes), and the
 * stored one also fitted etcd (1.5 MiB by default). Half a MiB more covers what the API server adds
 * to a stored object beyond what was sent (managedFields, status, timestamps) and the envelope (uid,
 * kind, resource, userInfo, options: a few KiB). controller-runtime allows 7 MiB, a whole MiB for the
 * envelope. What only fits in 7 MiB is an object that grew when the API server wrote it as JSON (`<`,
 * `>` and `&` become six bytes each): a tenant's hostile string, which the 413 refuses (failurePolicy
 * decides, as for any webhook error), never a real workload, which etcd's limit keeps far below this.
 */
export const BODY_LIMIT = 6.5 * MiB;

/**
 * Body bytes received at once across all connections, counted from Content-Length when the request
 * starts and byte by byte for a chunked body. Past it a request is answered 503 at once and its
 * connection closed, before its body is read. 32 MiB is four reviews of the largest size at once,
 * or thousands of real ones (a pod review is a few KiB); what parsing makes of a body is a few times
 * its size, so this keeps request bodies to well under 200 MiB of the chart's 512 Mi limit, where 60
 * slow clients each sending 7 MiB once held 420 MiB.
 */
export const IN_FLIGHT_BYTES = 32 * MiB;

/**
 * Timeouts and caps of the listeners. The API server gives a webhook 10 s (the chart's
 * timeoutSeconds): a request still arriving after that is answered to nobody.
 * - handshake: 5 s from the TCP connection to a finished TLS handshake;
 * - headers: 5 s, and the whole request: 8 s, both checked every second (Node's default check is
 *   every 30 s), so a request is dropped at most 9 s after it began;
 * - keep-alive: an idle connection is closed after 10 s (the API server reuses its connection while
 *   reviews keep coming) and after 1 000 requests, so new handshakes see a rotated certificate or
 *   client CA on a connection that never goes idle;
 * - a socket with no traffic at all is closed after 15 s;
 * - at most 1 024 connections: a TLS connection costs Node tens of KiB, so the cap is tens of MiB; the
 *   API server opens one per review in flight, and its default max-requests-inflight is 400 + 200.
 */
export const LIMITS = {
  handshakeTimeoutMs: 5_000,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 8_000,
  checkIntervalMs: 1_000,
  keepAliveTimeoutMs: 10_000,
  maxRequestsPerSocket: 1_000,
  idleSocketTimeoutMs: 15_000,
  maxConnections: 1_024,
  metricsMaxConnections: 64,
} as const;

/** Builds the webhook, not listening: tests call inject(), the binary adds listen(). */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  return (await buildApps(options)).webhook;
}

export interface Apps {
  webhook: FastifyInstance;
  /** With `separateMetrics`: /metrics, /healthz and /readyz, for a listener of their own. */
  metrics?: FastifyInstance;
}

/** The webhook app and, when asked, the metrics app beside it; neither listening. */
export async function buildApps(options: AppOptions): Promise<Apps> {
  const certs = options.certificates;
  const app = Fastify(webhookServerOptions(options)) as unknown as FastifyInstance;
  if (certs) {
    app.server.maxConnections = LIMITS.maxConnections;
    // Existing connections keep their session; new handshakes get the new certificate.
    certs.onChange(() => {
      (app.server as unknown as import('node:tls').Server).setSecureContext(certs.secureContextOptions());
      options.logger?.info('serving certificate reloaded');
    });
  }
  limitBodies(app, new ByteBudget(options.inFlightBytes ?? IN_FLIGHT_BYTES));

  const metrics = options.metrics ?? new Metrics(options.deps.allocator.ledger.index);
  const admission = new Admission(options.deps, {
    replayCacheSize: options.replayCacheSize,
    onOutcome: (o) => metrics.observe(o),
    apiServer: options.apiServer,
  });
  app.setErrorHandler((err: Error & { statusCode?: number }, _req, reply) => {
    // Bad JSON, a wrong content type or an oversized body are the caller's fault: 4xx with a message.
    if (err instanceof MalformedReview)
      return reply.code(400).send({ message: `malformed AdmissionReview: ${err.message}` });
    const code =
      err.statusCode && ((err.statusCode >= 400 && err.statusCode < 500) || err.statusCode === 503)
        ? err.statusCode
        : 500;
    // The rest of a refused body is never read: the connection goes with the answer.
    if (code === 413 || code === 503) reply.header('connection', 'close');
    if (code === 500) {
      metrics.httpError();
      options.logger?.error({ err }, 'request failed');
    }
    return reply.code(code).send({ message: err.message });
  });
  for (const endpoint of ['mutate', 'validate'] as Endpoint[]) {
    app.post(`/${endpoint}`, async (req) => admission.review(endpoint, req.body));
  }

  addProbes(app, options);
  if (!options.separateMetrics) {
    addMetrics(app, metrics);
    return { webhook: app };
  }
  return { webhook: app, metrics: buildMetricsApp(options, metrics) };
}

function webhookServerOptions(options: AppOptions): FastifyServerOptions {
  const certs = options.certificates;
  const fastifyOptions: FastifyServerOptions & { https?: object } = {
    bodyLimit: BODY_LIMIT,
    ...serverLimits(),
    loggerInstance: options.logger,
    // One line per request would cost more than the admission itself; outcomes go to metrics.
    logController: new LogController({ disableRequestLogging: true }),
    // The API server calls with keep-alive; close idle sockets on shutdown, never requests in flight.
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    // __proto__ keys are still refused. netpin never merges a review into an object whose
    // constructor it would then call, and the constructor scan was a tenth of netpin's CPU per pod.
    onConstructorPoisoning: 'ignore',
  };
  if (certs)
    fastifyOptions.https = {
      ...certs.secureContextOptions(),
      ...httpsServerLimits(),
      // With --client-ca: no valid client certificate, no handshake, so no request is ever read.
      ...(certs.requiresClientCertificate ? { requestCert: true, rejectUnauthorized: true } : {}),
    };
  return fastifyOptions as FastifyServerOptions;
}

/** /healthz, and /readyz: the certificate, and what the backend says keeps it from being ready. */
function addProbes(target: FastifyInstance, options: AppOptions): void {
  const certs = options.certificates;
  target.get('/healthz', async () => ({ status: 'ok' }));
  target.get('/readyz', async (_req, reply) => {
    const problems: string[] = [];
    if (certs && !certs.healthy) problems.push(`certificate: ${certs.lastError}`);
    if (options.readiness) problems.push(...options.readiness());
    return problems.length ? reply.code(503).send({ status: 'not ready', problems }) : { status: 'ready' };
  });
}

function addMetrics(target: FastifyInstance, metrics: Metrics): void {
  target.get('/metrics', async (_req, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
}

/** The metrics listener: the same serving certificate, no client certificate, no request bodies. */
function buildMetricsApp(options: AppOptions, metrics: Metrics): FastifyInstance {
  const certs = options.certificates;
  const metricsOptions: FastifyServerOptions & { https?: object } = {
    bodyLimit: 1024,
    ...serverLimits(),
    loggerInstance: options.logger,
    logController: new LogController({ disableRequestLogging: true }),
    forceCloseConnections: 'idle',
    return503OnClosing: true,
  };
  if (certs) metricsOptions.https = { ...certs.serverOnlyContextOptions(), ...httpsServerLimits() };
  const metricsApp = Fastify(metricsOptions as FastifyServerOptions) as unknown as FastifyInstance;
  if (certs) {
    metricsApp.server.maxConnections = LIMITS.metricsMaxConnections;
    certs.onChange(() =>
      (metricsApp.server as unknown as import('node:tls').Server).setSecureContext(certs.serverOnlyContextOptions()),
    );
  }
  addProbes(metricsApp, options);
  addMetrics(metricsApp, metrics);
  return metricsApp;
}

/** Fastify's names for the limits it sets on the server it makes. */
function serverLimits(): Partial<FastifyServerOptions> {
  return {
    requestTimeout: LIMITS.requestTimeoutMs,
    keepAliveTimeout: LIMITS.keepAliveTimeoutMs,
    maxRequestsPerSocket: LIMITS.maxRequestsPerSocket,
    connectionTimeout: LIMITS.idleSocketTimeoutMs,
  };
}

/** What https.createServer takes and Fastify does not: the handshake, headers and check interval. */
function httpsServerLimits(): object {
  return {
    handshakeTimeout: LIMITS.handshakeTimeoutMs,
    headersTimeout: LIMITS.headersTimeoutMs,
    requestTimeout: LIMITS.requestTimeoutMs,
    connectionsCheckingInterval: LIMITS.checkIntervalMs,
    keepAliveTimeout: LIMITS.keepAliveTimeoutMs,
  };
}

/** Bytes of request bodies being received now, across all connections. */
class ByteBudget {
  used = 0;
  constructor(readonly limit: number) {}

  take(n: number): boolean {
    if (this.used + n > this.limit) return false;
    this.used += n;
    return true;
  }

  give(n: number): void {
    this.used = Math.max(0, this.used - n);
  }
}

class LimitError extends Error {
  constructor(
    message: string,
    readonly statusCode: number,
  ) {
    super(message);
  }
}

const overBudget = () => new LimitError('netpin is receiving too many request bytes at once; retry', 503);

/**
 * Holds each request's body bytes against `budget`: all of its Content-Length when it starts (a
 * request that does not fit is refused before a byte of its body is read), or, for a chunked body,
 * chunk by chunk as they come. Given back when the response is done or the connection is gone.
 */
function limitBodies(app: FastifyInstance, budget: ByteBudget): void {
  const held = new WeakMap<FastifyRequest, { bytes: number }>();
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    const entry = { bytes: 0 };
    held.set(req, entry);
    reply.raw.once('close', () => {
      budget.give(entry.bytes);
      entry.bytes = 0;
    });
    const header = req.headers['content-length'];
    if (header === undefined) return;
    const length = Number(header);
    if (!Number.isSafeInteger(length) || length < 0) throw new LimitError('bad content-length', 400);
    if (length > BODY_LIMIT)
      throw new LimitError(`request body is too large: ${length} bytes, at most ${BODY_LIMIT}`, 413);
    if (!budget.take(length)) throw overBudget();
    entry.bytes = length;
  });
  app.addHook('preParsing', async (req: FastifyRequest, _reply: FastifyReply, payload) => {
    const entry = held.get(req);
    if (!entry || req.headers['content-length'] !== undefined) return payload;
    let received = 0;
    return payload.pipe(
      new Transform({
        transform(chunk: Buffer, _enc, callback) {
          received += chunk.length;
          if (received > BODY_LIMIT)
            return callback(new LimitError(`request body is too large: at most ${BODY_LIMIT} bytes`, 413));
          if (!budget.take(chunk.length)) return callback(overBudget());
          entry.bytes += chunk.length;
          callback(null, chunk);
        },
      }),
    );
  });
}
