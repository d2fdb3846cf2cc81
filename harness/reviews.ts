// Shared by the admission and transport tests: an app over a MemoryLedger and a
// StaticClusterView built from pools YAML, AdmissionReview bodies to post to it (review-bodies.ts),
// and what its answers say.
import { expect } from 'vitest';
import fastJsonPatch, { type Operation as PatchOperation } from 'fast-json-patch';
import type { FastifyInstance } from 'fastify';
import type { AdmissionDeps } from '../src/admission/context.js';
import type { AdmissionResponse, AdmissionReview, KubeObject } from '../src/admission/review.js';
import type { CniName } from '../src/cni/dialect.js';
import { dialectFor } from '../src/cni/index.js';
import { StaticClusterView } from '../src/cluster/view.js';
import { parsePools } from '../src/config/pools-file.js';
import { Allocator } from '../src/ipam/allocator.js';
import { ownerKey } from '../src/ipam/claim.js';
import { MemoryLedger } from '../src/ipam/memory-ledger.js';
import { buildApp } from '../src/transport/app.js';
import type { CertificateSource } from '../src/transport/tls.js';
import type { WireJson } from './json.js';

export * from './review-bodies.js';

/**
 * Pools for most tests. Namespace shop (team=web) may use web and web-v6,
 * payments (team=db) may use db; tiny has two addresses and is open to all; out is an egress
 * pool open to all.
 */
export const POOLS = `
apiVersion: netpin.io/v1alpha1
kind: IPPool
metadata: { name: web }
spec:
  cidr: 10.20.0.0/24
  exclude: ["10.20.0.1"]
  namespaceSelector: { matchLabels: { team: web } }
  cni:
    calico: { pool: web-pool }
    kubeOvn: { subnet: web-subnet }
    antrea: { pool: web-pool }
    cilium: { pool: web-pool }
---
apiVersion: netpin.io/v1alpha1
kind: IPPool
metadata: { name: web-v6 }
spec:
  cidr: fd00:20::/120
  namespaceSelector: { matchLabels: { team: web } }
  cni:
    kubeOvn: { subnet: web-subnet }
    cilium: { pool: web-pool-v6 }
---
apiVersion: netpin.io/v1alpha1
kind: IPPool
metadata: { name: db }
spec:
  ranges: ["10.30.0.10-10.30.0.19"]
  namespaceSelector:
    matchExpressions: [{ key: team, operator: In, values: [db] }]
  cni:
    calico: { pool: db-pool }
    cilium: { pool: db-pool }
---
apiVersion: netpin.io/v1alpha1
kind: IPPool
metadata: { name: tiny }
spec:
  cidr: 10.40.0.0/30
  cni:
    calico: { pool: tiny-pool }
---
apiVersion: netpin.io/v1alpha1
kind: IPPool
metadata: { name: out }
spec:
  cidr: 203.0.113.0/28
  egress: { nodeSelector: { matchLabels: { egress: gateway } } }
---
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { team: web } }
---
apiVersion: v1
kind: Namespace
metadata: { name: payments, labels: { team: db } }
`;

export interface HarnessOptions {
  cni?: CniName;
  pools?: string;
  releaseOnDelete?: boolean;
  certificates?: CertificateSource;
  readiness?: () => string[];
  replayCacheSize?: number;
}

/** One posted review and its answer. */
export interface Answer {
  status: number;
  /** The raw body, for byte-for-byte comparisons. */
  body: string;
  /** The response of the AdmissionReview; undefined when the status is not 200. */
  response: AdmissionResponse;
  json: WireJson;
}

export interface Harness {
  app: FastifyInstance;
  ledger: MemoryLedger;
  cluster: StaticClusterView;
  deps: AdmissionDeps;
  mutate(body: unknown): Promise<Answer>;
  validate(body: unknown): Promise<Answer>;
  /** Every claim as address → owner key, sorted by address text. */
  held(): Record<string, string>;
}

/** The app as `netpin serve --ledger memory` builds it, from pools YAML instead of a file. */
export async function harness(options: HarnessOptions = {}): Promise<Harness> {
  const file = parsePools(options.pools ?? POOLS);
  const ledger = new MemoryLedger(file.pools);
  const cluster = new StaticClusterView();
  for (const [name, labels] of file.namespaces) cluster.setNamespace(name, labels, file.defaults.get(name));
  const deps: AdmissionDeps = {
    dialect: dialectFor(options.cni ?? 'calico'),
    allocator: new Allocator(ledger),
    cluster,
    releaseOnDelete: options.releaseOnDelete ?? true,
  };
  const app = await buildApp({
    deps,
    certificates: options.certificates,
    readiness: options.readiness,
    replayCacheSize: options.replayCacheSize,
  });
  return {
    app,
    ledger,
    cluster,
    deps,
    mutate: (body) => post(app, 'mutate', body),
    validate: (body) => post(app, 'validate', body),
    held: () => heldBy(ledger),
  };
}

export async function post(app: FastifyInstance, endpoint: 'mutate' | 'validate', body: unknown): Promise<Answer> {
  const res = await app.inject({ method: 'POST', url: `/${endpoint}`, payload: body as object });
  const json = res.headers['content-type']?.toString().startsWith('application/json') ? res.json() : undefined;
  return { status: res.statusCode, body: res.body, response: json?.response, json };
}

function heldBy(ledger: MemoryLedger): Record<string, string> {
  const claims = [...ledger.index.allClaims()].map((c) => [c.ip.toString(), ownerKey(c.owner)] as const);
  return Object.fromEntries(claims.sort(([a], [b]) => a.localeCompare(b)));
}

/** The JSONPatch of an answer, decoded from base64; [] when the answer has none. */
export function patchOf(response: AdmissionResponse): PatchOperation[] {
  if (response.patch === undefined) return [];
  expect(response.patchType).toBe('JSONPatch');
  return JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as PatchOperation[];
}

/** The object of a review after the answer's patch, applied as the API server would. */
export function patched(body: AdmissionReview, response: AdmissionResponse): KubeObject {
  const object = structuredClone(body.request!.object!);
  return fastJsonPatch.applyPatch(object, patchOf(response), true, false).newDocument;
}

/** The annotations a created pod ends up with. */
function annotationsAfter(body: AdmissionReview, response: AdmissionResponse): Record<string, string> {
  return patched(body, response).metadata?.annotations ?? {};
}

/** Asserts an in-band denial and returns its message. */
export function denial(answer: Answer): string {
  expect(answer.status).toBe(200);
  expect(answer.response.allowed).toBe(false);
  expect(answer.response.status?.code).toBe(403);
  return answer.response.status!.message;
}

/** Asserts an allowed answer with a patch, and returns the pod's annotations after it. */
export function admittedAnnotations(body: AdmissionReview, answer: Answer): Record<string, string> {
  expect(answer.status).toBe(200);
  expect(answer.response.status?.message).toBeUndefined();
  expect(answer.response.allowed).toBe(true);
  expect(answer.response.uid).toBe(body.request!.uid);
  return annotationsAfter(body, answer.response);
}
