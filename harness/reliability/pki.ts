// Serving certificates for netpin's replicas from one CA the tests keep (openssl), so that a
// certificate can be replaced by another the webhooks' caBundle still trusts, as cert-manager or a
// renewed Secret does; and the certificate a replica serves, read off a fresh TLS handshake.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { createCa, issueCert } from '../pki.js';

export interface ServingCert {
  cert: string;
  key: string;
  /** Upper-case hex, as getPeerCertificate() gives it. */
  serial: string;
}

export interface Pki {
  dir: string;
  caPem: string;
  /** A new serving certificate for 127.0.0.1 and localhost, signed by the CA. */
  issue(): Promise<ServingCert>;
}

export async function createPki(dir: string): Promise<Pki> {
  await createCa(dir, 'netpin-reliability-ca', 2);
  const caPem = await fs.readFile(path.join(dir, 'ca.crt'), 'utf8');
  let n = 0;
  return {
    dir,
    caPem,
    async issue() {
      const name = `serving-${++n}`;
      const serial = await issueCert(
        dir,
        name,
        '/CN=netpin',
        [
          'basicConstraints=critical,CA:FALSE',
          'keyUsage=critical,digitalSignature',
          'extendedKeyUsage=serverAuth',
          'subjectAltName=DNS:localhost,IP:127.0.0.1',
        ],
        2,
      );
      const [cert, key] = await Promise.all([
        fs.readFile(path.join(dir, `${name}.crt`), 'utf8'),
        fs.readFile(path.join(dir, `${name}.key`), 'utf8'),
      ]);
      return { cert, key, serial };
    },
  };
}

/**
 * A cert dir as kubelet mounts a Secret: the files are symlinks through `..data`, which is swapped
 * atomically to a new timestamped directory on every update (AtomicWriter), so that a reader never
 * sees a new certificate with an old key.
 */
export async function writeSecretVolume(dir: string, c: ServingCert, caPem: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  const stamp = `..${Date.now()}_${randomBytes(4).toString('hex')}`;
  await fs.mkdir(path.join(dir, stamp));
  await fs.writeFile(path.join(dir, stamp, 'tls.crt'), c.cert);
  await fs.writeFile(path.join(dir, stamp, 'tls.key'), c.key, { mode: 0o600 });
  await fs.writeFile(path.join(dir, stamp, 'ca.crt'), caPem);
  const old = await fs.readlink(path.join(dir, '..data')).catch(() => undefined);
  await fs.symlink(stamp, path.join(dir, '..data_tmp'));
  await fs.rename(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
  for (const f of ['tls.crt', 'tls.key', 'ca.crt']) {
    await fs.symlink(path.join('..data', f), path.join(dir, f)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
  }
  if (old) await fs.rm(path.join(dir, old), { recursive: true, force: true });
}

/**
 * A cert dir of plain files rewritten in place, certificate first and key second, as a hand edit or
 * a copy would: for a moment the pair on disk does not match.
 */
export async function writePlainFiles(dir: string, c: ServingCert, caPem: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'ca.crt'), caPem);
  await fs.writeFile(path.join(dir, 'tls.crt'), c.cert);
  await fs.writeFile(path.join(dir, 'tls.key'), c.key, { mode: 0o600 });
}

/** The serial of the certificate a server presents to a new connection (upper-case hex). */
export function servedSerial(port: number, caPem: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost', timeout: 3_000 }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.destroy();
      resolve(serial.replace(/^0+/, '').toUpperCase());
    });
    socket.once('timeout', () => socket.destroy(new Error('no TLS handshake within 3 s')));
    socket.once('error', reject);
  });
}
