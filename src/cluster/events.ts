import { hostname } from 'node:os';
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { EventNotice, EventSink, EventSubject } from './event-sink.js';
import type { Claim, Owner } from '../ipam/claim.js';
import { describeApiError, GROUP, statusOf, VERSION, withTimeout } from './kube.js';
import { microTime } from './lease.js';

/** reportingController of every event netpin writes: the webhook and its reconciler are one process. */
export const REPORTING_CONTROLLER = 'netpin.io/webhook';
/** The API server refuses a longer note; it counts bytes. */
const NOTE_LIMIT = 1024;
/** The API server refuses an Event name longer than a DNS subdomain. */
const NAME_LIMIT = 253;

export interface EventLimits {
  /** API writes (creates and series patches) per second, all events together, and how many may go at once after a lull. */
  writesPerSecond: number;
  burst: number;
  /** Writes waiting for their turn; past this, events are dropped. */
  queue: number;
  /** Series remembered; the least recently seen are forgotten first. */
  series: number;
  /** A repeat after this long without one starts a new Event (client-go's events.k8s.io recorder: 6 minutes). */
  seriesWindowMs: number;
  /** A series' count is written at most this often. */
  seriesWriteMs: number;
  /** Events waiting for their object to be created: how many at most, and for how long. */
  awaiting: number;
  awaitMs: number;
}

export const DEFAULT_LIMITS: EventLimits = {
  writesPerSecond: 5,
  burst: 20,
  queue: 256,
  series: 1_000,
  seriesWindowMs: 6 * 60_000,
  seriesWriteMs: 10_000,
  awaiting: 4_096,
  awaitMs: 2 * 60_000,
};

/** How long one write may take: a frozen API server must not hold the queue. */
const WRITE_TIMEOUT_MS = 5_000;

/** One Event object, and the identical occurrences it stands for. */
export interface Series {
  readonly notice: EventNotice;
  readonly name: string;
  readonly namespace: string;
  /** Milliseconds since the epoch: the first occurrence (eventTime) and the last (series.lastObservedTime). */
  readonly firstAt: number;
  lastAt: number;
  count: number;
  /** The count the API server was last sent (0: nothing yet), and when. */
  sent: number;
  sentAt: number;
  /** A write of the count is scheduled. */
  due: boolean;
}

/** What an occurrence asks for: a new Event, a write of the series' count at `patchAt`, or nothing (one is scheduled). */
export type Occurrence = { create: Series } | { series: Series; patchAt: number } | undefined;

/**
 * Identical events within a window are one Event that counts them in `series`, as client-go's
 * events.k8s.io recorder does. Unlike it, the note is part of what makes two events identical, so
 * that a refusal for a new reason is not hidden in the count of an old one.
 */
export class SeriesCache {
  private readonly series: LRUCache<string, Series>;
  private sequence = 0;

  constructor(
    private readonly limits: Pick<EventLimits, 'series' | 'seriesWindowMs' | 'seriesWriteMs'> = DEFAULT_LIMITS,
  ) {
    this.series = new LRUCache({ max: limits.series });
  }

  observe(notice: EventNotice, now: number): Occurrence {
    const r = notice.regarding;
    const key = JSON.stringify([
      r.apiVersion,
      r.kind,
      r.namespace,
      r.name,
      r.uid,
      notice.type,
      notice.reason,
      notice.action,
      notice.note,
    ]);
    const known = this.series.get(key);
    if (!known || now - known.lastAt > this.limits.seriesWindowMs) {
      const name = eventName(r.name, now, this.sequence++);
      // A cluster-scoped object's events go to default, as client-go puts them.
      const namespace = r.namespace || 'default';
      const created: Series = {
        notice,
        name,
        namespace,
        firstAt: now,
        lastAt: now,
        count: 1,
        sent: 0,
        sentAt: now,
        due: false,
      };
      this.series.set(key, created);
      return { create: created };
    }
    known.count++;
    known.lastAt = now;
    if (known.due) return undefined;
    known.due = true;
    return { series: known, patchAt: Math.max(now, known.sentAt + this.limits.seriesWriteMs) };
  }
}

/** A token bucket: `perSecond` on average, `burst` at once. */
export class TokenBucket {
  private tokens: number;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private at: number,
  ) {
    this.tokens = burst;
  }

  /** Takes a token and answers 0, or answers how many milliseconds until there is one. */
  take(now: number): number {
    this.tokens = Math.min(this.burst, this.tokens + (Math.max(0, now - this.at) * this.perSecond) / 1000);
    this.at = Math.max(this.at, now);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) * 1000) / this.perSecond);
  }
}

/**
 * An event as the recorder keeps it: its note cut to what the API server takes, and the names of its
 * object to what an object may have. Cut when it is recorded, before any queue, series or wait holds
 * it, so that what netpin keeps of an event never follows the size of the request that caused it.
 */
function boundedNotice(notice: EventNotice): EventNotice {
  const r = notice.regarding;
  const cut = (text: string) => (text.length > NAME_LIMIT ? text.slice(0, NAME_LIMIT) : text);
  return {
    ...notice,
    note: truncateNote(notice.note),
    regarding: {
      apiVersion: cut(r.apiVersion),
      kind: cut(r.kind),
      namespace: cut(r.namespace),
      name: cut(r.name),
      ...(r.uid !== undefined && { uid: cut(r.uid) }),
    },
  };
}

/** As client-go names events: the object's name and the time in hex; `sequence` keeps two in one millisecond apart. */
export function eventName(regarding: string, now: number, sequence: number): string {
  const stamp = (BigInt(now) * 1_000_000n + BigInt(sequence % 1_000_000)).toString(16);
  return `${(regarding || 'netpin').slice(0, NAME_LIMIT - stamp.length - 1)}.${stamp}`;
}

/** At most NOTE_LIMIT bytes of UTF-8, cut on a character. */
export function truncateNote(note: string): string {
  // NOTE_LIMIT characters are NOTE_LIMIT bytes at least: of a longer note, only that much is encoded.
  const bytes = Buffer.from(note.length > NOTE_LIMIT ? note.slice(0, NOTE_LIMIT + 1) : note);
  if (bytes.length <= NOTE_LIMIT) return note;
  // A cut inside a character decodes to U+FFFD; it goes, and '…' (3 bytes) takes its place.
  return `${bytes
    .subarray(0, NOTE_LIMIT - 3)
    .toString('utf8')
    .replace(/\uFFFD+$/, '')}…`;
}

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

/** Where a released claim is told: the pod, StatefulSet or workload that held it; the pool for a pod never seen. */
function releasedFrom(owner: Owner, pool: string): EventSubject {
  const { namespace, name } = owner;
  if (owner.kind === 'StatefulSet') return { apiVersion: 'apps/v1', kind: 'StatefulSet', namespace, name };
  if (owner.kind === 'Egress')
    return { apiVersion: owner.workload === 'Pod' ? 'v1' : 'apps/v1', kind: owner.workload, namespace, name };
  if (name) return { apiVersion: 'v1', kind: 'Pod', namespace, name };
  return { apiVersion: `${GROUP}/${VERSION}`, kind: 'IPPool', namespace: '', name: pool };
}

function releasedText(c: Claim): string {
  const o = c.owner;
  const what = `${o.kind === 'Egress' ? 'egress address ' : ''}${c.ip.toString()} from IPPool ${c.pool}`;
  if (o.kind === 'Pod' && !o.name) return `${what} (claimed for a pod in namespace ${o.namespace} that was never seen)`;
  return o.kind !== 'Pod' && o.ordinal !== undefined ? `${what} (ordinal ${o.ordinal})` : what;
}

/**
 * The Released events for the claims one sweep released: one per object that held them, named without
 * a uid, which claims do not keep: a pod or StatefulSet is gone by then anyway, or its claims would be held.
 */
export function releaseEvents(claims: readonly Claim[]): EventNotice[] {
  const byObject = new Map<string, { regarding: EventSubject; released: string[] }>();
  for (const c of claims) {
    const regarding = releasedFrom(c.owner, c.pool);
    const key = `${regarding.apiVersion}/${objectKey(regarding)}`;
    let entry = byObject.get(key);
    if (!entry) byObject.set(key, (entry = { regarding, released: [] }));
    entry.released.push(releasedText(c));
  }
  return [...byObject.values()].map(({ regarding, released }) => ({
    regarding,
    type: 'Normal',
    reason: 'Released',
    action: 'Release',
    note: `Released ${released.join(', ')}`,
  }));
}
