// Certificates for the test clusters and netpin's replicas, made with the openssl CLI: one CA per
// directory, and certificates it signs.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** Runs openssl in `dir`; a failure says what openssl printed. */
export async function openssl(dir: string, args: string[]): Promise<void> {
  try {
    await execFileP('openssl', args, { cwd: dir });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr ?? e.message}`, { cause: err });
  }
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** ca.crt and ca.key in `dir`: a P-256 CA valid for `days`. */
export async function createCa(dir: string, commonName: string, days: number): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  await openssl(dir, [
    'req',
    '-x509',
    '-new',
    ...EC_KEY,
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    String(days),
    '-sha256',
    '-subj',
    `/CN=${commonName}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
}

/**
 * <name>.crt and <name>.key in `dir`, signed by its CA, with these X.509 v3 extensions (openssl
 * extfile lines). Returns the serial: upper-case hex, as getPeerCertificate() gives it.
 */
export async function issueCert(
  dir: string,
  name: string,
  subject: string,
  ext: string[],
  days: number,
): Promise<string> {
  const serial = randomBytes(12);
  serial[0] = (serial[0]! & 0x7f) | 0x10; // positive, and no leading zero byte for DER to strip
  await openssl(dir, ['req', '-new', ...EC_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
  await fsp.writeFile(path.join(dir, `${name}.ext`), ext.join('\n') + '\n');
  await openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-set_serial',
    `0x${serial.toString('hex')}`,
    '-days',
    String(days),
    '-sha256',
    '-extfile',
    `${name}.ext`,
    '-out',
    `${name}.crt`,
  ]);
  return serial.toString('hex').toUpperCase();
}
