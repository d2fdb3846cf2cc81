// What admission and the reconciler tell as Kubernetes Events, apart from the recorder that writes them
// (events.ts), so that admission depends on this interface only.

/** The object an event is about, as `kubectl describe` looks it up: kind, namespace, name and, when known, uid. */
export interface EventSubject {
  apiVersion: string;
  kind: string;
  /** Empty for a cluster-scoped object (an IPPool). */
  namespace: string;
  name: string;
  /** Absent while the object is being created, or once it is gone. */
  uid?: string;
}

/** One event as netpin tells it; the recorder adds who reports it and when (docs/events.md). */
export interface EventNotice {
  regarding: EventSubject;
  type: 'Normal' | 'Warning';
  /** What happened, in CamelCase: Refused, Allocated, Reserved, Released. */
  reason: string;
  /** What netpin was doing: Admit, Allocate, Reserve, Release. */
  action: string;
  note: string;
}

/** Where events go. Fire and forget: a call never waits for the API server, and never throws. */
export interface EventSink {
  /** About an object that exists, or that admission refused (it then never exists). */
  record(event: EventNotice): void;
  /**
   * About an object admission lets be created: recorded once the object shows up, with its uid, so that
   * `kubectl describe` finds it; dropped if it never does (a later webhook or a quota refused it).
   */
  recordWhenCreated(event: EventNotice): void;
}
