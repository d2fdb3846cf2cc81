import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Logger } from 'pino';
import type { EventNotice } from '../../src/cluster/event-sink.js';
import {
  DEFAULT_LIMITS,
  eventName,
  SeriesCache,
  TokenBucket,
  truncateNote,
  type EventLimits,
} from '../../src/cluster/event-series.js';
import {
  EventRecorder,
  eventObject,
  kubeEventWriter,
  type EventObject,
  type EventSeriesField,
  type EventWriter,
} from '../../src/cluster/events.js';
import { frozenApiServer } from '../../harness/frozen-api.js';

const T0 = Date.UTC(2026, 0, 1);

function refusal(note = 'Refused a new pod: IPPool one has no free IPv4 address', uid = 'rs-uid'): EventNotice {
  return {
    regarding: { apiVersion: 'apps/v1', kind: 'ReplicaSet', namespace: 'shop', name: 'web-5d8f', uid },
    type: 'Warning',
    reason: 'Refused',
    action: 'Admit',
    note,
  };
}

describe('a series of identical events', () => {
  const limits = { series: 3, seriesWindowMs: 60_000, seriesWriteMs: 10_000 };

  it('is created once, then its count is written at most every seriesWriteMs', () => {
    const cache = new SeriesCache(limits);
    const first = cache.observe(refusal(), T0);
    expect(first && 'create' in first).toBe(true);
    const second = cache.observe(refusal(), T0 + 1_000);
    expect(second).toMatchObject({ patchAt: T0 + 10_000 });
    // A write is scheduled already: the repeats only count.
    expect(cache.observe(refusal(), T0 + 2_000)).toBeUndefined();
    expect(cache.observe(refusal(), T0 + 3_000)).toBeUndefined();
    if (!second || !('series' in second)) throw new Error('expected a series');
    expect(second.series).toMatchObject({ count: 4, firstAt: T0, lastAt: T0 + 3_000 });
  });

  it('differs by object, uid, reason or note: a new reason is not hidden in an old count', () => {
    const cache = new SeriesCache({ ...limits, series: 10 });
    const created = [
      refusal(),
      refusal('Refused a new pod: netpin.io/pool (CNI Calico): IPPool nope does not exist'),
      refusal(undefined, 'another-uid'),
      { ...refusal(), reason: 'Other' },
    ].map((n) => cache.observe(n, T0));
    expect(created.every((o) => o && 'create' in o)).toBe(true);
  });

  it('ends after seriesWindowMs without a repeat: the next one is a new Event', () => {
    const cache = new SeriesCache(limits);
    const first = cache.observe(refusal(), T0);
    const later = cache.observe(refusal(), T0 + limits.seriesWindowMs + 1);
    if (!first || !('create' in first) || !later || !('create' in later)) throw new Error('expected two creates');
    expect(later.create.name).not.toBe(first.create.name);
    expect(later.create.count).toBe(1);
  });

  it('is forgotten, least recently seen first, past `series` of them', () => {
    const cache = new SeriesCache(limits);
    for (const note of ['a', 'b', 'c', 'd']) cache.observe(refusal(note), T0);
    expect(cache.observe(refusal('d'), T0 + 1)).toMatchObject({ patchAt: T0 + 10_000 });
    expect(cache.observe(refusal('a'), T0 + 1)).toHaveProperty('create');
  });
});

describe('the write rate', () => {
  it('allows a burst, then perSecond on average', () => {
    const bucket = new TokenBucket(5, 3, T0);
    expect([0, 1, 2].map(() => bucket.take(T0))).toEqual([0, 0, 0]);
    expect(bucket.take(T0)).toBe(200);
    expect(bucket.take(T0 + 200)).toBe(0);
    expect(bucket.take(T0 + 200)).toBe(200);
    // Idle for long: the burst again, no more.
    expect([0, 1, 2, 3].map(() => bucket.take(T0 + 60_000))).toEqual([0, 0, 0, 200]);
  });
});

describe('an Event object', () => {
  it('is named after its object and the time, within a DNS subdomain, and apart within one millisecond', () => {
    expect(eventName('web-5d8f', T0, 0)).toMatch(/^web-5d8f\.[0-9a-f]+$/);
    expect(eventName('web-5d8f', T0, 1)).not.toBe(eventName('web-5d8f', T0, 0));
    expect(eventName('x'.repeat(253), T0, 0).length).toBeLessThanOrEqual(253);
  });

  it('has a note of at most 1024 bytes, cut on a character', () => {
    expect(truncateNote('short')).toBe('short');
    for (const text of ['a'.repeat(2_000), 'é'.repeat(700), '😀'.repeat(300)]) {
      const note = truncateNote(text);
      expect(Buffer.byteLength(note)).toBeLessThanOrEqual(1024);
      expect(note.endsWith('…')).toBe(true);
      expect(note).not.toContain('\uFFFD');
    }
  });

  it('says who reports it, carries eventTime in microseconds, and names its object with the uid when known', () => {
    const cache = new SeriesCache();
    const o = cache.observe(refusal(), T0);
    if (!o || !('create' in o)) throw new Error('expected a create');
    const event = eventObject(o.create, 'netpin-7c9f-abcde');
    expect(event).toMatchObject({
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { namespace: 'shop' },
      eventTime: '2026-01-01T00:00:00.000000Z',
      reportingController: 'netpin.io/webhook',
      reportingInstance: 'netpin-7c9f-abcde',
      type: 'Warning',
      reason: 'Refused',
      action: 'Admit',
      regarding: { apiVersion: 'apps/v1', kind: 'ReplicaSet', namespace: 'shop', name: 'web-5d8f', uid: 'rs-uid' },
    });
    expect(event.series).toBeUndefined();
    const ippool = { apiVersion: 'netpin.io/v1alpha1', kind: 'IPPool', namespace: '', name: 'web' };
    const pool = cache.observe({ ...refusal(), regarding: ippool }, T0);
    if (!pool || !('create' in pool)) throw new Error('expected a create');
    // A cluster-scoped object: its events live in default, and the reference has no namespace.
    expect(eventObject(pool.create, 'x')).toMatchObject({
      metadata: { namespace: 'default' },
      regarding: { kind: 'IPPool', name: 'web' },
    });
    expect(eventObject(pool.create, 'x').regarding).not.toHaveProperty('uid');
    expect(eventObject(pool.create, 'x').regarding).not.toHaveProperty('namespace');
  });
});

type Call =
  | { op: 'create'; at: number; event: EventObject }
  | { op: 'patch'; at: number; name: string; series: EventSeriesField };

class FakeWriter implements EventWriter {
  readonly calls: Call[] = [];
  /** Events the API server no longer has. */
  readonly gone = new Set<string>();
  failures = 0;

  async create(event: EventObject): Promise<void> {
    this.calls.push({ op: 'create', at: Date.now(), event: structuredClone(event) });
    this.maybeFail();
  }

  async patchSeries(_namespace: string, name: string, series: EventSeriesField): Promise<boolean> {
    this.calls.push({ op: 'patch', at: Date.now(), name, series });
    this.maybeFail();
    return !this.gone.has(name);
  }

  private maybeFail(): void {
    if (this.failures > 0) {
      this.failures--;
      throw new Error('connect ECONNREFUSED');
    }
  }
}

function fakeLog() {
  const log = { warn: vi.fn(), debug: vi.fn() };
  return { log, logger: log as unknown as Logger };
}

describe('the recorder', () => {
  let writer: FakeWriter;
  const limits: EventLimits = { ...DEFAULT_LIMITS, writesPerSecond: 5, burst: 4, queue: 8 };
  const recorder = (extra: Partial<EventLimits> = {}, logger?: Logger) =>
    new EventRecorder(writer, { limits: { ...limits, ...extra }, instance: 'netpin-0', log: logger });

  beforeEach(() => {
    vi.useFakeTimers({ now: T0 });
    writer = new FakeWriter();
  });
  afterEach(() => vi.useRealTimers());

  it('turns a storm of identical events into one create and one count per seriesWriteMs', async () => {
    const r = recorder();
    for (let i = 0; i < 500; i++) r.record(refusal());
    await vi.advanceTimersByTimeAsync(0);
    expect(writer.calls.map((c) => c.op)).toEqual(['create']);
    await vi.advanceTimersByTimeAsync(limits.seriesWriteMs);
    expect(writer.calls).toHaveLength(2);
    const { name } = (writer.calls[0] as { event: EventObject }).event.metadata;
    expect(writer.calls[1]).toMatchObject({ op: 'patch', name, series: { count: 500 } });
    // Quiet: nothing more is written.
    await vi.advanceTimersByTimeAsync(10 * limits.seriesWriteMs);
    expect(writer.calls).toHaveLength(2);
  });

  it('writes no more than the burst at once, then writesPerSecond, and drops what overflows the queue', async () => {
    const { log, logger } = fakeLog();
    const r = recorder({}, logger);
    for (let i = 0; i < 50; i++) r.record(refusal(`note ${i}`));
    // One write under way and `queue` waiting; the rest is dropped with a single warning.
    expect(log.warn).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(60_000);
    const at = writer.calls.map((c) => c.at - T0);
    expect(at).toHaveLength(1 + limits.queue);
    expect(at.filter((t) => t === 0)).toHaveLength(limits.burst);
    for (let i = limits.burst; i < at.length; i++)
      expect(at[i]! - at[i - 1]!).toBeGreaterThanOrEqual(1000 / limits.writesPerSecond);
    // The first ones, in order.
    const notes = writer.calls.map((c) => (c.op === 'create' ? c.event.note : ''));
    expect(notes).toEqual(Array.from({ length: at.length }, (_, i) => `note ${i}`));
  });

  it('never throws when the API server fails, and warns once until a write succeeds again', async () => {
    const { log, logger } = fakeLog();
    const r = recorder({}, logger);
    writer.failures = 3;
    expect(() => ['a', 'b', 'c'].forEach((n) => r.record(refusal(n)))).not.toThrow();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(log.warn).toHaveBeenCalledTimes(1);
    expect(log.debug).toHaveBeenCalledTimes(2);
    r.record(refusal('d'));
    await vi.advanceTimersByTimeAsync(1_000);
    writer.failures = 1;
    r.record(refusal('e'));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(log.warn).toHaveBeenCalledTimes(2);
  });

  it('creates the Event again, with its count, when the API server no longer has it', async () => {
    const r = recorder();
    r.record(refusal());
    await vi.advanceTimersByTimeAsync(0);
    const name = (writer.calls[0] as { event: EventObject }).event.metadata.name;
    writer.gone.add(name);
    r.record(refusal());
    r.record(refusal());
    await vi.advanceTimersByTimeAsync(limits.seriesWriteMs);
    expect(writer.calls.map((c) => c.op)).toEqual(['create', 'patch', 'create']);
    expect(writer.calls[2]).toMatchObject({ event: { metadata: { name }, series: { count: 3 } } });
  });

  it('holds an event for an object being created until a watch shows it, then names its uid', async () => {
    const r = recorder();
    const reserved: EventNotice = {
      regarding: { apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: 'shop', name: 'db' },
      type: 'Normal',
      reason: 'Reserved',
      action: 'Reserve',
      note: 'Reserved db-0=10.20.0.2 from IPPool web',
    };
    r.recordWhenCreated(reserved);
    const pod = { apiVersion: 'v1', kind: 'Pod', namespace: 'shop', name: 'api-x1', uid: 'pod-uid' };
    r.recordWhenCreated({ ...reserved, regarding: pod, reason: 'Allocated' });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(writer.calls).toEqual([]);
    r.observed({ kind: 'StatefulSet', namespace: 'other', name: 'db', uid: 'x' });
    // Another pod of that name (its create failed): not the one admitted.
    r.observed({ kind: 'Pod', namespace: 'shop', name: 'api-x1', uid: 'older-pod' });
    r.observed({ kind: 'StatefulSet', namespace: 'shop', name: 'db', uid: 'sts-uid' });
    r.observed({ kind: 'StatefulSet', namespace: 'shop', name: 'db', uid: 'sts-uid' });
    await vi.advanceTimersByTimeAsync(0);
    expect(writer.calls).toHaveLength(1);
    expect(writer.calls[0]).toMatchObject({
      event: { reason: 'Reserved', regarding: { kind: 'StatefulSet', uid: 'sts-uid' } },
    });
    // The pod never came within awaitMs: nothing is recorded for it.
    await vi.advanceTimersByTimeAsync(limits.awaitMs + 1);
    r.observed({ kind: 'Pod', namespace: 'shop', name: 'api-x1', uid: 'pod-uid' });
    await vi.advanceTimersByTimeAsync(0);
    expect(writer.calls).toHaveLength(1);
  });

  it("cuts a note to 1 KiB and its object's names to 253 characters when it records, before anything holds it", async () => {
    const r = recorder();
    const long = (note: string): EventNotice => ({
      ...refusal(note),
      regarding: {
        apiVersion: 'v1',
        kind: 'Pod',
        namespace: 'shop',
        name: 'n'.repeat(1 << 20),
        uid: 'u'.repeat(1 << 20),
      },
    });
    // Notes alike in their first KiB are one series: the API server would show them alike anyway.
    r.record(long(`${'a'.repeat(1 << 20)}1`));
    r.record(long(`${'a'.repeat(1 << 20)}2`));
    await vi.advanceTimersByTimeAsync(limits.seriesWriteMs);
    expect(writer.calls.map((c) => c.op)).toEqual(['create', 'patch']);
    const { event } = writer.calls[0] as { event: EventObject };
    expect(Buffer.byteLength(event.note)).toBeLessThanOrEqual(1024);
    expect(event.regarding.name).toHaveLength(253);
    expect(event.regarding.uid).toHaveLength(253);
  });

  it('cuts an event that waits for its object likewise', async () => {
    const r = recorder();
    const name = 'n'.repeat(1 << 20);
    r.recordWhenCreated({
      ...refusal('a'.repeat(1 << 20)),
      regarding: { apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: 'shop', name },
    });
    r.observed({ kind: 'StatefulSet', namespace: 'shop', name: name.slice(0, 253), uid: 'sts-uid' });
    await vi.advanceTimersByTimeAsync(0);
    expect(writer.calls).toHaveLength(1);
    expect(writer.calls[0]).toMatchObject({ event: { regarding: { uid: 'sts-uid' } } });
  });

  it('records nothing once stopped', async () => {
    const r = recorder();
    r.stop();
    r.record(refusal());
    await vi.advanceTimersByTimeAsync(1_000);
    expect(writer.calls).toEqual([]);
  });
});

describe('the writer to the API server', () => {
  it('gives up on a write the API server never answers, so that the queue moves on', async () => {
    const api = await frozenApiServer();
    try {
      const writer = kubeEventWriter(api.kc, 100);
      const o = new SeriesCache().observe(refusal(), T0);
      if (!o || !('create' in o)) throw new Error('expected a create');
      const event = eventObject(o.create, 'netpin-0');
      const started = performance.now();
      await expect(writer.create(event)).rejects.toThrow('the API server did not answer within 0.1 s');
      expect(performance.now() - started).toBeLessThan(1_000);
    } finally {
      await api.close();
    }
  });
});
