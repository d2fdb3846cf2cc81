// The listener's defences against a pod on the network (issue 20, attacks 1, 6 and 7): client
// certificates, AEAD-only TLS 1.2, request limits, and metrics on a port of their own.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApps, BODY_LIMIT, IN_FLIGHT_BYTES, LIMITS } from '../../src/transport/app.js';
import { generateCerts, type GeneratedCerts } from '../../src/transport/certs.js';
import { CertificateSource } from '../../src/transport/tls.js';
import { createCa, issueCert } from '../../harness/pki.js';
import { harness, podCreate } from '../../harness/reviews.js';

const HOSTS = ['localhost', '127.0.0.1'];
const CLIENT_EXT = [
  'basicConstraints=critical,CA:FALSE',
  'keyUsage=critical,digitalSignature',
  'extendedKeyUsage=clientAuth',
];

interface Client {
  cert: string;
  key: string;
}

let dir: string;
let serving: GeneratedCerts;
/** Signed by the CA netpin is told to trust, by another CA, and by a third one that replaces the first. */
let good: Client;
let foreign: Client;
let rotated: Client;

const readClient = (d: string, name: string): Client => ({
  cert: readFileSync(join(d, `${name}.crt`), 'utf8'),
  key: readFileSync(join(d, `${name}.key`), 'utf8'),
});

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'netpin-hardening-'));
  serving = await generateCerts(HOSTS);
  writeFileSync(join(dir, 'tls.crt'), serving.certPem);
  writeFileSync(join(dir, 'tls.key'), serving.keyPem);
  const names = ['apiserver-ca', 'other-ca', 'next-ca'];
  const cas = names.map((n) => join(dir, n));
  await Promise.all(
    cas.map(async (d, i) => {
      await createCa(d, names[i]!, 1);
      await issueCert(d, 'client', '/CN=kube-apiserver-webhook-client', CLIENT_EXT, 1);
    }),
  );
  [good, foreign, rotated] = cas.map((d) => readClient(d, 'client')) as [Client, Client, Client];
  writeFileSync(join(dir, 'client-ca.pem'), readFileSync(join(cas[0]!, 'ca.crt')));
}, 60_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Listening {
  app: FastifyInstance;
  metrics?: FastifyInstance;
  port: number;
  metricsPort?: number;
  source: CertificateSource;
  close(): Promise<void>;
}

async function listen(opts: {
  clientCa?: boolean;
  separateMetrics?: boolean;
  inFlightBytes?: number;
}): Promise<Listening> {
  const h = await harness();
  const source = new CertificateSource(
    join(dir, 'tls.crt'),
    join(dir, 'tls.key'),
    undefined,
    opts.clientCa ? join(dir, 'client-ca.pem') : undefined,
  );
  const apps = await buildApps({
    deps: h.deps,
    certificates: source,
    separateMetrics: opts.separateMetrics,
    inFlightBytes: opts.inFlightBytes,
  });
  await apps.webhook.listen({ host: '127.0.0.1', port: 0 });
  await apps.metrics?.listen({ host: '127.0.0.1', port: 0 });
  const portOf = (a: FastifyInstance) => (a.server.address() as { port: number }).port;
  return {
    app: apps.webhook,
    metrics: apps.metrics,
    port: portOf(apps.webhook),
    metricsPort: apps.metrics && portOf(apps.metrics),
    source,
    async close() {
      await apps.metrics?.close();
      await apps.webhook.close();
    },
  };
}

/** One request on a fresh connection: the status and body, or the error's code. */
function request(
  port: number,
  method: 'GET' | 'POST',
  path: string,
  opts: { client?: Client; body?: unknown } = {},
): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        ca: serving.caPem,
        servername: 'localhost',
        agent: false,
        ...(opts.client ?? {}),
        headers: payload === undefined ? {} : { 'content-type': 'application/json' },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, body: text }));
      },
    );
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
    req.end(payload);
  });
}

const review = () => podCreate({ name: 'a', annotations: { 'netpin.io/pool': 'web' } });

describe('--client-ca: only a client with a certificate from the bundle gets an answer', () => {
  let s: Listening;
  beforeAll(async () => (s = await listen({ clientCa: true })));
  afterAll(() => s.close());

  it('answers a review over a connection with a certificate from the bundle', async () => {
    const res = await request(s.port, 'POST', '/mutate', { client: good, body: review() });
    expect(res).toMatchObject({ status: 200 });
  });

  it('refuses the handshake without a client certificate, or with one from another CA', async () => {
    for (const client of [undefined, foreign]) {
      const res = await request(s.port, 'POST', '/mutate', { client, body: review() });
      expect(res).toHaveProperty('error');
      expect(res).not.toHaveProperty('status');
    }
    // Not even the probes: the listener reads no request before a valid certificate.
    expect(await request(s.port, 'GET', '/healthz')).toHaveProperty('error');
  });

  it('reads the bundle again when it changes, like the serving certificate', async () => {
    writeFileSync(join(dir, 'client-ca.pem'), readFileSync(join(dir, 'next-ca', 'ca.crt')));
    try {
      expect(s.source.poll()).toBe(true);
      expect(await request(s.port, 'GET', '/healthz', { client: rotated })).toMatchObject({ status: 200 });
      expect(await request(s.port, 'GET', '/healthz', { client: good })).toHaveProperty('error');
      // A bundle that is no certificate is refused; the last good one stays in use.
      writeFileSync(join(dir, 'client-ca.pem'), 'garbage');
      expect(s.source.poll()).toBe(false);
      expect(s.source.healthy).toBe(false);
      expect(await request(s.port, 'GET', '/healthz', { client: rotated })).toMatchObject({ status: 200 });
    } finally {
      writeFileSync(join(dir, 'client-ca.pem'), readFileSync(join(dir, 'apiserver-ca', 'ca.crt')));
      s.source.poll();
    }
  });

  it('asks for no client certificate without --client-ca', async () => {
    const open = await listen({});
    try {
      expect(await request(open.port, 'POST', '/mutate', { body: review() })).toMatchObject({ status: 200 });
    } finally {
      await open.close();
    }
  });
});

describe('TLS 1.2 offers AEAD suites with ECDHE only', () => {
  let s: Listening;
  beforeAll(async () => (s = await listen({})));
  afterAll(() => s.close());

  const tls12 = (ciphers: string) =>
    new Promise<string>((resolve) => {
      const socket = tls.connect(
        {
          host: '127.0.0.1',
          port: s.port,
          ca: serving.caPem,
          servername: 'localhost',
          minVersion: 'TLSv1.2',
          maxVersion: 'TLSv1.2',
          ciphers: `${ciphers}@SECLEVEL=0`,
        },
        () => {
          resolve(socket.getCipher().standardName);
          socket.end();
        },
      );
      socket.on('error', (e: NodeJS.ErrnoException) => resolve(`refused: ${e.code ?? e.message}`));
    });

  it.each([
    ['CBC with SHA-1', 'ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA'],
    ['CBC with SHA-2', 'ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384'],
    ['CCM', 'ECDHE-ECDSA-AES128-CCM:ECDHE-ECDSA-AES256-CCM:ECDHE-ECDSA-AES128-CCM8'],
    ['ARIA', 'ECDHE-ECDSA-ARIA128-GCM-SHA256:ECDHE-ECDSA-ARIA256-GCM-SHA384'],
    ['Camellia', 'ECDHE-ECDSA-CAMELLIA128-SHA256'],
  ])('refuses a client offering only %s', async (_name, ciphers) => {
    expect(await tls12(ciphers)).toMatch(/^refused: .*(HANDSHAKE_FAILURE|NO_SHARED_CIPHER|ALERT)/);
  });

  it.each([
    ['ECDHE-ECDSA-AES128-GCM-SHA256', 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256'],
    ['ECDHE-ECDSA-AES256-GCM-SHA384', 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384'],
    ['ECDHE-ECDSA-CHACHA20-POLY1305', 'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256'],
  ])('connects with %s', async (cipher, standard) => {
    expect(await tls12(cipher)).toBe(standard);
  });

  it('prefers AEAD when a client offers everything, and still speaks TLS 1.3', async () => {
    expect(await tls12('ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES128-CCM:ECDHE-ECDSA-AES128-GCM-SHA256')).toBe(
      'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256',
    );
    const protocol = await new Promise<string | null>((resolve, reject) => {
      const socket = tls.connect(
        { host: '127.0.0.1', port: s.port, ca: serving.caPem, servername: 'localhost' },
        () => {
          resolve(socket.getProtocol());
          socket.end();
        },
      );
      socket.on('error', reject);
    });
    expect(protocol).toBe('TLSv1.3');
  });
});

describe('request limits', () => {
  it('sets the timeouts below the webhook timeout, a connection cap and keep-alive limits on the listener', async () => {
    const s = await listen({ separateMetrics: true });
    try {
      for (const server of [s.app.server, s.metrics!.server] as unknown as Array<
        import('node:https').Server & { connectionsCheckingInterval?: number }
      >) {
        expect(server.headersTimeout).toBe(LIMITS.headersTimeoutMs);
        expect(server.requestTimeout).toBe(LIMITS.requestTimeoutMs);
        expect(server.keepAliveTimeout).toBe(LIMITS.keepAliveTimeoutMs);
        expect(server.maxRequestsPerSocket).toBe(LIMITS.maxRequestsPerSocket);
        expect(server.timeout).toBe(LIMITS.idleSocketTimeoutMs);
      }
      expect(s.app.server.maxConnections).toBe(LIMITS.maxConnections);
      expect(s.metrics!.server.maxConnections).toBe(LIMITS.metricsMaxConnections);
      // Dropped by the checker at most a check interval after the request timeout: before the API server's 10 s.
      expect(LIMITS.requestTimeoutMs + LIMITS.checkIntervalMs).toBeLessThan(10_000);
      expect(LIMITS.handshakeTimeoutMs).toBeLessThan(10_000);
    } finally {
      await s.close();
    }
  });

  it('closes a connection that never finishes its TLS handshake, or never sends its headers', async () => {
    const s = await listen({});
    try {
      const closedAfter = (socket: net.Socket) =>
        new Promise<number>((resolve) => {
          const t0 = Date.now();
          socket.on('error', () => undefined);
          socket.on('close', () => resolve(Date.now() - t0));
          socket.resume(); // an answer read, so that the end after it is seen
        });
      const connect = async () => {
        const socket = tls.connect({ host: '127.0.0.1', port: s.port, ca: serving.caPem, servername: 'localhost' });
        await new Promise((r) => socket.once('secureConnect', r));
        return socket;
      };
      const bare = net.connect(s.port, '127.0.0.1');
      const idle = await connect();
      const partial = await connect();
      partial.write('POST /mutate HTTP/1.1\r\nhost: x\r\n'); // headers never finished
      const answered = await connect();
      answered.write('GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n'); // then idle on keep-alive
      const slowBody = await connect();
      slowBody.write(
        'POST /mutate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{',
      );
      let slowAnswer = '';
      slowBody.on('data', (chunk: Buffer) => (slowAnswer += chunk.toString('latin1')));
      const [a, b, c, d, e] = (await Promise.all([bare, idle, partial, answered, slowBody].map(closedAfter))) as [
        number,
        number,
        number,
        number,
        number,
      ];
      // A body that stops coming: 408 once the request timeout has passed, before the API server's 10 s.
      expect(slowAnswer).toMatch(/^HTTP\/1\.1 408 /);
      expect(e).toBeGreaterThan(LIMITS.requestTimeoutMs - 1_000);
      expect(e).toBeLessThan(LIMITS.requestTimeoutMs + LIMITS.checkIntervalMs + 2_500);
      expect(a).toBeLessThan(LIMITS.handshakeTimeoutMs + 2_500);
      expect(b).toBeLessThan(LIMITS.headersTimeoutMs + 2_500);
      expect(c).toBeLessThan(LIMITS.headersTimeoutMs + 2_500);
      expect(d).toBeLessThan(LIMITS.keepAliveTimeoutMs + LIMITS.checkIntervalMs + 2_500);
      expect(Math.min(a, b, c)).toBeGreaterThan(LIMITS.headersTimeoutMs - 1_000);
    } finally {
      await s.close();
    }
  }, 30_000);

  /** Sends headers and `sent` bytes of a body announced as `length` (or chunked), then waits for what the server says. */
  const slowPost = (port: number, length: number | 'chunked', sent: number) =>
    new Promise<{ status?: number; connection?: string; closed: boolean }>((resolve) => {
      const socket = tls.connect({ host: '127.0.0.1', port, ca: serving.caPem, servername: 'localhost' }, () => {
        const head = length === 'chunked' ? 'transfer-encoding: chunked\r\n' : `content-length: ${length}\r\n`;
        socket.write(`POST /mutate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n${head}\r\n`);
        const body = Buffer.alloc(sent, 0x20);
        socket.write(length === 'chunked' ? Buffer.concat([Buffer.from(`${sent.toString(16)}\r\n`), body]) : body);
      });
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (c: string) => (text += c));
      socket.on('error', () => undefined);
      const done = (closed: boolean) => {
        const status = /^HTTP\/1\.1 (\d+)/.exec(text)?.[1];
        const connection = /\r\nconnection: ([^\r]+)/i.exec(text)?.[1];
        socket.destroy();
        resolve({ status: status ? Number(status) : undefined, connection, closed });
      };
      socket.on('close', () => done(true));
      setTimeout(() => done(false), 1_500);
    });

  it('refuses a body announced over the limit at once, and closes its connection', async () => {
    const s = await listen({});
    try {
      expect(await slowPost(s.port, BODY_LIMIT + 1, 1024)).toEqual({ status: 413, connection: 'close', closed: true });
    } finally {
      await s.close();
    }
  });

  it('holds the bytes being received across connections to a budget, and gives them back', async () => {
    const budget = 1024 * 1024;
    const s = await listen({ inFlightBytes: budget });
    try {
      // Two slow bodies that fit the budget together wait for their bytes; the third is refused at once.
      const first = slowPost(s.port, budget / 2, 100);
      const second = slowPost(s.port, budget / 2, 100);
      await new Promise((r) => setTimeout(r, 300));
      expect(await slowPost(s.port, 4096, 100)).toEqual({ status: 503, connection: 'close', closed: true });
      expect(await first).toEqual({ status: undefined, connection: undefined, closed: false });
      await second;
      // Their connections gone, their bytes are free again.
      await new Promise((r) => setTimeout(r, 100));
      expect(await request(s.port, 'POST', '/mutate', { body: review() })).toMatchObject({ status: 200 });
      // A chunked body is counted as it comes.
      expect(await slowPost(s.port, 'chunked', budget + 1)).toMatchObject({ status: 503, closed: true });
      await new Promise((r) => setTimeout(r, 100));
      expect(await request(s.port, 'POST', '/mutate', { body: review() })).toMatchObject({ status: 200 });
    } finally {
      await s.close();
    }
  });

  it('budgets 32 MiB by default: four reviews of the largest size at once', () => {
    expect(IN_FLIGHT_BYTES).toBe(32 * 1024 * 1024);
    expect(Math.floor(IN_FLIGHT_BYTES / BODY_LIMIT)).toBe(4);
  });
});

describe('--metrics-listen: metrics on a listener of their own', () => {
  it('serves /metrics there and not on the webhook listener, which keeps the probes', async () => {
    const s = await listen({ clientCa: true, separateMetrics: true });
    try {
      expect(await request(s.port, 'GET', '/metrics', { client: good })).toMatchObject({ status: 404 });
      expect(await request(s.port, 'GET', '/readyz', { client: good })).toMatchObject({ status: 200 });
      // No client certificate asked on the metrics port.
      const metrics = await request(s.metricsPort!, 'GET', '/metrics');
      expect(metrics).toMatchObject({ status: 200 });
      expect((metrics as { body: string }).body).toMatch(/^# HELP /m);
      for (const probe of ['/healthz', '/readyz'])
        expect(await request(s.metricsPort!, 'GET', probe)).toMatchObject({ status: 200 });
      // And no admission there.
      expect(await request(s.metricsPort!, 'POST', '/mutate', { body: review() })).toMatchObject({ status: 404 });
    } finally {
      await s.close();
    }
  });

  it('serves /metrics on the webhook listener without it', async () => {
    const s = await listen({});
    try {
      expect(await request(s.port, 'GET', '/metrics')).toMatchObject({ status: 200 });
      expect(s.metrics).toBeUndefined();
    } finally {
      await s.close();
    }
  });
});
