// The ceiling of the admission benchmark: the same fastify, TLS settings and JSON body parsing
// as netpin's buildApp, with a handler that allows every review and does nothing else.
// Run as its own process, like `netpin serve`: node dist/bench/bare-server.js --cert-dir DIR
import Fastify, { LogController, type FastifyServerOptions } from 'fastify';
import { pino } from 'pino';
import { dialectFor } from '../src/cni/index.js';
import { StaticClusterView } from '../src/cluster/view.js';
import { Allocator } from '../src/ipam/allocator.js';
import { MemoryLedger } from '../src/ipam/memory-ledger.js';
import { buildApp } from '../src/transport/app.js';
import { certPaths } from '../src/transport/certs.js';
import { CertificateSource } from '../src/transport/tls.js';

const dirFlag = process.argv.indexOf('--cert-dir');
const certDir = dirFlag > 0 ? process.argv[dirFlag + 1] : undefined;
if (!certDir) {
  console.error('usage: bare-server --cert-dir DIR');
  process.exit(2);
}

const paths = certPaths(certDir);
const certificates = new CertificateSource(paths.cert, paths.key);

// netpin's own server options, read from an app that buildApp makes (never listening), so that the
// ceiling follows every change there: body limit, JSON poisoning checks, timeouts, router options.
const reference = await buildApp({
  deps: {
    dialect: dialectFor('calico'),
    allocator: new Allocator(new MemoryLedger()),
    cluster: new StaticClusterView(),
    releaseOnDelete: true,
  },
});
const same = { ...reference.initialConfig } as Record<string, unknown>;
await reference.close();
// Plain HTTP in the reference (the certificate is below); logging is set below; the router keys
// are repeated in routerOptions, and given twice fastify warns of their deprecation.
for (const key of [
  'https',
  'http2',
  'disableRequestLogging',
  'requestIdLogLabel',
  'caseSensitive',
  'allowUnsafeRegex',
  'ignoreTrailingSlash',
  'ignoreDuplicateSlashes',
  'maxParamLength',
  'useSemicolonDelimiter',
])
  delete same[key];

// Plus what initialConfig does not hold, as buildApp sets it (src/transport/app.ts).
const app = Fastify({
  ...(same as FastifyServerOptions),
  https: certificates.secureContextOptions(),
  loggerInstance: pino({ level: 'warn' }),
  logController: new LogController({ disableRequestLogging: true }),
  forceCloseConnections: 'idle',
  return503OnClosing: true,
} as FastifyServerOptions);

const allow = async (req: { body: unknown }) => {
  const uid = (req.body as { request?: { uid?: string } } | null)?.request?.uid ?? '';
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid, allowed: true } };
};
app.post('/mutate', allow);
// The node part registers it with the chart's webhooks, which also validate.
app.post('/validate', allow);

await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
console.log(`bare serving https://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`);

const stop = async () => {
  await app.close();
  process.exit(0);
};
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());
