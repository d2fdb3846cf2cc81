import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import type { AdmissionDeps } from '../admission/context.js';
import { dialectFor } from '../cni/index.js';
import { StaticClusterView } from '../cluster/view.js';
import { loadPoolsFile } from '../config/pools-file.js';
import { Allocator } from '../ipam/allocator.js';
import type { Ledger } from '../ipam/ledger.js';
import { MemoryLedger } from '../ipam/memory-ledger.js';
import { buildApp } from '../transport/app.js';
import { defaultHosts, ensureCerts } from '../transport/certs.js';
import { CertificateSource } from '../transport/tls.js';
import type { ServeOptions } from './args.js';

export interface Server {
  app: FastifyInstance;
  url: string;
  caPath: string;
  close(): Promise<void>;
}

interface Backend {
  deps: AdmissionDeps;
  ledger: Ledger;
  /** Why the backend is not ready; empty when it is. */
  readiness: () => string[];
  stop(): Promise<void>;
}

async function memoryBackend(opts: ServeOptions, log: Logger): Promise<Backend> {
  const file = await loadPoolsFile(opts.pools!);
  const ledger = new MemoryLedger(file.pools);
  const cluster = new StaticClusterView();
  for (const [name, labels] of file.namespaces) cluster.setNamespace(name, labels);
  log.info({ pools: file.pools.map((p) => p.name), namespaces: [...file.namespaces.keys()] }, 'in-memory ledger: claims last as long as this process');
  const deps: AdmissionDeps = { dialect: dialectFor(opts.cni), allocator: new Allocator(ledger), cluster, releaseOnDelete: true, log };
  return { deps, ledger, readiness: () => [], stop: async () => {} };
}

/** Starts `netpin serve`: certificates, the ledger, then the HTTPS listener. */
export async function serve(opts: ServeOptions, log: Logger = pino({ level: opts.logLevel })): Promise<Server> {
  const { paths, generated } = await ensureCerts(opts.certDir, opts.hosts ?? defaultHosts());
  if (generated) log.info({ ca: paths.ca }, 'generated a self-signed CA and serving certificate');
  const certificates = new CertificateSource(paths.cert, paths.key);
  certificates.start();

  const backend = opts.ledger === 'kube'
    ? await (await import('./kube-backend.js')).kubeBackend(opts, log)
    : await memoryBackend(opts, log);
  await backend.ledger.start();

  const app = await buildApp({ deps: backend.deps, certificates, logger: log, readiness: backend.readiness });
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

export type { Backend };
