import { execFile } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const SCRIPT = fileURLToPath(new URL('../../certs/generate.sh', import.meta.url));
const FILES = ['ca.crt', 'ca.key', 'tls.crt', 'tls.key'] as const;

function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('bash', [SCRIPT, ...args], (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

function openssl(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, (err, stdout, stderr) =>
      err ? reject(new Error(`openssl ${args.join(' ')}: ${stderr}`)) : resolve(stdout),
    );
  });
}

async function snapshot(dir: string): Promise<string[]> {
  return Promise.all(FILES.map((f) => readFile(join(dir, f), 'utf8')));
}

describe('certs/generate.sh', () => {
  let dir: string;
  beforeEach(async () => {
    dir = join(await mkdtemp(join(tmpdir(), 'netpin-certs-')), 'out');
  });
  afterEach(async () => {
    await rm(join(dir, '..'), { recursive: true, force: true });
  });

  it('makes a CA and a serving certificate that verifies against it, with loopback and in-cluster SANs', async () => {
    const r = await run(dir, 'hook', 'team-a');
    expect(r.code, r.stderr).toBe(0);

    expect(await openssl('verify', '-CAfile', join(dir, 'ca.crt'), join(dir, 'tls.crt'))).toContain('tls.crt: OK');
    const sans = await openssl('x509', '-in', join(dir, 'tls.crt'), '-noout', '-ext', 'subjectAltName');
    for (const name of [
      'DNS:localhost',
      'IP Address:127.0.0.1',
      'IP Address:0:0:0:0:0:0:0:1',
      'DNS:hook',
      'DNS:hook.team-a',
      'DNS:hook.team-a.svc',
      'DNS:hook.team-a.svc.cluster.local',
    ]) {
      expect(sans).toContain(name);
    }

    const cert = new X509Certificate(await readFile(join(dir, 'tls.crt')));
    const ca = new X509Certificate(await readFile(join(dir, 'ca.crt')));
    expect(cert.checkIssued(ca) && cert.verify(ca.publicKey)).toBe(true);
    expect(ca.ca).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.checkPrivateKey(createPrivateKey(await readFile(join(dir, 'tls.key'))))).toBe(true);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
  });

  it('defaults to service netpin in namespace netpin-system', async () => {
    expect((await run(dir)).code).toBe(0);
    const cert = new X509Certificate(await readFile(join(dir, 'tls.crt')));
    expect(cert.subjectAltName).toContain('DNS:netpin.netpin-system.svc.cluster.local');
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.checkHost('localhost')).toBe('localhost');
  });

  it('keeps an existing set, refuses a partial one, and replaces either with --force', async () => {
    expect((await run(dir)).code).toBe(0);
    const first = await snapshot(dir);

    const again = await run(dir);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain('keeping them');
    expect(await snapshot(dir)).toEqual(first);

    await unlink(join(dir, 'ca.key'));
    const partial = await run(dir);
    expect(partial.code).toBe(1);
    expect(partial.stderr).toContain('refusing');

    expect((await run('--force', dir)).code).toBe(0);
    const second = await snapshot(dir);
    expect(second[0]).not.toEqual(first[0]);
    expect(await openssl('verify', '-CAfile', join(dir, 'ca.crt'), join(dir, 'tls.crt'))).toContain('OK');
  });

  it('rejects unknown options and extra arguments', async () => {
    expect((await run('--nope')).code).toBe(2);
    expect((await run(dir, 'a', 'b', 'c')).code).toBe(2);
  });
});
