// The API server goes away under netpin --ledger kube: frozen with SIGSTOP (as under overload or a
// partition), then stopped and started again. Admissions that need the ledger must answer in band
// within 2 s, readiness must follow the API server, and no claim may be lost or doubled.
import { request } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { V1Pod } from '@kubernetes/client-node';
import { type ControlPlane } from '../../harness/controlplane.js';
import { calicoIps, listClaims, podsWithPrefix, waitFor, type Clients } from '../../harness/cluster.js';
import { postReview, type Netpin } from '../../harness/netpin.js';
import type { WireJson } from '../../harness/json.js';
import { startFixture, type Fixture } from '../../harness/fixture.js';

const NS = 'shop';
const POOL = 'outage';
// Short, so that a claim whose create landed after netpin gave up on it is released within the test.
const GRACE_SECONDS = 3;
// What an operator is promised: an admission that needs the ledger answers within this, whatever the API server does.
const ANSWER_WITHIN_MS = 2_000;
// Readiness follows the API server within a few seconds either way (it probes every second).
const READINESS_WITHIN_MS = 6_000;
// How long each outage lasts at least, admissions going on throughout: `npm run chaos` sets 20 s; the
// test command's outages last as long as their few waves of admissions take.
const OUTAGE_MS = Number(process.env.NETPIN_OUTAGE_SECONDS ?? '0') * 1000;

let cp: ControlPlane;
let fixture: Fixture | undefined;
let c: Clients;
let netpin: Netpin;

const spec = { containers: [{ name: 'app', image: 'registry.example/app:1' }], terminationGracePeriodSeconds: 0 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One allocating admission posted straight to netpin, and how long its answer took. */
async function allocate(name: string): Promise<{ ms: number; status: number; response: WireJson }> {
  const body = {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: `${name}-${Date.now()}`,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: NS,
      name,
      operation: 'CREATE',
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: NS, annotations: { 'netpin.io/pool': POOL } },
        spec,
      },
    },
  };
  const started = performance.now();
  const answer = await bounded(postReview(netpin, '/mutate', body), 15_000, `the answer to ${name}`);
  return { ms: performance.now() - started, status: answer.status, response: answer.json.response };
}

function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error(`no ${what} in ${ms} ms`)), ms)),
  );
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** GET of netpin's /healthz or /readyz. */
function probe(path: '/healthz' | '/readyz'): Promise<{ status: number; body: WireJson }> {
  return new Promise((resolve, reject) => {
    const req = request(`${netpin.url}${path}`, { ca: netpin.caPem, timeout: 2_000, agent: false }, (res) => {
      let data = '';
      res
        .setEncoding('utf8')
        .on('data', (d: string) => (data += d))
        .on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(data) }));
    });
    req.on('timeout', () => req.destroy(new Error(`${path} did not answer in 2 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** Waits until /readyz says `ready`, and returns how long that took and what it said. */
async function readiness(ready: boolean): Promise<{ ms: number; body: WireJson }> {
  const started = performance.now();
  const body = await waitFor(
    `/readyz to say ${ready ? 'ready' : 'not ready'}`,
    async () => {
      const r = await probe('/readyz');
      return (r.status === 200) === ready ? r.body : undefined;
    },
    READINESS_WITHIN_MS,
    100,
  );
  return { ms: performance.now() - started, body };
}

/** Allocating admissions in waves while the API server is away (at least `waves`, and for OUTAGE_MS): each must be an in-band error in time. */
async function admissionsDuringOutage(prefix: string, waves: number): Promise<Array<{ ms: number; message: string }>> {
  const answers: Array<{ ms: number; message: string }> = [];
  const started = performance.now();
  for (let w = 0; w < waves || performance.now() - started < OUTAGE_MS; w++) {
    const wave = await Promise.all(Array.from({ length: 4 }, (_, i) => allocate(`${prefix}-${w}-${i}`)));
    for (const a of wave) {
      expect(a.status).toBe(200);
      expect(a.response.allowed).toBe(false);
      expect(a.response.status.code).toBe(500);
      answers.push({ ms: a.ms, message: a.response.status.message });
    }
    await sleep(500);
  }
  return answers;
}

/** Pods created through the API server, and so through the webhooks registered there. */
async function createPods(prefix: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await c.core.createNamespacedPod({
      namespace: NS,
      body: { metadata: { name: `${prefix}-${i}`, annotations: { 'netpin.io/pool': POOL } }, spec } as V1Pod,
    });
  }
}

/** No claim lost or doubled: the pool's claims are exactly the pods' addresses, each once. */
async function claimsMatchPods(): Promise<void> {
  const settled = await waitFor(
    'the claims to equal the pods',
    async () => {
      const pods = await podsWithPrefix(c, NS, '');
      const podIps = pods.map((p) => calicoIps(p)[0]!).sort();
      const claimIps = (await listClaims(c, POOL)).map((x) => x.ip).sort();
      return JSON.stringify(podIps) === JSON.stringify(claimIps) ? { podIps, pods } : undefined;
    },
    (GRACE_SECONDS + 15) * 1000,
    500,
  );
  expect(new Set(settled.podIps).size).toBe(settled.pods.length);
  for (const p of settled.pods) expect(calicoIps(p)).toHaveLength(1);
}

beforeAll(async () => {
  fixture = await startFixture({
    namespaces: { [NS]: { 'netpin.io/enabled': 'true' } },
    pools: { [POOL]: { cidr: '10.120.0.0/24' } },
    netpin: { claimGraceSeconds: GRACE_SECONDS },
  });
  ({ cp, c, netpin } = fixture);
});

afterAll(async () => {
  // Whatever failed, the API server must not stay frozen: stop() could not end it cleanly.
  cp?.signalApiserver('SIGCONT');
  await fixture?.stop();
});

describe('kube-apiserver frozen (SIGSTOP)', () => {
  it('answers allocating admissions in band within 2 s, is not ready meanwhile, and loses or doubles no claim', async () => {
    await createPods('before', 3);
    expect((await probe('/readyz')).status).toBe(200);

    cp.signalApiserver('SIGSTOP');
    const outage = performance.now();
    let answers: Array<{ ms: number; message: string }>;
    let unready: { ms: number; body: WireJson };
    try {
      [answers, unready] = await Promise.all([admissionsDuringOutage('frozen', 3), readiness(false)]);
      // kubelet must not restart netpin for an outage that is not netpin's.
      expect((await probe('/healthz')).status).toBe(200);
    } finally {
      cp.signalApiserver('SIGCONT');
    }
    const lasted = performance.now() - outage;
    const ready = await readiness(true);

    for (const a of answers) {
      expect(a.ms).toBeLessThan(ANSWER_WITHIN_MS);
      expect(a.message).toMatch(
        /^netpin could not decide: claiming 10\.120\.0\.\d+ in IPPool outage: the API server did not answer within 1\.5 s$/,
      );
    }
    expect(unready.body.problems).toEqual(['API server: no answer to /readyz within 1 s']);
    const slowest = Math.max(...answers.map((a) => a.ms));
    console.log(
      `netpin, API server frozen: ${(lasted / 1000).toFixed(1)} s, ${answers.length} admissions answered in band, slowest ${slowest.toFixed(0)} ms; not ready after ${(unready.ms / 1000).toFixed(1)} s, ready ${(ready.ms / 1000).toFixed(1)} s after SIGCONT`,
    );

    await createPods('after-freeze', 3);
    await claimsMatchPods();
  });
});

describe('kube-apiserver stopped, then started again', () => {
  it('answers allocating admissions in band at once, is not ready until it is back, and loses or doubles no claim', async () => {
    await cp.stopApiserver();
    const outage = performance.now();
    let answers: Array<{ ms: number; message: string }>;
    let unready: { ms: number; body: WireJson };
    try {
      [answers, unready] = await Promise.all([admissionsDuringOutage('stopped', 2), readiness(false)]);
      expect((await probe('/healthz')).status).toBe(200);
    } finally {
      await cp.startApiserver();
    }
    const lasted = performance.now() - outage;
    const ready = await readiness(true);

    for (const a of answers) {
      expect(a.ms).toBeLessThan(ANSWER_WITHIN_MS);
      expect(a.message).toMatch(
        /^netpin could not decide: claiming 10\.120\.0\.\d+ in IPPool outage: fetch failed: connect ECONNREFUSED 127\.0\.0\.1:\d+$/,
      );
    }
    // Shutting down, kube-apiserver answers /readyz with 500 for a moment; then it refuses connections.
    expect(unready.body.problems).toEqual([
      expect.stringMatching(
        /^API server: (unreachable \(connect ECONNREFUSED 127\.0\.0\.1:\d+\)|\/readyz answers not ready)$/,
      ),
    ]);
    console.log(
      `netpin, API server stopped: ${(lasted / 1000).toFixed(1)} s, ${answers.length} admissions answered in band, slowest ${Math.max(...answers.map((a) => a.ms)).toFixed(0)} ms; not ready after ${(unready.ms / 1000).toFixed(1)} s, ready ${(ready.ms / 1000).toFixed(1)} s after it was ready again`,
    );

    await createPods('after-restart', 3);
    await claimsMatchPods();
  });
});
