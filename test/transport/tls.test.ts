import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { generateCerts, type GeneratedCerts } from '../../src/transport/certs.js';
import { CertificateSource } from '../../src/transport/tls.js';
import { harness, patchOf, podCreate, type Harness } from '../../harness/reviews.js';

const HOSTS = ['localhost', '127.0.0.1'];

interface Peer {
  fingerprint: string;
  serial: string;
}

const expected = (g: GeneratedCerts): Peer => {
  const x = new X509Certificate(g.certPem);
  return { fingerprint: x.fingerprint256, serial: x.serialNumber };
};

const peerOf = (socket: tls.TLSSocket): Peer => {
  const c = socket.getPeerCertificate();
  return { fingerprint: c.fingerprint256, serial: c.serialNumber };
};

describe('HTTPS with certificate reload', () => {
  let dir: string;
  let h: Harness;
  let source: CertificateSource;
  let port: number;
  let first: GeneratedCerts;
  let second: GeneratedCerts;
  let third: GeneratedCerts;
  const log = { error: vi.fn() };
  const certPath = () => join(dir, 'tls.crt');
  const keyPath = () => join(dir, 'tls.key');
  const install = (g: Pick<GeneratedCerts, 'certPem' | 'keyPem'>) => {
    writeFileSync(certPath(), g.certPem);
    writeFileSync(keyPath(), g.keyPem);
  };

  /** A fresh TLS connection: the certificate it was served, verified against `ca`. */
  const handshake = (ca: string[]) =>
    new Promise<Peer>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
        const peer = peerOf(socket);
        socket.end();
        resolve(peer);
      });
      socket.on('error', reject);
    });

  /** One request through `agent`: status, body, the peer certificate, and whether the socket was reused. */
  const request = (agent: https.Agent, method: 'GET' | 'POST', path: string, body?: unknown) =>
    new Promise<{ status: number; body: string; peer: Peer; reused: boolean }>((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port,
          method,
          path,
          agent,
          headers: body === undefined ? {} : { 'content-type': 'application/json' },
        },
        (res) => {
          // Read now: a keep-alive socket goes back to the agent's pool at 'end'.
          const peer = peerOf(res.socket as tls.TLSSocket);
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode!, body: text, peer, reused: req.reusedSocket }));
        },
      );
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'netpin-tls-'));
    [first, second, third] = await Promise.all([generateCerts(HOSTS), generateCerts(HOSTS), generateCerts(HOSTS)]);
    install(first);
    source = new CertificateSource(certPath(), keyPath(), log as unknown as Logger);
    h = await harness({ certificates: source });
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    port = (h.app.server.address() as { port: number }).port;
  });

  afterAll(async () => {
    source.stop();
    await h.app.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves admission over HTTPS with the certificate from the files, TLS 1.2 or later', async () => {
    const agent = new https.Agent({ ca: [first.caPem], servername: 'localhost' });
    const body = podCreate({ name: 'a', annotations: { 'netpin.io/pool': 'web' } });
    const res = await request(agent, 'POST', '/mutate', body);
    expect(res.status).toBe(200);
    expect(res.peer).toEqual(expected(first));
    expect(patchOf(JSON.parse(res.body).response)).toContainEqual({
      op: 'add',
      path: '/metadata/annotations/netpin.io~1allocated',
      value: '10.20.0.2',
    });
    agent.destroy();

    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ca: [first.caPem],
      servername: 'localhost',
      maxVersion: 'TLSv1.2',
    });
    await new Promise((resolve, reject) => socket.on('secureConnect', resolve).on('error', reject));
    expect(socket.getProtocol()).toBe('TLSv1.2');
    socket.end();
  });

  it('refuses a TLS 1.1 client', async () => {
    const tls11 = {
      minVersion: 'TLSv1.1',
      maxVersion: 'TLSv1.1',
      ciphers: 'DEFAULT@SECLEVEL=0',
      rejectUnauthorized: false,
    } as const;
    const attempt = (p: number) =>
      new Promise<string>((resolve) => {
        const s = tls.connect({ host: '127.0.0.1', port: p, ...tls11 }, () => {
          resolve(`connected with ${s.getProtocol()}`);
          s.end();
        });
        s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      });

    // The same client does speak TLS 1.1 to a server that allows it, so the refusal is netpin's.
    const lenient = tls.createServer(
      { cert: first.certPem, key: first.keyPem, minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' },
      (s) => s.end(),
    );
    await new Promise<void>((resolve) => lenient.listen(0, '127.0.0.1', resolve));
    try {
      expect(await attempt((lenient.address() as { port: number }).port)).toBe('connected with TLSv1.1');
    } finally {
      lenient.close();
    }
    expect(await attempt(port)).toMatch(/PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL/);
  });

  it('serves a rotated certificate to new connections while an open keep-alive connection keeps working', async () => {
    install(first);
    source.poll();
    const kept = new https.Agent({ keepAlive: true, maxSockets: 1, ca: [first.caPem], servername: 'localhost' });
    const before = await request(kept, 'GET', '/healthz');
    expect(before).toMatchObject({ status: 200, peer: expected(first), reused: false });

    install(second);
    expect(source.poll()).toBe(true);
    expect(source.healthy).toBe(true);
    expect(await handshake([second.caPem])).toEqual(expected(second));
    // A client that trusts only the old CA can no longer make new connections.
    await expect(handshake([first.caPem])).rejects.toThrow();

    const after = await request(kept, 'GET', '/readyz');
    expect(after).toMatchObject({ status: 200, body: '{"status":"ready"}', peer: expected(first), reused: true });
    // Polling the same files again changes nothing.
    expect(source.poll()).toBe(false);
    kept.destroy();
  });

  it('keeps the old certificate and reports not ready when the files do not match', async () => {
    install(second);
    source.poll();
    log.error.mockClear();
    // tls.crt rotated, tls.key not yet.
    writeFileSync(certPath(), third.certPem);
    expect(source.poll()).toBe(false);
    expect(source.healthy).toBe(false);
    expect(await handshake([second.caPem])).toEqual(expected(second));
    const notReloaded = (err: string) => [
      { cert: certPath(), key: keyPath(), err },
      'serving certificate not reloaded: the old one stays in use, and the webhook is not ready until the files make a good pair',
    ];
    expect(log.error.mock.calls).toEqual([notReloaded(source.lastError!)]);
    // Said once, not at every poll.
    expect(source.poll()).toBe(false);
    expect(log.error).toHaveBeenCalledTimes(1);
    // The files put back, then the same mismatch again: a new failure, said again.
    install(second);
    expect(source.poll()).toBe(false);
    expect(source.healthy).toBe(true);
    writeFileSync(certPath(), third.certPem);
    expect(source.poll()).toBe(false);
    expect(log.error.mock.calls).toEqual([notReloaded(source.lastError!), notReloaded(source.lastError!)]);

    const agent = new https.Agent({ ca: [second.caPem], servername: 'localhost' });
    const ready = await request(agent, 'GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body)).toMatchObject({
      status: 'not ready',
      problems: [expect.stringMatching(/^certificate: /)],
    });
    agent.destroy();

    // Garbage is refused the same way, and said anew.
    writeFileSync(keyPath(), 'not a key');
    expect(source.poll()).toBe(false);
    expect(log.error).toHaveBeenCalledTimes(3);
    expect(log.error.mock.calls[2]).toEqual(notReloaded(source.lastError!));
    expect(await handshake([second.caPem])).toEqual(expected(second));

    // Once the key follows, the new pair is served and readiness comes back.
    writeFileSync(keyPath(), third.keyPem);
    expect(source.poll()).toBe(true);
    expect(source.healthy).toBe(true);
    expect(source.lastError).toBeUndefined();
    expect(await handshake([third.caPem])).toEqual(expected(third));
    expect((await h.app.inject({ url: '/readyz' })).statusCode).toBe(200);
  });

  it('polls the files on its own, on the interval it was started with', async () => {
    install(third);
    source.poll();
    const changed = new Promise<Buffer>((resolve) => source.onChange((pair) => resolve(pair.cert)));
    source.start(25);
    try {
      install(first);
      expect((await changed).toString()).toBe(first.certPem);
      expect(await handshake([first.caPem])).toEqual(expected(first));
    } finally {
      source.stop();
    }
  });
});

describe('CertificateSource', () => {
  it('refuses to start from a pair that does not match', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'netpin-tls-'));
    try {
      const [a, b] = await Promise.all([generateCerts(HOSTS), generateCerts(HOSTS)]);
      writeFileSync(join(dir, 'tls.crt'), a.certPem);
      writeFileSync(join(dir, 'tls.key'), b.keyPem);
      expect(() => new CertificateSource(join(dir, 'tls.crt'), join(dir, 'tls.key'))).toThrow();
      writeFileSync(join(dir, 'tls.key'), a.keyPem);
      const s = new CertificateSource(join(dir, 'tls.crt'), join(dir, 'tls.key'));
      expect(s.pair.cert.equals(readFileSync(join(dir, 'tls.crt')))).toBe(true);
      expect(s.secureContextOptions().minVersion).toBe('TLSv1.2');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
