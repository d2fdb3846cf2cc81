import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { certPaths, defaultHosts, ensureCerts, generateCerts } from '../../src/transport/certs.js';

describe('generateCerts', () => {
  it('makes a CA and a serving certificate it signs, for the names and IPs given', async () => {
    const g = await generateCerts(['localhost', '127.0.0.1', '::1', 'netpin.netpin-system.svc'], 30);
    const ca = new X509Certificate(g.caPem);
    const cert = new X509Certificate(g.certPem);
    expect(ca.ca).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.checkIssued(ca)).toBe(true);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.subject).toBe('CN=localhost');
    expect(cert.checkHost('netpin.netpin-system.svc')).toBe('netpin.netpin-system.svc');
    expect(cert.checkHost('other.example')).toBeUndefined();
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.checkIP('::1')).toBe('::1');
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(cert.checkPrivateKey(createPrivateKey(g.keyPem))).toBe(true);
    // Valid from a minute ago, for the days asked.
    const days = (Date.parse(cert.validTo) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29.9);
    expect(days).toBeLessThan(30.1);
    expect(Date.parse(cert.validFrom)).toBeLessThanOrEqual(Date.now());
  });

  it('gives every certificate a new positive serial', async () => {
    const [a, b] = await Promise.all([generateCerts(['localhost']), generateCerts(['localhost'])]);
    const serials = [a, b].map((g) => new X509Certificate(g.certPem).serialNumber);
    expect(serials[0]).not.toBe(serials[1]);
    for (const s of serials) expect(Number.parseInt(s.slice(0, 2), 16)).toBeLessThan(0x80);
  });
});

describe('defaultHosts', () => {
  it('names loopback and the in-cluster service', () => {
    expect(defaultHosts('hook', 'ns')).toEqual([
      'localhost',
      '127.0.0.1',
      '::1',
      'hook',
      'hook.ns',
      'hook.ns.svc',
      'hook.ns.svc.cluster.local',
    ]);
  });
});

describe('ensureCerts', () => {
  const root = mkdtempSync(join(tmpdir(), 'netpin-certs-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('writes a CA, certificate and private key once, and keeps them afterwards', async () => {
    const dir = join(root, 'nested', 'certs');
    const made = await ensureCerts(dir, defaultHosts());
    expect(made).toEqual({ paths: certPaths(dir), generated: true });
    expect(made.paths).toEqual({ cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key'), ca: join(dir, 'ca.crt') });
    expect(statSync(made.paths.key).mode & 0o777).toBe(0o600);
    const cert = new X509Certificate(readFileSync(made.paths.cert));
    expect(cert.checkIssued(new X509Certificate(readFileSync(made.paths.ca)))).toBe(true);
    expect(cert.checkHost('netpin.netpin-system.svc.cluster.local')).toBeDefined();

    const again = await ensureCerts(dir, ['other']);
    expect(again.generated).toBe(false);
    expect(new X509Certificate(readFileSync(made.paths.cert)).fingerprint256).toBe(cert.fingerprint256);
  });
});
