import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Logger } from 'pino';
import type { AdmissionDeps } from '../admission/context.js';
import { Admission, type Endpoint } from '../admission/handler.js';
import { MalformedReview } from '../admission/review.js';
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
  /** Given the app's metrics once made, for what reports to them from outside admission (the kube ledger, the reconciler). */
  instrument?: (metrics: Metrics) => void;
}

// An AdmissionReview carries the object and, on UPDATE, the old object: the API server
// accepts bodies up to 3 MiB, so two of them plus the envelope, as controller-runtime reasons.
export const BODY_LIMIT = 7 * 1024 * 1024;

/** Builds the webhook, not listening: tests call inject(), the binary adds listen(). */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const certs = options.certificates;
  const fastifyOptions: FastifyServerOptions & { https?: object } = {
    bodyLimit: BODY_LIMIT,
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
  if (certs) fastifyOptions.https = certs.secureContextOptions();
  const app = Fastify(fastifyOptions as FastifyServerOptions) as unknown as FastifyInstance;

  if (certs) {
    // Existing connections keep their session; new handshakes get the new certificate.
    certs.onChange(() => {
      (app.server as unknown as import('node:tls').Server).setSecureContext(certs.secureContextOptions());
      options.logger?.info('serving certificate reloaded');
    });
  }

  const metrics = new Metrics(options.deps.allocator.ledger.index);
  options.instrument?.(metrics);
  const admission = new Admission(options.deps, {
    replayCacheSize: options.replayCacheSize,
    onOutcome: (o) => metrics.observe(o),
  });

  app.setErrorHandler((err: Error & { statusCode?: number }, _req, reply) => {
    // Bad JSON, a wrong content type or an oversized body are the caller's fault: 4xx with a message.
    if (err instanceof MalformedReview)
      return reply.code(400).send({ message: `malformed AdmissionReview: ${err.message}` });
    const code = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (code === 500) {
      metrics.httpError();
      options.logger?.error({ err }, 'request failed');
    }
    return reply.code(code).send({ message: err.message });
  });

  for (const endpoint of ['mutate', 'validate'] as Endpoint[]) {
    app.post(`/${endpoint}`, async (req) => admission.review(endpoint, req.body));
  }

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const problems: string[] = [];
    if (certs && !certs.healthy) problems.push(`certificate: ${certs.lastError}`);
    if (options.readiness) problems.push(...options.readiness());
    return problems.length ? reply.code(503).send({ status: 'not ready', problems }) : { status: 'ready' };
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  return app;
}
