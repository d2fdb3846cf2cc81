import { LRUCache } from 'lru-cache';
import {
  ADMISSION_DEADLINE_MS,
  ADMISSION_HARD_DEADLINE_MS,
  withDeadline,
  type ApiServerLiveness,
} from '../cluster/deadline.js';
import { ALLOCATED_KEY, EGRESS_ALLOCATED_KEY, KEYS } from '../intent/keys.js';
import type { EventNotice, EventSubject } from '../cluster/event-sink.js';
import { admitWith, type Admit, type AdmissionDeps } from './context.js';
import { admitBatch } from './batch.js';
import { admitDaemonSet } from './daemonsets.js';
import { validatePool } from './ippools.js';
import { mutatePod, validatePod } from './pods.js';
import { allowed, answer, complete, errored, isRefusal, type Answer, type Verdict } from './respond.js';
import { decodeReview, type AdmissionRequest, type AdmissionReview } from './review.js';
import { admitScale, admitWorkload } from './workloads.js';

export type Endpoint = 'mutate' | 'validate';

export interface Outcome {
  endpoint: Endpoint;
  kind: string;
  operation: string;
  result: 'allowed' | 'patched' | 'denied' | 'error' | 'replayed';
  /** Why a `denied` request was refused: the netpin.io key at fault, or `other`; undefined otherwise. A few known values only. */
  reason: string | undefined;
  seconds: number;
}

/** The reasons the metrics tell apart: a label takes a few known values only. */
const REASON_KEYS: ReadonlySet<string> = new Set([...Object.values(KEYS), ALLOCATED_KEY, EGRESS_ALLOCATED_KEY]);

/** The netpin.io key a refusal names first; `other` for the rest, such as an IPPool's problems. */
function denialReason(verdict: Verdict): string {
  const key = isRefusal(verdict) ? verdict.problems[0]?.key : undefined;
  return key !== undefined && REASON_KEYS.has(key) ? key : 'other';
}

export interface AdmissionOptions {
  /** How many answers to keep for replays of the same request uid. */
  replayCacheSize?: number;
  /** How many bytes of answers to keep for replays, as replayBytes() counts them; the least recent go first. */
  replayCacheBytes?: number;
  onOutcome?: (o: Outcome) => void;
  /** Whether the API server answers, so that a slow one is waited for past the deadline; none without a cluster. */
  apiServer?: ApiServerLiveness;
}

/**
 * The replay cache's byte limit, as replayBytes() counts (within 20 % of the heap it takes, measured).
 * An ordinary answer is small: a pinned pod's patch and warnings count 2 to 2.7 KiB, a refusal about
 * 1 KiB, so 10 000 ordinary answers (27 MiB at most) fit and the entry count binds first. The longest
 * refusal (a MESSAGE_CHARS message and its warnings) counts at most about 41 KiB: 800 of them fill it. Without
 * it, 10 000 refusals that each repeated a megabyte would have held 10 GiB.
 */
export const REPLAY_CACHE_BYTES = 32 * 1024 * 1024;

/**
 * An answer's weight in the replay cache: its strings at two bytes a character (V8 keeps most in one,
 * so this overcounts), and a fixed part for the objects around them.
 */
export function replayBytes(answer: Answer, key: string): number {
  let chars = key.length + (answer.patch?.length ?? 0) + (answer.status?.message?.length ?? 0);
  for (const w of answer.warnings ?? []) chars += w.length;
  return 2 * chars + 512;
}

/**
 * The admission layer: decodes a review, routes it by kind, and answers. It
 * knows nothing of HTTP; a review that cannot be decoded throws MalformedReview.
 */
export class Admission {
  // The API server may resend a review (a timeout, a retried call); the same uid gets the same answer
  // and, above all, does not claim a second address.
  private readonly replays: LRUCache<string, Answer>;

  constructor(
    readonly deps: AdmissionDeps,
    private readonly options: AdmissionOptions = {},
  ) {
    this.replays = new LRUCache({
      max: options.replayCacheSize ?? 10_000,
      maxSize: options.replayCacheBytes ?? REPLAY_CACHE_BYTES,
      sizeCalculation: replayBytes,
      ttl: 10 * 60_000,
    });
  }

  async review(endpoint: Endpoint, body: unknown): Promise<AdmissionReview> {
    const started = performance.now();
    const req = decodeReview(body);
    const key = `${endpoint}/${req.uid}`;
    let given = this.replays.get(key);
    let result: Outcome['result'] = 'replayed';
    let reason: string | undefined;
    if (!given) {
      const { index } = this.deps.allocator.ledger;
      const additions = index.additions;
      const verdict = await this.decide(endpoint, req);
      given = answer(verdict, this.deps.dialect);
      result = given.patch ? 'patched' : given.allowed ? 'allowed' : given.status?.code === 500 ? 'error' : 'denied';
      if (result === 'denied') reason = denialReason(verdict);
      // A dry run changes nothing, so it tells nothing either.
      const refusal = result === 'denied' && !req.dryRun ? refusalEvent(req, given.status!.message) : undefined;
      if (refusal) this.deps.events?.record(refusal);
      // Kept when something was claimed meanwhile (by this request, or by another: kept then too, which is
      // safe), and refusals, so that a resent one is not told twice. An allowed answer that claimed nothing
      // is the same answer when decided again, and cheaper than a cache entry. A dry run claims nothing,
      // and an error may clear on retry.
      const claimed = index.additions !== additions;
      if ((claimed || result === 'denied') && !req.dryRun) this.replays.set(key, given);
    }
    this.options.onOutcome?.({
      endpoint,
      kind: req.kind.kind,
      operation: req.operation,
      result,
      reason,
      seconds: (performance.now() - started) / 1000,
    });
    return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: complete(req.uid, given) };
  }

  private async decide(endpoint: Endpoint, req: AdmissionRequest): Promise<Verdict> {
    try {
      const admit = admitWith(this.deps);
      const route = async () => this.route(endpoint, req, admit);
      return await withDeadline(ADMISSION_DEADLINE_MS, route, ADMISSION_HARD_DEADLINE_MS, this.options.apiServer);
    } catch (e) {
      // A well-formed review always gets an in-band answer; the API server's failurePolicy decides what it means.
      this.deps.log?.error(
        // Cut as names are: a direct POST may send a megabyte of any of them.
        {
          err: e,
          uid: req.uid.slice(0, 253),
          kind: req.kind.kind.slice(0, 253),
          namespace: req.namespace?.slice(0, 253),
          name: req.name?.slice(0, 253),
        },
        'admission failed',
      );
      return errored(`netpin could not decide: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private route(endpoint: Endpoint, req: AdmissionRequest, admit: Admit): Promise<Verdict> | Verdict {
    const { group, kind } = req.kind;
    if (
      req.subResource === 'scale' &&
      req.resource?.group === 'apps' &&
      ['statefulsets', 'deployments'].includes(req.resource.resource)
    ) {
      return admitScale(req, admit, endpoint === 'mutate');
    }
    if (req.subResource) return allowed();
    if (group === '' && kind === 'Pod') return endpoint === 'mutate' ? mutatePod(req, admit) : validatePod(req, admit);
    if (group === 'apps' && (kind === 'Deployment' || kind === 'StatefulSet'))
      return admitWorkload(req, admit, endpoint === 'mutate');
    if (group === 'batch' && (kind === 'Job' || kind === 'CronJob')) return admitBatch(req, admit, kind);
    if (group === 'apps' && kind === 'DaemonSet') return admitDaemonSet(req, admit);
    if (group === 'netpin.io' && kind === 'IPPool' && endpoint === 'validate') return validatePool(req, admit);
    return allowed();
  }
}

const REFUSED: Partial<Record<AdmissionRequest['operation'], string>> = {
  CREATE: 'the creation',
  UPDATE: 'an update',
  DELETE: 'the deletion',
};

/**
 * A refusal, told on the object `kubectl describe` would show it on: a refused pod never exists, so
 * its controller (a ReplicaSet, a StatefulSet) when it has one, with the uid of the owner reference;
 * the workload a scale request is for; else the object itself, with its uid when it exists already.
 * A pod with neither a name nor a controller leaves nothing to name: no event.
 */
function refusalEvent(req: AdmissionRequest, message: string): EventNotice | undefined {
  const namespace = req.namespace ?? '';
  const object = req.object ?? req.oldObject ?? {};
  const name = req.name ?? object.metadata?.name ?? '';
  // Only a request about an object that exists carries it as stored.
  const uid = req.oldObject?.metadata?.uid;
  const refusal = (regarding: EventSubject, what: string): EventNotice => ({
    regarding,
    type: 'Warning',
    reason: 'Refused',
    action: 'Admit',
    note: `Refused ${what}: ${message}`,
  });
  if (req.subResource === 'scale') {
    const kind = req.resource?.resource === 'statefulsets' ? 'StatefulSet' : 'Deployment';
    return refusal(
      { apiVersion: 'apps/v1', kind, namespace, name, uid },
      `scaling to ${req.object?.spec?.replicas} replicas`,
    );
  }
  const { group, version, kind } = req.kind;
  const owner =
    kind === 'Pod' && req.operation === 'CREATE'
      ? object.metadata?.ownerReferences?.find((r) => r.controller)
      : undefined;
  if (owner) {
    const regarding = {
      apiVersion: owner.apiVersion ?? 'v1',
      kind: owner.kind,
      namespace,
      name: owner.name,
      uid: owner.uid,
    };
    return refusal(regarding, name ? `pod ${name}` : 'a new pod');
  }
  if (!name) return undefined;
  const apiVersion = group ? `${group}/${version}` : version;
  return refusal({ apiVersion, kind, namespace, name, uid }, REFUSED[req.operation] ?? req.operation);
}
