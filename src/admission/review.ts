import { isObject } from '../config/manifest.js';

/** The parts of admission.k8s.io/v1 AdmissionReview that netpin reads and writes. */
export type Operation = 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';

interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    generateName?: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: Array<{
      apiVersion?: string;
      kind: string;
      name: string;
      uid?: string;
      controller?: boolean;
      blockOwnerDeletion?: boolean;
    }>;
    [k: string]: unknown;
  };
  // Typed loosely on purpose: a review may carry anything, and each reader checks the fields it uses.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Pod, Deployment, StatefulSet and IPPool specs alike
  spec?: any;
  [k: string]: unknown;
}

export interface AdmissionRequest {
  uid: string;
  kind: GroupVersionKind;
  resource?: { group: string; version: string; resource: string };
  subResource?: string;
  name?: string;
  namespace?: string;
  operation: Operation;
  userInfo?: { username?: string };
  object?: KubeObject | null;
  oldObject?: KubeObject | null;
  dryRun?: boolean;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: { code: number; message: string; reason?: string };
  patchType?: 'JSONPatch';
  patch?: string;
  warnings?: string[];
}

export interface AdmissionReview {
  apiVersion: 'admission.k8s.io/v1';
  kind: 'AdmissionReview';
  request?: AdmissionRequest;
  response?: AdmissionResponse;
}

/** A review the API server could not have sent: answered with HTTP 400, not in-band. */
export class MalformedReview extends Error {}

const OPERATIONS: readonly string[] = ['CREATE', 'UPDATE', 'DELETE', 'CONNECT'];

/** Checks the envelope and the fields netpin relies on, so that handlers can trust their types. */
export function decodeReview(body: unknown): AdmissionRequest {
  if (!isObject(body)) throw new MalformedReview('body is not a JSON object');
  const review = body;
  if (review.apiVersion !== 'admission.k8s.io/v1') {
    throw new MalformedReview(
      `apiVersion must be admission.k8s.io/v1, got ${JSON.stringify(review.apiVersion ?? null)}`,
    );
  }
  if (review.kind !== 'AdmissionReview')
    throw new MalformedReview(`kind must be AdmissionReview, got ${JSON.stringify(review.kind ?? null)}`);
  const req = review.request as Record<string, unknown> | undefined;
  if (!isObject(req)) throw new MalformedReview('request is missing');
  if (typeof req.uid !== 'string' || req.uid === '') throw new MalformedReview('request.uid is missing');
  const kind = req.kind as Record<string, unknown> | undefined;
  if (!kind || typeof kind.kind !== 'string' || typeof kind.version !== 'string' || typeof kind.group !== 'string') {
    throw new MalformedReview('request.kind must have group, version and kind');
  }
  if (typeof req.operation !== 'string' || !OPERATIONS.includes(req.operation)) {
    throw new MalformedReview(`request.operation must be one of ${OPERATIONS.join(', ')}`);
  }
  for (const field of ['object', 'oldObject'] as const) {
    const o = req[field];
    if (o !== undefined && o !== null && (typeof o !== 'object' || Array.isArray(o)))
      throw new MalformedReview(`request.${field} is not an object`);
    const meta = (o as KubeObject | null | undefined)?.metadata;
    if (meta !== undefined && (meta === null || typeof meta !== 'object' || Array.isArray(meta))) {
      throw new MalformedReview(`request.${field}.metadata is not an object`);
    }
    if (meta?.annotations !== undefined && !isStringMap(meta.annotations)) {
      throw new MalformedReview(`request.${field}.metadata.annotations must map strings to strings`);
    }
    // Read by every handler: which pod or workload it is, its labels, and the controller that owns it.
    for (const key of ['name', 'generateName', 'namespace'] as const) {
      if (meta?.[key] !== undefined && typeof meta[key] !== 'string')
        throw new MalformedReview(`request.${field}.metadata.${key} is not a string`);
    }
    if (meta?.labels !== undefined && !isStringMap(meta.labels))
      throw new MalformedReview(`request.${field}.metadata.labels must map strings to strings`);
    const refs: unknown = meta?.ownerReferences;
    if (
      refs !== undefined &&
      !(
        Array.isArray(refs) &&
        refs.every((r) => isObject(r) && typeof r.kind === 'string' && typeof r.name === 'string')
      )
    ) {
      throw new MalformedReview(
        `request.${field}.metadata.ownerReferences must be a list of references with a kind and a name`,
      );
    }
    // A workload's pod template carries the intent too; a non-string there would surface as a 500.
    const template = (o as KubeObject | null | undefined)?.spec?.template?.metadata?.annotations;
    if (template !== undefined && template !== null && !isStringMap(template)) {
      throw new MalformedReview(`request.${field}.spec.template.metadata.annotations must map strings to strings`);
    }
  }
  if ((req.operation === 'CREATE' || req.operation === 'UPDATE') && (req.object === undefined || req.object === null)) {
    throw new MalformedReview(`request.object is missing for ${req.operation}`);
  }
  for (const field of ['namespace', 'name', 'subResource'] as const) {
    if (req[field] !== undefined && typeof req[field] !== 'string')
      throw new MalformedReview(`request.${field} is not a string`);
  }
  const resource = req.resource as Record<string, unknown> | undefined;
  if (
    resource !== undefined &&
    (!isObject(resource) || ['group', 'version', 'resource'].some((k) => typeof resource[k] !== 'string'))
  ) {
    throw new MalformedReview('request.resource must have group, version and resource');
  }
  return req as unknown as AdmissionRequest;
}

function isStringMap(v: unknown): v is Record<string, string> {
  return isObject(v) && Object.values(v).every((x) => typeof x === 'string');
}
