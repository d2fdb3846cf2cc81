import { webcrypto } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
// @peculiar/x509 resolves its ASN.1 schemas through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface CertPaths {
  cert: string;
  key: string;
  ca: string;
}

export function certPaths(dir: string): CertPaths {
  // The names of a kubernetes.io/tls Secret mounted as a volume, plus the CA bundle.
  return { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key'), ca: join(dir, 'ca.crt') };
}

/**
 * The names a serving certificate must carry: loopback for local runs and tests
 * (an IP SAN, since the API server calls https://127.0.0.1:PORT), and the
 * in-cluster service names.
 */
export function defaultHosts(service = 'netpin', namespace = 'netpin-system'): string[] {
  return [
    'localhost',
    '127.0.0.1',
    '::1',
    service,
    `${service}.${namespace}`,
    `${service}.${namespace}.svc`,
    `${service}.${namespace}.svc.cluster.local`,
  ];
}

export interface GeneratedCerts {
  caPem: string;
  /** The CA's private key (PKCS#8): netpin keeps it to renew the serving certificate. */
  caKeyPem: string;
  certPem: string;
  keyPem: string;
}

const DAY = 86_400_000;

/** Lifetimes of what `netpin serve` generates for itself, in days. */
export const LIFETIMES = {
  /** The serving certificate: a year, renewed by the same CA when a third of it is left (about four months). */
  servingDays: 365,
  /**
   * The CA: five years, renewed when a third is left (20 months before it ends). A renewed CA is a new
   * caBundle, which netpin cannot hand to the API server itself: ca.crt then holds the new CA and the
   * old one, and netpin says so in its log.
   */
  caDays: 5 * 365,
} as const;

/** Renewal is due once less than this share of a certificate's life is left. */
const RENEW_WHEN_LEFT = 1 / 3;

interface Signer {
  cert: x509.X509Certificate;
  key: webcrypto.CryptoKey;
}

async function createCa(now: Date, days: number): Promise<{ signer: Signer; caPem: string; caKeyPem: string }> {
  const caKeys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=netpin self-signed CA ${now.toISOString().slice(0, 10)}`,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + days * DAY),
    signingAlgorithm: ALG,
    keys: caKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', caKeys.privateKey);
  return {
    signer: { cert: ca, key: caKeys.privateKey },
    caPem: ca.toString('pem'),
    caKeyPem: pem('PRIVATE KEY', Buffer.from(pkcs8)),
  };
}

/** A serving certificate for `hosts`, signed by `ca`, never outliving it. */
async function issueServing(
  ca: Signer,
  hosts: string[],
  now: Date,
  days: number,
): Promise<{ certPem: string; keyPem: string }> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const names = hosts.map((h) =>
    /^[\d.]+$|:/.test(h) ? { type: 'ip' as const, value: h } : { type: 'dns' as const, value: h },
  );
  const notAfter = Math.min(now.getTime() + days * DAY, ca.cert.notAfter.getTime());
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${hosts.find((h) => !/^[\d.]+$|:/.test(h)) ?? 'netpin'}`,
    issuer: ca.cert.subject,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(notAfter),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert.publicKey),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { certPem: cert.toString('pem'), keyPem: pem('PRIVATE KEY', Buffer.from(pkcs8)) };
}

/** A new self-signed CA and a serving certificate it signs, both ECDSA P-256. */
export async function generateCerts(
  hosts: string[],
  days: number = LIFETIMES.servingDays,
  now: Date = new Date(),
  caDays: number = LIFETIMES.caDays,
): Promise<GeneratedCerts> {
  const ca = await createCa(now, Math.max(caDays, days));
  const serving = await issueServing(ca.signer, hosts, now, days);
  return { caPem: ca.caPem, caKeyPem: ca.caKeyPem, ...serving };
}

export interface EnsureOptions {
  /** The clock (tests move it). */
  now?: () => Date;
  servingDays?: number;
  caDays?: number;
}

export interface EnsureResult {
  paths: CertPaths;
  /** A new CA and serving certificate were written (there were none). */
  generated: boolean;
  /** The serving certificate was replaced by a new one (generated, or renewed). */
  renewed: boolean;
  /** The CA was replaced: the CA bundle given to the API server must change. */
  caRenewed: boolean;
  /** netpin made these files and renews them (ca.key is there); otherwise they are someone else's to rotate. */
  managed: boolean;
}

/** Whether less than a third of the certificate's life is left at `now`. */
function renewalDue(cert: { notBefore: Date; notAfter: Date }, now: Date): boolean {
  const life = cert.notAfter.getTime() - cert.notBefore.getTime();
  return cert.notAfter.getTime() - now.getTime() < life * RENEW_WHEN_LEFT;
}

/**
 * Writes a CA and serving certificate into `dir` unless a certificate is there already, and renews
 * the ones netpin wrote: the serving certificate when less than a third of its life is left (signed
 * by the same CA), the CA likewise. Files netpin did not write (no ca.key beside them: a mounted
 * Secret, cert-manager's) are never touched.
 */
export async function ensureCerts(dir: string, hosts: string[], options: EnsureOptions = {}): Promise<EnsureResult> {
  const paths = certPaths(dir);
  const caKeyPath = join(dir, 'ca.key');
  const now = (options.now ?? (() => new Date()))();
  const servingDays = options.servingDays ?? LIFETIMES.servingDays;
  const caDays = options.caDays ?? LIFETIMES.caDays;
  const result = (r: Omit<EnsureResult, 'paths'>): EnsureResult => ({ paths, ...r });

  if (!existsSync(paths.cert) || !existsSync(paths.key)) {
    await mkdir(dir, { recursive: true });
    const g = await generateCerts(hosts, servingDays, now, caDays);
    writeSet(dir, { ca: g.caPem, caKey: g.caKeyPem, cert: g.certPem, key: g.keyPem });
    return result({ generated: true, renewed: true, caRenewed: false, managed: true });
  }
  if (!existsSync(caKeyPath)) return result({ generated: false, renewed: false, caRenewed: false, managed: false });

  const bundle = readFileSync(paths.ca, 'utf8');
  const caCerts = splitPem(bundle).map((p) => new x509.X509Certificate(p));
  let signer: Signer = {
    cert: caCerts[0]!,
    key: await webcrypto.subtle.importKey('pkcs8', derOf(readFileSync(caKeyPath, 'utf8')), ALG, true, ['sign']),
  };
  const serving = new x509.X509Certificate(readFileSync(paths.cert, 'utf8'));

  let caPem: string | undefined;
  let caKeyPem: string | undefined;
  if (renewalDue(signer.cert, now)) {
    const ca = await createCa(now, caDays);
    signer = ca.signer;
    // The old CA stays in the bundle while it lives, so that a client given the new bundle trusts both.
    const kept = caCerts.filter((c) => c.notAfter.getTime() > now.getTime()).map((c) => c.toString('pem'));
    caPem = [ca.caPem, ...kept].join('');
    caKeyPem = ca.caKeyPem;
  }
  const signedByCurrent = serving.issuer === signer.cert.subject && (await serving.verify({ publicKey: signer.cert }));
  if (caPem === undefined && signedByCurrent && !renewalDue(serving, now))
    return result({ generated: false, renewed: false, caRenewed: false, managed: true });

  const next = await issueServing(signer, hosts, now, servingDays);
  writeSet(dir, { ca: caPem, caKey: caKeyPem, cert: next.certPem, key: next.keyPem });
  return result({ generated: false, renewed: true, caRenewed: caPem !== undefined, managed: true });
}

/**
 * Writes each file under a temporary name, then renames them all without yielding to the event
 * loop: a CertificateSource polling in this process never reads a half-written file or a new
 * certificate beside the old key.
 */
function writeSet(dir: string, files: { ca?: string; caKey?: string; cert: string; key: string }): void {
  const plan: Array<[string, string, number]> = [];
  if (files.caKey !== undefined) plan.push(['ca.key', files.caKey, 0o600]);
  if (files.ca !== undefined) plan.push(['ca.crt', files.ca, 0o644]);
  plan.push(['tls.key', files.key, 0o600], ['tls.crt', files.cert, 0o644]);
  for (const [name, text, mode] of plan) writeFileSync(join(dir, `.${name}.next`), text, { mode });
  for (const [name] of plan) renameSync(join(dir, `.${name}.next`), join(dir, name));
}

function splitPem(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
}

function derOf(pemText: string): ArrayBuffer {
  const b = Buffer.from(pemText.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

/**
 * Checks `dir` every `intervalMs` (an hour by default) and renews what ensureCerts would; `onRenewed`
 * is told (serve reloads the certificate at once, and logs a renewed CA). Failures are reported, never thrown.
 */
export function startRenewal(
  dir: string,
  hosts: string[],
  onResult: (r: EnsureResult | Error) => void,
  intervalMs = 3_600_000,
  options: EnsureOptions = {},
): () => void {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    ensureCerts(dir, hosts, options)
      .then(onResult, (e: unknown) => onResult(e instanceof Error ? e : new Error(String(e))))
      .finally(() => (running = false));
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

function pem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}

function randomSerial(): string {
  // Positive 16-byte serial: the high bit cleared so DER does not read it as negative.
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0] = b[0]! & 0x7f;
  return Buffer.from(b).toString('hex');
}
