import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { buildApp } from '../transport/app.js';
import { defaultHosts, ensureCerts } from '../transport/certs.js';
import { CertificateSource } from '../transport/tls.js';
import type { ServeOptions } from './args.js';
import { memoryBackend } from './backend.js';

export interface Server {
  app: FastifyInstance;
  url: string;
  caPath: string;
  close(): Promise<void>;
}

/** Starts `netpin serve`: certificates, the ledger, then the HTTPS listener. */
export async function serve(opts: ServeOptions, log: Logger = pino({ level: opts.logLevel })): Promise<Server> {
  const { paths, generated } = await ensureCerts(opts.certDir, opts.hosts ?? defaultHosts());
  if (generated) log.info({ ca: paths.ca }, 'generated a self-signed CA and serving certificate');
  const certificates = new CertificateSource(paths.cert, paths.key, log);
  certificates.start();

  const backend =
    opts.ledger === 'kube'
      ? await (await import('./kube-backend.js')).kubeBackend(opts, log)
      : await memoryBackend(opts, log);
  await backend.ledger.start();

  const { deps, readiness, instrument } = backend;
  const app = await buildApp({ deps, certificates, logger: log, readiness, instrument });
  await app.listen({ host: opts.host, port: opts.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return {
    app,
    url: `https://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`,
    caPath: paths.ca,
    async close() {
      certificates.stop();
      await app.close();
      await backend.stop();
      await backend.ledger.stop();
    },
  };
}
