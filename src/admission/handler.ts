import { LRUCache } from 'lru-cache';
import { ADMISSION_DEADLINE_MS, withDeadline } from '../cluster/deadline.js';
import type { AdmissionDeps } from './context.js';
import { validatePool } from './ippools.js';
import { mutatePod, validatePod } from './pods.js';
import { complete, errored, allowed, type Verdict } from './respond.js';
import { decodeReview, type AdmissionRequest, type AdmissionReview } from './review.js';
import { admitScale, admitWorkload } from './workloads.js';

export type Endpoint = 'mutate' | 'validate';

export interface Outcome {
  endpoint: Endpoint;
  kind: string;
  operation: string;
  result: 'allowed' | 'patched' | 'denied' | 'error' | 'replayed';
  seconds: number;
}

export interface AdmissionOptions {
  /** How many answers to keep for replays of the same request uid. */
  replayCacheSize?: number;
  onOutcome?: (o: Outcome) => void;
}

/**
 * The admission layer: decodes a review, routes it by kind, and answers. It
 * knows nothing of HTTP; a review that cannot be decoded throws MalformedReview.
 */
export class Admission {
  // The API server may resend a review (a timeout, a retried call); the same uid gets the same answer
  // and, above all, does not claim a second address.
  private readonly replays: LRUCache<string, Verdict>;

  constructor(
    readonly deps: AdmissionDeps,
    private readonly options: AdmissionOptions = {},
  ) {
    this.replays = new LRUCache({ max: options.replayCacheSize ?? 10_000, ttl: 10 * 60_000 });
  }

  async review(endpoint: Endpoint, body: unknown): Promise<AdmissionReview> {
    const started = process.hrtime.bigint();
    const req = decodeReview(body);
    const key = `${endpoint}/${req.uid}`;
    let verdict = this.replays.get(key);
    let result: Outcome['result'] = 'replayed';
    if (!verdict) {
      verdict = await this.decide(endpoint, req);
      result = verdict.patch ? 'patched' : verdict.allowed ? 'allowed' : verdict.status?.code === 500 ? 'error' : 'denied';
      // A dry run claims nothing, so it is not worth replaying; an error may clear on retry.
      if (!req.dryRun && result !== 'error') this.replays.set(key, verdict);
    }
    this.options.onOutcome?.({
      endpoint,
      kind: req.kind.kind,
      operation: req.operation,
      result,
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
    });
    return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: complete(req.uid, verdict) };
  }

  private async decide(endpoint: Endpoint, req: AdmissionRequest): Promise<Verdict> {
    try {
      return await withDeadline(ADMISSION_DEADLINE_MS, async () => this.route(endpoint, req));
    } catch (e) {
      // A well-formed review always gets an in-band answer; the API server's failurePolicy decides what it means.
      this.deps.log?.error({ err: e, uid: req.uid, kind: req.kind.kind, namespace: req.namespace, name: req.name }, 'admission failed');
      return errored(`netpin could not decide: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private route(endpoint: Endpoint, req: AdmissionRequest): Promise<Verdict> | Verdict {
    const { group, kind } = req.kind;
    if (req.subResource === 'scale' && req.resource?.group === 'apps' && ['statefulsets', 'deployments'].includes(req.resource.resource)) {
      return admitScale(req, this.deps, endpoint === 'mutate');
    }
    if (req.subResource) return allowed();
    if (group === '' && kind === 'Pod') return endpoint === 'mutate' ? mutatePod(req, this.deps) : validatePod(req, this.deps);
    if (group === 'apps' && (kind === 'Deployment' || kind === 'StatefulSet')) return admitWorkload(req, this.deps, endpoint === 'mutate');
    if (group === 'netpin.io' && kind === 'IPPool' && endpoint === 'validate') return validatePool(req, this.deps);
    return allowed();
  }
}
