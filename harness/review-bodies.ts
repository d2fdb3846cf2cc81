// AdmissionReview bodies as the API server sends them: pods, their updates, scale and deletion,
// Deployments, StatefulSets and IPPools, each with a fresh uid unless one is given.
import { randomUUID } from 'node:crypto';
import type { AdmissionRequest, AdmissionReview, KubeObject, Operation } from '../src/admission/review.js';

type RequestFields = Partial<AdmissionRequest> & Pick<AdmissionRequest, 'kind' | 'operation'>;

/** An AdmissionReview around a request; a fresh uid unless one is given. */
export function review(request: RequestFields): AdmissionReview {
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: randomUUID(), ...request } };
}

const POD_KIND = { group: '', version: 'v1', kind: 'Pod' };

export interface PodFields {
  name?: string;
  generateName?: string;
  namespace?: string;
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  /** The controller's kind and name, as ownerReferences[0] with controller: true. */
  owner?: { kind: string; name: string };
  /** The node a DaemonSet's pod is for, as the DaemonSet controller writes it in the node affinity. */
  node?: string;
}

export function pod(f: PodFields = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...(f.name !== undefined && { name: f.name }),
      ...(f.generateName !== undefined && { generateName: f.generateName }),
      namespace: f.namespace ?? 'shop',
      ...(f.labels && { labels: f.labels }),
      ...(f.annotations && { annotations: f.annotations }),
      ...(f.owner && {
        ownerReferences: [
          {
            apiVersion: 'apps/v1',
            kind: f.owner.kind,
            name: f.owner.name,
            uid: `uid-${f.owner.name}`,
            controller: true,
          },
        ],
      }),
    },
    spec: {
      containers: [{ name: 'app', image: 'registry.example/app:1.0' }],
      ...(f.node !== undefined && { affinity: nodeAffinity(f.node) }),
    },
  };
}

/** The required node affinity by which the DaemonSet controller pins its pod to `node`. */
function nodeAffinity(node: string) {
  const term = { matchFields: [{ key: 'metadata.name', operator: 'In', values: [node] }] };
  return { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [term] } } };
}

/** A pod of DaemonSet `ds` for `node`, as its controller creates it: generateName, ownerReference and affinity. */
export function daemonSetPodCreate(ds: string, node: string, f: PodFields & Extra = {}): AdmissionReview {
  return podCreate({ generateName: `${ds}-`, owner: { kind: 'DaemonSet', name: ds }, node, ...f });
}

type Extra = { uid?: string; dryRun?: boolean };

export function podCreate(f: PodFields & Extra = {}): AdmissionReview {
  const object = pod(f);
  return review({
    kind: POD_KIND,
    operation: 'CREATE',
    namespace: object.metadata!.namespace,
    name: f.name,
    object,
    ...extra(f),
  });
}

/** A pod UPDATE: `stored` as it is, `changed` as the client wants it (kubectl annotate, label, apply). */
export function podUpdate(stored: KubeObject, changed: KubeObject, e: Extra = {}): AdmissionReview {
  return review({
    kind: POD_KIND,
    operation: 'UPDATE',
    namespace: stored.metadata?.namespace,
    name: stored.metadata?.name,
    object: changed,
    oldObject: stored,
    ...extra(e),
  });
}

/** A scale subresource UPDATE, as `kubectl scale` and the HorizontalPodAutoscaler send it. */
export function scaleUpdate(
  resource: 'deployments' | 'statefulsets',
  name: string,
  replicas: number,
  namespace = 'shop',
): AdmissionReview {
  const scale = { apiVersion: 'autoscaling/v1', kind: 'Scale', metadata: { name, namespace }, spec: { replicas } };
  return review({
    kind: { group: 'autoscaling', version: 'v1', kind: 'Scale' },
    resource: { group: 'apps', version: 'v1', resource },
    subResource: 'scale',
    operation: 'UPDATE',
    namespace,
    name,
    object: scale,
    oldObject: scale,
  });
}

/** The DELETE the API server sends for a pod: oldObject is the pod as stored, object is null. */
export function podDelete(stored: KubeObject, e: Extra = {}): AdmissionReview {
  return review({
    kind: POD_KIND,
    operation: 'DELETE',
    namespace: stored.metadata?.namespace,
    name: stored.metadata?.name,
    object: null,
    oldObject: stored,
    ...extra(e),
  });
}

export interface WorkloadFields {
  name?: string;
  namespace?: string;
  replicas?: number;
  ordinalsStart?: number;
  /** spec.template.metadata.annotations */
  annotations?: Record<string, string>;
  /** The workload's own metadata.annotations. */
  ownAnnotations?: Record<string, string>;
  /** A Deployment's spec.strategy; absent, netpin reads it as the API server's default (RollingUpdate, maxSurge 25%). */
  strategy?: { type: string; rollingUpdate?: { maxSurge?: number | string; maxUnavailable?: number | string } };
}

type WorkloadKind = 'Deployment' | 'StatefulSet' | 'DaemonSet';

function workload(kind: WorkloadKind, f: WorkloadFields = {}): KubeObject {
  const name = f.name ?? 'web';
  return {
    apiVersion: 'apps/v1',
    kind,
    metadata: { name, namespace: f.namespace ?? 'shop', ...(f.ownAnnotations && { annotations: f.ownAnnotations }) },
    spec: {
      ...(kind !== 'DaemonSet' && { replicas: f.replicas ?? 1 }),
      ...(f.strategy && { strategy: f.strategy }),
      ...(f.ordinalsStart !== undefined && { ordinals: { start: f.ordinalsStart } }),
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name }, ...(f.annotations && { annotations: f.annotations }) },
        spec: { containers: [{ name: 'app', image: 'app' }] },
      },
    },
  };
}

export function workloadReview(
  kind: WorkloadKind,
  operation: Operation,
  f: WorkloadFields & Extra = {},
): AdmissionReview {
  const object = workload(kind, f);
  const meta = object.metadata!;
  const gvk = { group: 'apps', version: 'v1', kind };
  if (operation === 'DELETE')
    return review({
      kind: gvk,
      operation,
      namespace: meta.namespace,
      name: meta.name,
      object: null,
      oldObject: object,
      ...extra(f),
    });
  return review({
    kind: gvk,
    operation,
    namespace: meta.namespace,
    name: meta.name,
    object,
    ...(operation === 'UPDATE' && { oldObject: object }),
    ...extra(f),
  });
}

export const statefulSet = (operation: Operation, f: WorkloadFields & Extra = {}) =>
  workloadReview('StatefulSet', operation, f);
export const daemonSet = (operation: Operation, f: WorkloadFields & Extra = {}) =>
  workloadReview('DaemonSet', operation, f);
export const deployment = (operation: Operation, f: WorkloadFields & Extra = {}) =>
  workloadReview('Deployment', operation, f);

export interface BatchFields {
  name?: string;
  namespace?: string;
  /** The Job's spec.parallelism (a CronJob's jobTemplate's); absent, as the API server defaults it: 1. */
  parallelism?: number;
  /** A CronJob's spec.concurrencyPolicy; absent, as the API server defaults it: Allow. */
  concurrencyPolicy?: 'Allow' | 'Forbid' | 'Replace';
  /** The pod template's metadata.annotations. */
  annotations?: Record<string, string>;
  /** The object's own metadata.annotations. */
  ownAnnotations?: Record<string, string>;
}

function jobSpec(f: BatchFields): Record<string, unknown> {
  return {
    ...(f.parallelism !== undefined && { parallelism: f.parallelism }),
    template: {
      metadata: { ...(f.annotations && { annotations: f.annotations }) },
      spec: { restartPolicy: 'Never', containers: [{ name: 'app', image: 'app' }] },
    },
  };
}

/** A batch/v1 Job or CronJob review; an UPDATE's oldObject is `old`'s object, else the same object. */
function batchReview(
  kind: 'Job' | 'CronJob',
  operation: Operation,
  f: BatchFields & Extra = {},
  old?: BatchFields,
): AdmissionReview {
  const make = (x: BatchFields): KubeObject => ({
    apiVersion: 'batch/v1',
    kind,
    metadata: {
      name: x.name ?? 'backup',
      namespace: x.namespace ?? 'shop',
      ...(x.ownAnnotations && { annotations: x.ownAnnotations }),
    },
    spec:
      kind === 'Job'
        ? jobSpec(x)
        : {
            schedule: '* * * * *',
            ...(x.concurrencyPolicy && { concurrencyPolicy: x.concurrencyPolicy }),
            jobTemplate: { spec: jobSpec(x) },
          },
  });
  const object = make(f);
  return review({
    kind: { group: 'batch', version: 'v1', kind },
    operation,
    namespace: object.metadata!.namespace,
    name: object.metadata!.name,
    object,
    ...(operation === 'UPDATE' && { oldObject: old ? make(old) : object }),
    ...extra(f),
  });
}

export const job = (operation: Operation, f: BatchFields & Extra = {}, old?: BatchFields) =>
  batchReview('Job', operation, f, old);
export const cronJob = (operation: Operation, f: BatchFields & Extra = {}, old?: BatchFields) =>
  batchReview('CronJob', operation, f, old);

/** An IPPool review: `spec` is the new object's, `oldSpec` the stored one's (UPDATE, DELETE). */
export function ippoolReview(operation: Operation, name: string, spec?: object, oldSpec?: object): AdmissionReview {
  const obj = (s: object | undefined) =>
    s === undefined ? null : { apiVersion: 'netpin.io/v1alpha1', kind: 'IPPool', metadata: { name }, spec: s };
  return review({
    kind: { group: 'netpin.io', version: 'v1alpha1', kind: 'IPPool' },
    operation,
    name,
    object: obj(spec),
    oldObject: obj(oldSpec),
  });
}

function extra(e: Extra): Partial<AdmissionRequest> {
  return { ...(e.uid !== undefined && { uid: e.uid }), ...(e.dryRun !== undefined && { dryRun: e.dryRun }) };
}
