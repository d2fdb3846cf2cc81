import { CustomObjectsApi, type ConfigurationOptions, type KubeConfig } from '@kubernetes/client-node';
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { isNetpins, MANAGED_BY, type ManagedKind, type ManagedResource, type ManagedSet } from '../cni/managed.js';
import type { Ledger } from '../ipam/ledger.js';
import { OFF_ADMISSION_MS, statusOf, WITHIN_ADMISSION, withTimeout } from './kube.js';

interface Stored {
  metadata?: {
    name?: string;
    uid?: string;
    resourceVersion?: string;
    creationTimestamp?: string;
    labels?: Record<string, string>;
  };
  spec?: unknown;
}

/**
 * Keeps the cluster objects netpin's claims need (the CNI's egress resources, Cilium's single-address
 * pools): creates what is missing, puts back what was changed by hand, and deletes what no claim needs
 * any more; the reconciler releases a claim once no pod has used its address for the grace period. It
 * only ever touches objects labelled as netpin's. Runs on the leader, after each sweep.
 */
export class ResourceController {
  private readonly api: CustomObjectsApi;
  // A hung call would hold the leader's sweeps, which wait for this sync.
  private readonly calls: ConfigurationOptions;

  constructor(
    kc: KubeConfig,
    private readonly ledger: Ledger,
    private readonly sets: readonly ManagedSet[],
    private readonly log?: Logger,
    timeoutMs = OFF_ADMISSION_MS,
    private readonly now: () => number = Date.now,
  ) {
    this.api = kc.makeApiClient(CustomObjectsApi);
    this.calls = withTimeout(timeoutMs);
  }

  async sync(): Promise<void> {
    for (const set of this.sets) {
      const desired = set.desired(this.ledger.index);
      for (const kind of set.kinds) await this.syncKind(kind, desired, set.keepYoungMs ?? 0);
    }
  }

  /**
   * Makes `want` exist now, as admission needs it before a pod can start; returns those blocked by an
   * object of the same name that is not netpin's. The leader's sync makes what a failed call left.
   */
  async ensure(want: readonly ManagedResource[]): Promise<ManagedResource[]> {
    const blocked: ManagedResource[] = [];
    for (const r of want) {
      const [group, version] = r.apiVersion.split('/') as [string, string];
      const target = { group, version, plural: r.plural };
      const body = { apiVersion: r.apiVersion, kind: r.kind, metadata: r.metadata, spec: r.spec };
      try {
        await this.api.createClusterCustomObject({ ...target, body }, WITHIN_ADMISSION);
        this.log?.info({ kind: r.kind, name: r.metadata.name }, 'created a resource a pod needs');
        continue;
      } catch (e) {
        if (statusOf(e) !== 409) throw e;
      }
      const have = (await this.api.getClusterCustomObject(
        { ...target, name: r.metadata.name },
        WITHIN_ADMISSION,
      )) as Stored;
      if (!isNetpins(have.metadata?.labels)) blocked.push(r);
      else if (!isDeepStrictEqual(have.spec, r.spec)) await this.putBack(target, body, r, have, WITHIN_ADMISSION);
    }
    return blocked;
  }

  private async syncKind(kind: ManagedKind, desired: readonly ManagedResource[], keepYoungMs: number): Promise<void> {
    const [group, version] = kind.apiVersion.split('/') as [string, string];
    const target = { group, version, plural: kind.plural };
    const wanted = desired.filter((d) => d.plural === kind.plural);
    let list: { items: Stored[] };
    try {
      list = (await this.api.listClusterCustomObject(
        { ...target, labelSelector: selector(MANAGED_BY) },
        this.calls,
      )) as { items: Stored[] };
    } catch (e) {
      // A CRD not installed holds nothing of netpin's; it matters only once a claim needs one.
      if (statusOf(e) === 404 && wanted.length === 0) return;
      throw e;
    }
    const existing = new Map(list.items.map((o) => [o.metadata?.name ?? '', o]));
    // One object the API server keeps refusing (a field made immutable since) must not hold up the others:
    // each is tried, and the first failure is thrown once all have been.
    const failures: unknown[] = [];
    for (const want of wanted) {
      const have = existing.get(want.metadata.name);
      existing.delete(want.metadata.name);
      const body = { apiVersion: want.apiVersion, kind: want.kind, metadata: want.metadata, spec: want.spec };
      try {
        if (!have) await this.create(target, body, want);
        else if (!isDeepStrictEqual(have.spec, want.spec)) await this.putBack(target, body, want, have);
      } catch (e) {
        failures.push(e);
      }
    }
    for (const [name, have] of existing) {
      const born = Date.parse(have.metadata?.creationTimestamp ?? '');
      if (this.now() - born < keepYoungMs) continue;
      try {
        // Only the object as listed: one made again since belongs to a newer claim.
        const preconditions = { uid: have.metadata?.uid, resourceVersion: have.metadata?.resourceVersion };
        await this.api.deleteClusterCustomObject({ ...target, name, body: { preconditions } }, this.calls);
        this.log?.info({ plural: kind.plural, name }, 'deleted a resource no claim needs');
      } catch (e) {
        // Gone already, or changed since the list: the next sync sees it as it is now.
        if (statusOf(e) !== 404 && statusOf(e) !== 409) failures.push(e);
      }
    }
    if (failures.length) throw failures[0];
  }

  private async create(target: Target, body: object, want: ManagedResource): Promise<void> {
    try {
      await this.api.createClusterCustomObject({ ...target, body }, this.calls);
      this.log?.info({ kind: want.kind, name: want.metadata.name }, 'created a resource a claim needs');
    } catch (e) {
      // An object of that name without netpin's label is someone else's: netpin leaves it, and says so.
      if (statusOf(e) !== 409) throw e;
      this.log?.warn(
        { kind: want.kind, name: want.metadata.name },
        "a resource netpin needs exists without netpin's label; netpin leaves it alone",
      );
    }
  }

  private async putBack(
    target: Target,
    body: object,
    want: ManagedResource,
    have: Stored,
    calls = this.calls,
  ): Promise<void> {
    await this.api.replaceClusterCustomObject(
      {
        ...target,
        name: want.metadata.name,
        body: { ...body, metadata: { ...want.metadata, resourceVersion: have.metadata?.resourceVersion } },
      },
      calls,
    );
    this.log?.warn({ kind: want.kind, name: want.metadata.name }, 'put back a resource changed by hand');
  }
}

type Target = { group: string; version: string; plural: string };

function selector(labels: Readonly<Record<string, string>>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}
