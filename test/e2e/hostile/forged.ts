// Attack 1 of issue 20: from any pod, one request posting a made-up StatefulSet review reserved every
// address of another team's pool. With --client-ca, netpin's webhook listener finishes a TLS handshake
// only with a client certificate from the CA the API server's certificate comes from (the control plane
// here presents one through its AdmissionConfiguration, see harness/controlplane.ts), so a forged
// review gets no answer at all, while reviews the API server sends are answered as before.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { calicoIps, createPool, listClaims, podsWithPrefix, waitFor } from '../../../harness/cluster.js';
import { postReview, type ClientCert } from '../../../harness/netpin.js';
import { createCa, issueCert } from '../../../harness/pki.js';
import { statefulSet } from '../../../harness/reviews.js';
import type { HostileEnv } from './env.js';

const VICTIM = 'fg-victim';
const POOL = 'fg-pool';
const RANGE = Array.from({ length: 10 }, (_, i) => `10.210.0.${i + 1}`);

export function forgedReviews(env: HostileEnv): void {
  let dir: string;
  /** A client certificate as good as the API server's, but from a CA netpin does not trust. */
  let foreign: ClientCert;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'netpin-forged-'));
    await createCa(dir, 'attacker-ca', 1);
    await issueCert(
      dir,
      'attacker',
      '/CN=kube-apiserver-webhook-client',
      ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=clientAuth'],
      1,
    );
    foreign = {
      cert: readFileSync(join(dir, 'attacker.crt'), 'utf8'),
      key: readFileSync(join(dir, 'attacker.key'), 'utf8'),
    };
    await env.namespace(VICTIM);
    await env.use();
    await createPool(env.c, POOL, { ranges: [`${RANGE[0]}-${RANGE[9]}`] });
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs netpin as docs/security.md asks: a client CA, and metrics on a port of their own', () => {
    expect(env.cp.webhookClient).toBeDefined();
    expect(env.netpin.client).toBeDefined();
    expect(env.netpin.metricsUrl).toBeDefined();
  });

  it('a forged StatefulSet review without the API server certificate gets no answer and reserves nothing', async () => {
    const forged = statefulSet('CREATE', {
      name: 'squat',
      namespace: VICTIM,
      replicas: 10,
      annotations: { 'netpin.io/pool': POOL },
    });
    for (const client of [null, foreign]) {
      const outcome = await postReview(env.netpin, '/mutate', forged, { client }).then(
        (r) => `answered with HTTP ${r.status}`,
        (e: NodeJS.ErrnoException) => `TLS error ${e.code ?? e.message}`,
      );
      expect(outcome).toMatch(/^TLS error (ECONNRESET|EPIPE|ERR_SSL_|EPROTO)/);
    }
    // Not through the metrics port either: it serves no admission.
    const viaMetrics = await postReview({ url: env.netpin.metricsUrl!, caPem: env.netpin.caPem }, '/mutate', forged, {
      client: null,
    });
    expect(viaMetrics.status).toBe(404);
    expect(await listClaims(env.c, POOL)).toEqual([]);
  });

  it('pods admitted through the API server, which presents its certificate, get their addresses', async () => {
    await env.c.apps.createNamespacedStatefulSet({
      namespace: VICTIM,
      body: {
        metadata: { name: 'db' },
        spec: {
          replicas: 3,
          podManagementPolicy: 'Parallel',
          serviceName: 'db',
          selector: { matchLabels: { app: 'db' } },
          template: {
            metadata: { labels: { app: 'db' }, annotations: { 'netpin.io/pool': POOL } },
            spec: { containers: [{ name: 'db', image: 'registry.example/db:1' }], terminationGracePeriodSeconds: 0 },
          },
        },
      },
    });
    const pods = await waitFor('3 pods of StatefulSet db', async () => {
      const got = await podsWithPrefix(env.c, VICTIM, 'db-');
      return got.length === 3 && got.every((p) => calicoIps(p).length === 1) && got;
    });
    const ips = pods.map((p) => calicoIps(p)[0]!).sort();
    expect(ips).toEqual(RANGE.slice(0, 3));
    const claims = await listClaims(env.c, POOL);
    expect(claims.map((c) => [c.owner.namespace, c.owner.kind, c.ip]).sort()).toEqual(
      ips.map((ip) => [VICTIM, 'StatefulSet', ip]),
    );
  });
}
