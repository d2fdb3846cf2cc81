import { webcrypto } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
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
  certPem: string;
  keyPem: string;
}

/** A new self-signed CA and a serving certificate it signs, both ECDSA P-256. */
export async function generateCerts(hosts: string[], days = 365): Promise<GeneratedCerts> {
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(Date.now() + days * 86_400_000);
  const caKeys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: 'CN=netpin development CA',
    notBefore,
    notAfter,
    signingAlgorithm: ALG,
    keys: caKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const names = hosts.map((h) =>
    /^[\d.]+$|:/.test(h) ? { type: 'ip' as const, value: h } : { type: 'dns' as const, value: h },
  );
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${hosts.find((h) => !/^[\d.]+$|:/.test(h)) ?? 'netpin'}`,
    issuer: ca.subject,
    notBefore,
    notAfter,
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: caKeys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { caPem: ca.toString('pem'), certPem: cert.toString('pem'), keyPem: pem('PRIVATE KEY', Buffer.from(pkcs8)) };
}

/** Writes a CA and serving certificate into `dir` unless a certificate is there already. */
export async function ensureCerts(dir: string, hosts: string[]): Promise<{ paths: CertPaths; generated: boolean }> {
  const paths = certPaths(dir);
  if (existsSync(paths.cert) && existsSync(paths.key)) return { paths, generated: false };
  await mkdir(dir, { recursive: true });
  const g = await generateCerts(hosts);
  await writeFile(paths.ca, g.caPem);
  await writeFile(paths.cert, g.certPem);
  await writeFile(paths.key, g.keyPem, { mode: 0o600 });
  return { paths, generated: true };
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
