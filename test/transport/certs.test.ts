import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  certPaths,
  defaultHosts,
  ensureCerts,
  generateCerts,
  LIFETIMES,
  startRenewal,
  type EnsureResult,
} from '../../src/transport/certs.js';
import { CertificateSource } from '../../src/transport/tls.js';

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
    expect(made).toEqual({ paths: certPaths(dir), generated: true, renewed: true, caRenewed: false, managed: true });
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

describe('renewal of what netpin generated (a clock moved by the test)', () => {
  const root = mkdtempSync(join(tmpdir(), 'netpin-renew-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const DAY = 86_400_000;
  const t0 = Date.parse('2026-01-01T00:00:00Z');
  const at = (days: number) => () => new Date(t0 + days * DAY);
  const read = (p: string) => new X509Certificate(readFileSync(p));
  const cas = (p: string) =>
    (readFileSync(p, 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(
      (c) => new X509Certificate(c),
    );

  it('gives the serving certificate a year, and the CA five', async () => {
    expect(LIFETIMES).toEqual({ servingDays: 365, caDays: 5 * 365 });
    const dir = join(root, 'lifetimes');
    const { paths } = await ensureCerts(dir, ['localhost'], { now: at(0) });
    const life = (c: X509Certificate) => (Date.parse(c.validTo) - Date.parse(c.validFrom)) / DAY;
    expect(life(read(paths.cert))).toBeCloseTo(365, 1);
    expect(life(read(paths.ca))).toBeCloseTo(5 * 365, 1);
    expect(statSync(join(dir, 'ca.key')).mode & 0o777).toBe(0o600);
  });

  it('renews the serving certificate from the same CA once less than a third of its life is left', async () => {
    const dir = join(root, 'serving');
    const { paths } = await ensureCerts(dir, defaultHosts(), { now: at(0) });
    const first = read(paths.cert);
    const ca = readFileSync(paths.ca, 'utf8');

    // Two thirds of a year less a day: not yet.
    const early = await ensureCerts(dir, defaultHosts(), { now: at(242) });
    expect(early).toMatchObject({ generated: false, renewed: false, caRenewed: false, managed: true });
    expect(read(paths.cert).fingerprint256).toBe(first.fingerprint256);

    const due = await ensureCerts(dir, defaultHosts(), { now: at(245) });
    expect(due).toMatchObject({ generated: false, renewed: true, caRenewed: false, managed: true });
    const second = read(paths.cert);
    expect(second.fingerprint256).not.toBe(first.fingerprint256);
    expect(readFileSync(paths.ca, 'utf8')).toBe(ca);
    expect(second.checkIssued(read(paths.ca))).toBe(true);
    expect(second.verify(read(paths.ca).publicKey)).toBe(true);
    expect(second.checkHost('netpin.netpin-system.svc')).toBeDefined();
    expect(Date.parse(second.validTo)).toBeCloseTo(t0 + (245 + 365) * DAY, -6);
    expect(second.checkPrivateKey(createPrivateKey(readFileSync(paths.key)))).toBe(true);
    // No temporary files are left behind.
    expect(readdirSync(dir).sort()).toEqual(['ca.crt', 'ca.key', 'tls.crt', 'tls.key']);

    // And renewed again, not each time it is asked.
    expect((await ensureCerts(dir, defaultHosts(), { now: at(246) })).renewed).toBe(false);
  });

  it('renews the CA when a third of its life is left, keeping the old one in the bundle until it ends', async () => {
    const dir = join(root, 'ca');
    const { paths } = await ensureCerts(dir, ['localhost'], { now: at(0) });
    const oldCa = read(paths.ca);
    const due = await ensureCerts(dir, ['localhost'], { now: at(1220) });
    expect(due).toMatchObject({ renewed: true, caRenewed: true, managed: true });
    const bundle = cas(paths.ca);
    expect(bundle.map((c) => c.fingerprint256)).toEqual([bundle[0]!.fingerprint256, oldCa.fingerprint256]);
    expect(bundle[0]!.fingerprint256).not.toBe(oldCa.fingerprint256);
    expect(read(paths.cert).checkIssued(bundle[0]!)).toBe(true);
    // Once the old CA has ended, the bundle drops it at the next renewal.
    await ensureCerts(dir, ['localhost'], { now: at(1220 + 5 * 365 * (2 / 3) + 1) });
    expect(cas(paths.ca).some((c) => c.fingerprint256 === oldCa.fingerprint256)).toBe(false);
  });

  it('never outlives its CA: a serving certificate near the CA end is cut to it', async () => {
    const dir = join(root, 'short-ca');
    const { paths } = await ensureCerts(dir, ['localhost'], { now: at(0), caDays: 400 });
    expect(Date.parse(read(paths.cert).validTo)).toBeLessThanOrEqual(Date.parse(read(paths.ca).validTo));
  });

  it('never touches files it did not write (no ca.key: a mounted Secret, cert-manager)', async () => {
    const dir = join(root, 'mounted');
    const g = await generateCerts(['localhost'], 10, new Date(t0));
    mkdirSync(dir);
    writeFileSync(join(dir, 'tls.crt'), g.certPem);
    writeFileSync(join(dir, 'tls.key'), g.keyPem);
    writeFileSync(join(dir, 'ca.crt'), g.caPem);
    const r = await ensureCerts(dir, ['localhost'], { now: at(9) });
    expect(r).toMatchObject({ generated: false, renewed: false, managed: false });
    expect(readFileSync(join(dir, 'tls.crt'), 'utf8')).toBe(g.certPem);
  });

  it('renews by itself on an interval, telling the caller', async () => {
    const dir = join(root, 'interval');
    await ensureCerts(dir, ['localhost'], { now: at(0) });
    const results: EnsureResult[] = [];
    let now = 0;
    const stop = startRenewal(dir, ['localhost'], (r) => void (r instanceof Error || results.push(r)), 20, {
      now: () => at(now)(),
    });
    try {
      await vi.waitFor(() => expect(results.length).toBeGreaterThan(0));
      expect(results.every((r) => !r.renewed)).toBe(true);
      now = 300;
      await vi.waitFor(() => expect(results.some((r) => r.renewed)).toBe(true));
    } finally {
      stop();
    }
  });

  it('CertificateSource picks up the renewed files', async () => {
    const dir = join(root, 'source');
    const { paths } = await ensureCerts(dir, ['localhost'], { now: at(0) });
    const source = new CertificateSource(paths.cert, paths.key);
    const before = source.pair.cert.toString();
    await ensureCerts(dir, ['localhost'], { now: at(300) });
    expect(source.poll()).toBe(true);
    expect(source.pair.cert.toString()).not.toBe(before);
    expect(source.healthy).toBe(true);
  });
});
