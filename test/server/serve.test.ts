// `netpin serve` wires --client-ca and --metrics-listen to its listeners (issue 20).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServeArgs } from '../../src/cli/args.js';
import { serve, type Server } from '../../src/server/serve.js';
import { repoPath } from '../../harness/controlplane.js';
import { createCa, issueCert } from '../../harness/pki.js';

const get = (url: string, ca: string, client?: { cert: string; key: string }) =>
  new Promise<number | string>((resolve) => {
    https
      .get(url, { ca, agent: false, ...(client ?? {}) }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      })
      .on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });

describe('netpin serve --client-ca --metrics-listen', () => {
  let dir: string;
  let server: Server;
  let ca: string;
  let client: { cert: string; key: string };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'netpin-serve-'));
    await createCa(join(dir, 'clients'), 'apiserver-clients', 1);
    await issueCert(
      join(dir, 'clients'),
      'apiserver',
      '/CN=kube-apiserver',
      ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=clientAuth'],
      1,
    );
    client = {
      cert: readFileSync(join(dir, 'clients', 'apiserver.crt'), 'utf8'),
      key: readFileSync(join(dir, 'clients', 'apiserver.key'), 'utf8'),
    };
    const opts = parseServeArgs(
      [
        '--cni=calico',
        `--pools=${repoPath('examples/pools.yaml')}`,
        '--ledger=memory',
        '--listen=127.0.0.1:0',
        '--metrics-listen=127.0.0.1:0',
        `--cert-dir=${join(dir, 'certs')}`,
        `--client-ca=${join(dir, 'clients', 'ca.crt')}`,
      ],
      {},
    );
    server = await serve(opts, pino({ level: 'silent' }));
    ca = readFileSync(server.caPath, 'utf8');
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves metrics and probes on their own port, asking for no client certificate', async () => {
    expect(server.metricsUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(server.metricsUrl).not.toBe(server.url);
    expect(await get(`${server.metricsUrl}/metrics`, ca)).toBe(200);
    expect(await get(`${server.metricsUrl}/readyz`, ca)).toBe(200);
  });

  it('requires a client certificate from the bundle on the webhook port, where /metrics is not', async () => {
    expect(await get(`${server.url}/healthz`, ca)).toEqual(expect.any(String));
    expect(await get(`${server.url}/healthz`, ca, client)).toBe(200);
    expect(await get(`${server.url}/metrics`, ca, client)).toBe(404);
  });
});
