import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { buildApps } from '../transport/app.js';
import { defaultHosts, ensureCerts, startRenewal } from '../transport/certs.js';
import { CertificateSource } from '../transport/tls.js';
import { memoryBackend } from './backend.js';
import type { ServeOptions } from './options.js';

export interface Server {
  app: FastifyInstance;
  url: string;
  /** With --metrics-listen: where /metrics, /healthz and /readyz are served. */
  metricsUrl?: string;
  metricsApp?: FastifyInstance;
  caPath: string;
  close(): Promise<void>;
}

/**
 * Starts `netpin serve`: certificates, the backend (the ledger, the cluster and the metrics they
 * report to), then what buildApps makes of them (the webhook app, and the metrics app with
 * --metrics-listen), listening.
 */
export async function serve(opts: ServeOptions, log: Logger = pino({ level: opts.logLevel })): Promise<Server> {
  const { certificates, caPath, stop: stopCertificates } = await serveCertificates(opts, log);
  const backend =
    opts.ledger === 'kube'
      ? await (await import('./kube-backend.js')).kubeBackend(opts, log)
      : await memoryBackend(opts, log);
  await backend.ledger.start();

  const { webhook: app, metrics: metricsApp } = await buildApps({
    deps: backend.deps,
    metrics: backend.metrics,
    apiServer: backend.apiServer,
    certificates,
    logger: log,
    readiness: backend.readiness,
    separateMetrics: opts.metricsListen !== undefined,
  });
  const url = await listen(app, opts.host, opts.port);
  const metricsUrl =
    metricsApp && opts.metricsListen
      ? await listen(metricsApp, opts.metricsListen.host, opts.metricsListen.port)
      : undefined;
  return {
    app,
    url,
    ...(metricsUrl ? { metricsUrl, metricsApp } : {}),
    caPath,
    async close() {
      stopCertificates();
      await metricsApp?.close();
      await app.close();
      await backend.stop();
      await backend.ledger.stop();
    },
  };
}

/** The serving certificate, generated and renewed here unless it is given, and watched for rotations. */
async function serveCertificates(opts: ServeOptions, log: Logger) {
  const hosts = opts.hosts ?? defaultHosts();
  const first = await ensureCerts(opts.certDir, hosts);
  const { paths } = first;
  if (first.generated) log.info({ ca: paths.ca }, 'generated a self-signed CA and serving certificate');
  else if (first.renewed) log.info({ cert: paths.cert }, 'renewed the self-generated serving certificate');
  if (first.caRenewed) log.warn({ ca: paths.ca }, 'renewed the self-signed CA: give the API server the new CA bundle');
  const certificates = new CertificateSource(paths.cert, paths.key, log, opts.clientCa);
  certificates.start();
  // What netpin generated it also renews: checked hourly, picked up at once.
  const stopRenewal = first.managed
    ? startRenewal(opts.certDir, hosts, (r) => {
        if (r instanceof Error) return log.error({ err: r.message }, 'serving certificate not renewed');
        if (r.renewed) {
          log.info({ cert: paths.cert }, 'renewed the self-generated serving certificate');
          certificates.poll();
        }
        if (r.caRenewed)
          log.warn({ ca: paths.ca }, 'renewed the self-signed CA: give the API server the new CA bundle');
      })
    : () => undefined;
  return {
    certificates,
    caPath: paths.ca,
    stop() {
      stopRenewal();
      certificates.stop();
    },
  };
}

/** Listens, and returns the https URL a client on this machine reaches it at. */
async function listen(app: FastifyInstance, host: string, port: number): Promise<string> {
  await app.listen({ host, port });
  const address = app.server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  const shown = host.includes(':') ? `[${host}]` : host;
  return `https://${shown === '0.0.0.0' ? '127.0.0.1' : shown}:${bound}`;
}
