// What the recorder writes and when, apart from the writing itself (events.ts): identical events
// counted in one series, every name and note bounded, and the write rate.
import { LRUCache } from 'lru-cache';
import type { EventNotice } from './event-sink.js';

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
export function boundedNotice(notice: EventNotice): EventNotice {
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
