// The recorder: writes events.k8s.io/v1 Events for any EventNotice, in series and at a bounded rate
// (event-series.ts). What netpin tells is its callers' (admission, and netpin-events.ts).
import { hostname } from 'node:os';
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { EventNotice, EventSink, EventSubject } from './event-sink.js';
import {
  boundedNotice,
  DEFAULT_LIMITS,
  SeriesCache,
  TokenBucket,
  truncateNote,
  type EventLimits,
  type Series,
} from './event-series.js';
import { describeApiError, statusOf, withTimeout } from './kube.js';
import { microTime } from './lease.js';

/** reportingController of every event netpin writes: the webhook and its reconciler are one process. */
export const REPORTING_CONTROLLER = 'netpin.io/webhook';

/** How long one write may take: a frozen API server must not hold the queue. */
const WRITE_TIMEOUT_MS = 5_000;

export interface EventSeriesField {
  count: number;
  lastObservedTime: string;
}

/** An events.k8s.io/v1 Event. */
export interface EventObject {
  apiVersion: 'events.k8s.io/v1';
  kind: 'Event';
  metadata: { name: string; namespace: string };
  eventTime: string;
  series?: EventSeriesField;
  reportingController: string;
  reportingInstance: string;
  action: string;
  reason: string;
  type: EventNotice['type'];
  note: string;
  regarding: { apiVersion: string; kind: string; name: string; namespace?: string; uid?: string };
}

function seriesField(s: Series): EventSeriesField {
  return { count: s.count, lastObservedTime: microTime(new Date(s.lastAt)) };
}

/** The Event for a series as it stands; a count of two or more goes in at creation too. */
export function eventObject(s: Series, reportingInstance: string): EventObject {
  const { notice } = s;
  const r = notice.regarding;
  return {
    apiVersion: 'events.k8s.io/v1',
    kind: 'Event',
    metadata: { name: s.name, namespace: s.namespace },
    eventTime: microTime(new Date(s.firstAt)),
    ...(s.count > 1 && { series: seriesField(s) }),
    reportingController: REPORTING_CONTROLLER,
    reportingInstance,
    action: notice.action,
    reason: notice.reason,
    type: notice.type,
    note: truncateNote(notice.note),
    regarding: {
      apiVersion: r.apiVersion,
      kind: r.kind,
      name: r.name,
      ...(r.namespace && { namespace: r.namespace }),
      ...(r.uid && { uid: r.uid }),
    },
  };
}

/** The two calls the recorder makes, apart from it so that it can be tested without an API server. */
export interface EventWriter {
  /** Resolves once the Event exists: a create that landed before (HTTP 409) counts. */
  create(event: EventObject): Promise<void>;
  /** Resolves false when the Event is gone (the API server keeps events an hour by default) or was never created. */
  patchSeries(namespace: string, name: string, series: EventSeriesField): Promise<boolean>;
}

const EVENTS = { group: 'events.k8s.io', version: 'v1', plural: 'events' } as const;

/**
 * Through the generic object API with plain JSON, as for Leases: the typed client writes
 * MicroTime (eventTime) with milliseconds, which the API server refuses.
 */
export function kubeEventWriter(kc: KubeConfig, timeoutMs = WRITE_TIMEOUT_MS): EventWriter {
  const api = kc.makeApiClient(CustomObjectsApi);
  const options = withTimeout(timeoutMs);
  return {
    async create(event) {
      try {
        await api.createNamespacedCustomObject(
          { ...EVENTS, namespace: event.metadata.namespace, body: event },
          options,
        );
      } catch (e) {
        if (statusOf(e) !== 409) throw e;
      }
    },
    async patchSeries(namespace, name, series) {
      try {
        const body = [{ op: 'add', path: '/series', value: series }];
        await api.patchNamespacedCustomObject({ ...EVENTS, namespace, name, body }, options);
        return true;
      } catch (e) {
        if (statusOf(e) === 404) return false;
        throw e;
      }
    },
  };
}

export interface RecorderOptions {
  limits?: EventLimits;
  log?: Logger;
  /** reportingInstance: the pod's name in a cluster. */
  instance?: string;
  now?: () => number;
}

type Named = Pick<EventSubject, 'kind' | 'namespace' | 'name'>;
const objectKey = (o: Named) => `${o.kind}/${o.namespace}/${o.name}`;

/**
 * Writes events.k8s.io/v1 Events without ever holding up its caller: record() only queues. Identical
 * events become one Event with a count (SeriesCache); writes go one at a time, at most
 * `writesPerSecond`; what does not fit in the queue, or fails, is dropped and logged, never thrown.
 */
export class EventRecorder implements EventSink {
  private readonly series: SeriesCache;
  private readonly bucket: TokenBucket;
  private readonly queue: Series[] = [];
  // Expiry by this.now rather than lru-cache's ttl, which keeps a clock of its own.
  private readonly awaiting: LRUCache<string, { notice: EventNotice; until: number }>;
  private readonly limits: EventLimits;
  private readonly now: () => number;
  private readonly instance: string;
  private draining = false;
  private stopped = false;
  // Logged at warn once, then at debug until it clears: a down API server must not flood the log.
  private failing = false;
  private overflowing = false;

  constructor(
    private readonly writer: EventWriter,
    private readonly options: RecorderOptions = {},
  ) {
    this.limits = options.limits ?? DEFAULT_LIMITS;
    this.now = options.now ?? Date.now;
    this.instance = (options.instance ?? hostname()).slice(0, 128);
    this.series = new SeriesCache(this.limits);
    this.bucket = new TokenBucket(this.limits.writesPerSecond, this.limits.burst, this.now());
    this.awaiting = new LRUCache({ max: this.limits.awaiting });
  }

  record(event: EventNotice): void {
    if (this.stopped) return;
    const notice = boundedNotice(event);
    const now = this.now();
    const occurrence = this.series.observe(notice, now);
    if (!occurrence) return;
    if ('create' in occurrence) this.enqueue(occurrence.create);
    else setTimeout(() => this.enqueue(occurrence.series), occurrence.patchAt - now).unref();
  }

  recordWhenCreated(event: EventNotice): void {
    if (this.stopped) return;
    const notice = boundedNotice(event);
    this.awaiting.set(objectKey(notice.regarding), { notice, until: this.now() + this.limits.awaitMs });
  }

  /** An object as a watch shows it: an event that waits for it is recorded now, with its uid. */
  observed(object: Named & { uid: string }): void {
    const key = objectKey(object);
    const waiting = this.awaiting.get(key);
    if (!waiting) return;
    if (waiting.until < this.now()) {
      this.awaiting.delete(key);
      return;
    }
    const { notice } = waiting;
    // Another object of that name: the one admitted may still come.
    if (notice.regarding.uid !== undefined && notice.regarding.uid !== object.uid) return;
    this.awaiting.delete(key);
    this.record({ ...notice, regarding: { ...notice.regarding, uid: object.uid } });
  }

  /** Drops what waits; a write under way ends by its timeout. */
  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
    this.awaiting.clear();
  }

  private enqueue(s: Series): void {
    if (this.stopped) return;
    if (this.queue.length >= this.limits.queue) {
      // A later repeat of a series asks for its count to be written again.
      s.due = false;
      if (!this.overflowing)
        this.options.log?.warn({ queue: this.limits.queue }, 'too many Events to write: dropping some');
      this.overflowing = true;
      return;
    }
    this.queue.push(s);
    void this.drain();
  }

  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    while (!this.stopped && this.queue.length > 0) {
      const next = this.queue[0]!;
      // Created and not repeated since (or written by an earlier job): nothing to send.
      if (next.sent > 0 && next.count === next.sent) {
        this.queue.shift();
        continue;
      }
      const wait = this.bucket.take(this.now());
      if (wait > 0) {
        await new Promise((r) => setTimeout(r, wait).unref());
        continue;
      }
      await this.write(this.queue.shift()!);
    }
    this.draining = false;
    if (this.queue.length === 0) this.overflowing = false;
  }

  private async write(s: Series): Promise<void> {
    const event = eventObject(s, this.instance);
    const count = s.count;
    s.due = false;
    s.sentAt = this.now();
    try {
      const patched = s.sent > 0 && (await this.writer.patchSeries(s.namespace, s.name, seriesField(s)));
      if (!patched) await this.writer.create(event);
      s.sent = count;
      this.failing = false;
    } catch (e) {
      const fields = { event: `${s.namespace}/${s.name}`, reason: s.notice.reason, err: describeApiError(e) };
      if (this.failing) this.options.log?.debug(fields, 'could not write an Event');
      else
        this.options.log?.warn(
          fields,
          'could not write an Event, dropped; further failures go to debug until a write succeeds',
        );
      this.failing = true;
    }
  }
}
