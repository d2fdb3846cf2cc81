import { Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { describeApiError } from './kube.js';

/** One page of a list: its objects, the token for the next page, and the resourceVersion of the list. */
export interface Page<T> {
  items: T[];
  continue?: string;
  resourceVersion?: string;
}

/** Lists the page after `next` (the first page: undefined). */
export type PagedList<T> = (next: string | undefined) => Promise<Page<T>>;

/** How an object came to be seen: in a list, or from the watch. */
export type Seen = 'LISTED' | 'ADDED' | 'MODIFIED';

/** What a Reflector reads, and whom it tells. */
interface Reflection<T> {
  /** Names the watch in logs. */
  what: string;
  /** The watch's path, e.g. /api/v1/pods. */
  path: string;
  list: PagedList<T>;
  /** How `listed` names an object. */
  key(obj: T): string;
  /** A list begins: what is known now and is not in it is gone by the time it ends. */
  listing?(): void;
  seen(obj: T, how: Seen): void;
  deleted(obj: T): void;
  /** A list is complete, and these are the keys of its objects: whatever else was known before it is gone. */
  listed(keys: ReadonlySet<string>): void;
}

/** Every page of a list, following the continue tokens. */
export async function* pages<T>(list: PagedList<T>): AsyncGenerator<Page<T>> {
  let next: string | undefined;
  do {
    const page = await list(next);
    yield page;
    next = page.continue || undefined;
  } while (next);
}

/**
 * A list, a page at a time, then a watch from its resourceVersion; listed again after any watch
 * error (410 Gone among them), a retry later. It keeps no copy of the objects: the owner keeps what
 * it needs of each, and learns after every list which keys are still there.
 */
export class Reflector<T extends KubernetesObject> {
  private readonly watch: Watch;
  private resourceVersion = '';
  private stopped = false;
  private listed = false;
  private abort: AbortController | undefined;
  private loop: Promise<void> | undefined;

  constructor(
    kc: KubeConfig,
    private readonly of: Reflection<T>,
    private readonly log?: Logger,
    private readonly retryMs = 1_000,
  ) {
    this.watch = new Watch(kc);
  }

  /** Resolves once the first list is in, or once stopped before it came. */
  start(): Promise<void> {
    let synced!: () => void;
    const first = new Promise<void>((r) => (synced = r));
    this.loop = this.run(synced);
    return first;
  }

  /**
   * Whether what the owner was told is the whole of it: false until the first list is in, and again
   * from a watch's failure until the list after it is in, since events were missed in between.
   */
  get complete(): boolean {
    return this.listed && !this.stopped;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.abort();
    await this.loop;
  }

  private async run(synced: () => void): Promise<void> {
    while (!this.stopped) {
      try {
        if (this.resourceVersion === '') {
          await this.relist();
          synced();
        }
        await this.watchOnce();
      } catch (e) {
        if (this.stopped) break;
        // List again rather than trust a resourceVersion the server may have compacted away.
        this.resourceVersion = '';
        this.listed = false;
        this.log?.warn({ watch: this.of.what, err: describeApiError(e) }, 'watch failed; listing again');
        await new Promise((r) => setTimeout(r, this.retryMs));
      }
    }
    // Stopped before any list came in: whoever waits on start() must not wait for ever.
    synced();
  }

  private async relist(): Promise<void> {
    this.of.listing?.();
    const keys = new Set<string>();
    let version = '';
    for await (const page of pages(this.of.list)) {
      for (const obj of page.items) {
        this.of.seen(obj, 'LISTED');
        keys.add(this.of.key(obj));
      }
      version = page.resourceVersion ?? version;
    }
    this.of.listed(keys);
    this.resourceVersion = version;
    this.listed = true;
  }

  private watchOnce(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const params = { resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 300 };
      this.watch
        .watch(
          this.of.path,
          params,
          (type: string, obj: T) => {
            try {
              if (type === 'ERROR') throw new Error(`${this.of.what} watch: ${JSON.stringify(obj)}`);
              if (type === 'ADDED' || type === 'MODIFIED') this.of.seen(obj, type);
              else if (type === 'DELETED') this.of.deleted(obj);
              this.resourceVersion = obj.metadata?.resourceVersion ?? this.resourceVersion;
            } catch (e) {
              // 410 Gone or another ERROR, or an owner that failed on an event: the loop lists again. Not
              // rethrown: client-node's Watch drops what its callback throws, and the event would be lost.
              this.abort?.abort();
              reject(e);
            }
          },
          (err: unknown) => (err && !this.stopped && !isSilence(err) ? reject(err) : resolve()),
        )
        .then((abort) => {
          this.abort = abort;
          // Stopped while the request waited for its answer: nothing could abort it before now.
          if (this.stopped) abort.abort();
        }, reject);
    });
  }
}

/**
 * Watch gives a connection up after 30 s without a byte (its requestTimeoutMs), which a quiet
 * resource reaches between the server's bookmarks. Nothing was missed: watch again from the same
 * resourceVersion, as ListWatch does, rather than list everything again.
 */
function isSilence(err: unknown): boolean {
  return (err as { name?: unknown }).name === 'TimeoutError';
}

/** What an Informer tells of the objects it keeps. */
interface InformerHandlers<T> {
  /** A new object, or a new state of one (`before` is the state it replaces). */
  changed?(obj: T, before: T | undefined): void;
  removed?(obj: T): void;
}

/**
 * A Reflector that keeps each object whole, by namespace and name: for kinds of which a cluster has
 * few, read on every admission (namespaces, StatefulSets, IPPools). managedFields are dropped, as
 * nothing reads them and they are most of an object's size.
 */
export class Informer<T extends KubernetesObject> {
  private readonly objects = new Map<string, T>();
  private readonly reflector: Reflector<T>;

  constructor(
    kc: KubeConfig,
    what: string,
    path: string,
    list: PagedList<T>,
    private readonly on: InformerHandlers<T> = {},
    log?: Logger,
    retryMs?: number,
  ) {
    this.reflector = new Reflector<T>(
      kc,
      {
        what,
        path,
        list,
        key: objectKey,
        seen: (obj) => this.put(obj),
        deleted: (obj) => this.remove(objectKey(obj)),
        listed: (keys) => {
          for (const key of [...this.objects.keys()]) if (!keys.has(key)) this.remove(key);
        },
      },
      log,
      retryMs,
    );
  }

  /** Resolves once the first list is in (or once stopped before it came). */
  start(): Promise<void> {
    return this.reflector.start();
  }

  stop(): Promise<void> {
    return this.reflector.stop();
  }

  /** See Reflector.complete. */
  get complete(): boolean {
    return this.reflector.complete;
  }

  get(name: string, namespace?: string): T | undefined {
    return this.objects.get(`${namespace ?? ''}/${name}`);
  }

  values(): IterableIterator<T> {
    return this.objects.values();
  }

  private put(obj: T): void {
    if (obj.metadata?.managedFields) obj = { ...obj, metadata: { ...obj.metadata, managedFields: undefined } };
    const key = objectKey(obj);
    const before = this.objects.get(key);
    // A relist brings every object again: only a new state is news.
    if (
      before?.metadata?.resourceVersion !== undefined &&
      before.metadata.resourceVersion === obj.metadata?.resourceVersion
    )
      return;
    this.objects.set(key, obj);
    this.on.changed?.(obj, before);
  }

  private remove(key: string): void {
    const obj = this.objects.get(key);
    if (!obj) return;
    this.objects.delete(key);
    this.on.removed?.(obj);
  }
}

function objectKey(obj: KubernetesObject): string {
  return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}
