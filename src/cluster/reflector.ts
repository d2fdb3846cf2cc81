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

/** What a Reflector reads, what it keeps of each object, and whom it tells. */
interface Reflection<T, S> {
  /** Names the watch in logs. */
  what: string;
  /** The watch's path, e.g. /api/v1/pods. */
  path: string;
  list: PagedList<T>;
  /** What is kept and told of an object, made once per state seen; without it, the object as it came. */
  transform?(obj: T): S;
  /**
   * Keep each object, as transformed, by namespace and name (get, values): for kinds of which a
   * cluster has few, read on every admission. The Reflector then tells only new states, and after a
   * list tells as deleted what it kept and the list no longer holds. Without a store the owner keeps
   * what it needs, and learns after every list which keys are still there (`listed`).
   */
  store?: boolean;
  /** How `listed` names an object; by default namespace/name. */
  key?(obj: T): string;
  /** A list begins: what is known now and is not in it is gone by the time it ends. */
  listing?(): void;
  /** An object listed or from the watch; `before` is the state it replaces, known with a store only. */
  seen?(obj: S, how: Seen, before: S | undefined): void;
  deleted?(obj: S): void;
  /** A list is complete, and these are the keys of its objects: whatever else was known before it is gone. */
  listed?(keys: ReadonlySet<string>): void;
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
 * error (410 Gone among them), a retry later. Each object is transformed once per state seen, and
 * kept only with a store (Reflection.store).
 */
export class Reflector<T extends KubernetesObject, S = T> {
  private readonly watch: Watch;
  private readonly key: (obj: T) => string;
  private readonly transform: (obj: T) => S;
  /** The kept objects by key, each with the resourceVersion it was made from; none without a store. */
  private readonly objects: Map<string, { version: string | undefined; value: S }> | undefined;
  private resourceVersion = '';
  private stopped = false;
  private listed = false;
  private abort: AbortController | undefined;
  private loop: Promise<void> | undefined;

  constructor(
    kc: KubeConfig,
    private readonly of: Reflection<T, S>,
    private readonly log?: Logger,
    private readonly retryMs = 1_000,
  ) {
    this.watch = new Watch(kc);
    this.key = of.key ?? objectKey;
    this.transform = of.transform ?? ((obj) => obj as unknown as S);
    this.objects = of.store ? new Map() : undefined;
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

  /** A kept object by namespace and name; always undefined without a store. */
  get(name: string, namespace?: string): S | undefined {
    return this.objects?.get(`${namespace ?? ''}/${name}`)?.value;
  }

  /** The kept objects; none without a store. */
  *values(): IterableIterator<S> {
    for (const { value } of this.objects?.values() ?? []) yield value;
  }

  private seen(obj: T, how: Seen): void {
    const key = this.key(obj);
    const before = this.objects?.get(key);
    const version = obj.metadata?.resourceVersion;
    // A relist brings every object again: only a new state is news.
    if (version !== undefined && before?.version === version) return;
    const value = this.transform(obj);
    this.objects?.set(key, { version, value });
    this.of.seen?.(value, how, before?.value);
  }

  private deleted(obj: T): void {
    if (this.objects) this.forget(this.key(obj));
    else this.of.deleted?.(this.transform(obj));
  }

  private forget(key: string): void {
    const kept = this.objects?.get(key);
    if (!kept) return;
    this.objects!.delete(key);
    this.of.deleted?.(kept.value);
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
        this.seen(obj, 'LISTED');
        keys.add(this.key(obj));
      }
      version = page.resourceVersion ?? version;
    }
    for (const key of [...(this.objects?.keys() ?? [])]) if (!keys.has(key)) this.forget(key);
    this.of.listed?.(keys);
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
              if (type === 'ADDED' || type === 'MODIFIED') this.seen(obj, type);
              else if (type === 'DELETED') this.deleted(obj);
              this.resourceVersion = obj.metadata?.resourceVersion ?? this.resourceVersion;
            } catch (e) {
              // 410 Gone or another ERROR, or an owner that failed on an event: the loop lists again. Not
              // rethrown: client-node's Watch drops what its callback throws, and the event would be lost
              // (kubernetes-client/javascript#856; test/cluster/reflector.test.ts fails once it does not).
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
 * Watch gives a connection up after 30 s without a byte (its requestTimeoutMs, since
 * kubernetes-client/javascript#2367), which a quiet resource reaches between the server's bookmarks.
 * Nothing was missed: watch again from the same resourceVersion rather than list everything again.
 * test/cluster/reflector.test.ts fails when Watch ends a silent watch otherwise.
 */
function isSilence(err: unknown): boolean {
  return (err as { name?: unknown }).name === 'TimeoutError';
}

/** Drops managedFields, which nothing here reads and which are most of an object's size. */
export function withoutManagedFields<T extends KubernetesObject>(obj: T): T {
  return obj.metadata?.managedFields ? { ...obj, metadata: { ...obj.metadata, managedFields: undefined } } : obj;
}

function objectKey(obj: KubernetesObject): string {
  return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}
