import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { ClaimIndex } from '../../ipam/claim-index.js';
import type { Claim } from '../../ipam/claim.js';
import { compilePool, poolOverlap, PoolSpecError, type IPPoolObject } from '../../ipam/pool.js';
import { GROUP, OFF_ADMISSION, VERSION, WITHIN_ADMISSION } from '../kube.js';
import { Reflector, withoutManagedFields, type Seen } from '../reflector.js';
import { CLAIMS, listClaimPage, toClaim, type ClaimsApi, type ClaimLocation, type IPClaimObject } from './ipclaim.js';

const POOLS = 'ippools';
/** IPPools per list call: a cluster has tens of them. */
const POOLS_PAGE = 500;

/** The watches that feed the ledger's index: IPPools, and IPClaims, each reduced to its Claim as it comes in. */
export class LedgerFeed {
  private readonly pools: Reflector<KubernetesObject>;
  private readonly claims: Reflector<IPClaimObject>;
  /** While a list of the claims is under way: the stored claims held when it began. */
  private stored: Set<Claim> | undefined;

  constructor(
    kc: KubeConfig,
    private readonly api: ClaimsApi,
    private readonly index: ClaimIndex,
    /** IPClaims per list call when (re)listing. */
    claimsPage: number,
    private readonly log?: Logger,
    /** Where the claims are kept: another feed may fill the same index from the ClusterSet's broker. */
    private readonly store: ClaimLocation = {},
  ) {
    this.pools = new Reflector<KubernetesObject>(
      kc,
      {
        what: POOLS,
        path: `/apis/${GROUP}/${VERSION}/${POOLS}`,
        list: async (next) => {
          const list = (await api.listClusterCustomObject(
            { group: GROUP, version: VERSION, plural: POOLS, limit: POOLS_PAGE, _continue: next },
            OFF_ADMISSION,
          )) as { items: KubernetesObject[]; metadata?: { continue?: string; resourceVersion?: string } };
          return {
            items: list.items,
            continue: list.metadata?.continue,
            resourceVersion: list.metadata?.resourceVersion,
          };
        },
        store: true,
        transform: withoutManagedFields,
        seen: (obj) => this.setPool(obj),
        deleted: (obj) => {
          if (this.owns(index.pool(obj.metadata?.name ?? ''))) index.removePool(obj.metadata?.name ?? '');
        },
      },
      log,
    );

    // The index is the only copy of the claims: no cache of objects, each is reduced to its Claim as it comes in.
    this.claims = new Reflector<IPClaimObject>(
      kc,
      {
        what: CLAIMS,
        path: `/apis/${GROUP}/${VERSION}/${CLAIMS}`,
        list: (next) => listClaimPage(api, claimsPage, next),
        key: (obj) => obj.metadata?.uid ?? '',
        listing: () => {
          this.stored = new Set();
          for (const c of index.allClaims()) if (c.ref !== undefined && this.owns(c)) this.stored.add(c);
        },
        seen: (obj, how) => this.seen(obj, how),
        deleted: (obj) => {
          const c = toClaim(obj, this.store);
          if (c) index.remove(c);
        },
        listed: (uids) => this.forgetUnlisted(uids),
      },
      log,
    );
  }

  /** Resolves once both have listed: until then an empty index would hand out held addresses. */
  async start(): Promise<void> {
    await Promise.all([this.pools.start(), this.claims.start()]);
  }

  async stop(): Promise<void> {
    await Promise.all([this.pools.stop(), this.claims.stop()]);
  }

  /** Whether pools and claims have each completed their latest list (Reflector.complete). */
  complete(): boolean {
    return this.pools.complete && this.claims.complete;
  }

  /** The IPPools as the API server has them now; the watch may lag a pool created a moment ago. */
  async refreshPools(): Promise<void> {
    const list = (await this.api.listClusterCustomObject(
      { group: GROUP, version: VERSION, plural: POOLS },
      WITHIN_ADMISSION,
    )) as { items: KubernetesObject[] };
    for (const obj of list.items) if (!this.index.pool(obj.metadata?.name ?? '')) this.setPool(obj);
  }

  /** Whether a claim or pool in the shared index is this feed's: kept where this feed reads. */
  private owns(x: { shared?: boolean } | undefined): boolean {
    return x !== undefined && (x.shared === true) === (this.store.cluster !== undefined);
  }

  private setPool(obj: KubernetesObject): void {
    try {
      const compiled = compilePool(obj as unknown as IPPoolObject);
      const pool = this.store.cluster === undefined ? compiled : { ...compiled, shared: true };
      // The other store's pool of that name, or over those addresses, stays: the addresses of two stores
      // would have two ledgers, so the pool that came second is left out, and said so.
      const clash = this.index
        .allPools()
        .find((p) => !this.owns(p) && (p.name === pool.name || poolOverlap(p, pool) !== undefined));
      if (clash) {
        this.log?.error(
          { pool: pool.name, other: clash.name },
          clash.shared
            ? "ignoring an IPPool that shares its name or addresses with a pool of the ClusterSet's broker"
            : "ignoring a pool of the ClusterSet's broker that shares its name or addresses with an IPPool of this cluster",
        );
        return;
      }
      this.index.setPool(pool);
    } catch (e) {
      // The IPPool webhook refuses these; one that got in anyway is left out rather than guessed at.
      if (!(e instanceof PoolSpecError)) throw e;
      this.log?.warn({ pool: obj.metadata?.name, err: e.message }, 'ignoring malformed IPPool');
    }
  }

  /**
   * An IPClaim listed or from the watch: a new object is added (or, when this process is creating it,
   * confirmed), a changed one put, and one listed again unchanged left alone. A listed object that is not
   * the stored one held here replaced it: one address, one IPClaim name, so the held one was deleted while
   * nothing watched. An object under the address's own name replaces one under an old name (a claim
   * being migrated), never the reverse.
   */
  private seen(obj: IPClaimObject, how: Seen): void {
    const c = toClaim(obj, this.store);
    if (!c) return;
    const held = this.index.holderOf(c.ip);
    const stored = held && !held.observed && held.ref !== undefined ? held : undefined;
    if (stored && stored.ref !== c.ref) {
      if (c.name !== undefined && stored.name === undefined) return;
      if (how === 'LISTED' || (c.name === undefined && stored.name !== undefined)) this.index.remove(stored);
    }
    const again = stored !== undefined && stored.ref === c.ref;
    if (how === 'MODIFIED' || (again && stored.version !== c.version)) this.index.put(c);
    else if (!again && !this.index.add(c)) this.index.confirm(c);
  }

  /**
   * After a list: a stored claim held when it began and not in it was deleted while nothing watched. Claims
   * still being created (no uid yet) and those created since it began are not in it either, and stay.
   */
  private forgetUnlisted(uids: ReadonlySet<string>): void {
    for (const c of this.stored ?? []) if (!uids.has(c.ref!)) this.index.remove(c);
    this.stored = undefined;
  }
}
