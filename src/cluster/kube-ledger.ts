import { CoreV1Api, CustomObjectsApi, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { describeApiError, GROUP, OFF_ADMISSION, statusOf, VERSION, WITHIN_ADMISSION } from './kube.js';
import { Informer, pages, Reflector, type Page, type Seen } from './reflector.js';
import type { IPv6 } from 'ipaddr.js';
import { familyOf, parseAddress, type Address, type Family } from '../net/address.js';
import { ClaimIndex } from '../ipam/claim-index.js';
import {
  ConflictError,
  ExhaustedError,
  ownerKey,
  renewedOwner,
  type Claim,
  type EgressOwner,
  type Owner,
} from '../ipam/claim.js';
import type { Ledger, PodQuota } from '../ipam/ledger.js';
import { parseQuantity, wholeValue } from '../intent/quantity.js';
import { compilePool, PoolSpecError, type IPPoolObject, type Pool } from '../ipam/pool.js';

export interface IPClaimObject extends KubernetesObject {
  spec: {
    pool: string;
    ip: string;
    owner: {
      kind: Owner['kind'];
      namespace: string;
      name?: string;
      uid?: string;
      ordinal?: number;
      workload?: EgressOwner['workload'];
    };
  };
}

const CLAIMS = 'ipclaims';
/** When an admission last handed the claim out (renew): the reconciler's grace period counts from the later of this and the creation. */
const ADMITTED_AT = 'netpin.io/admitted-at';
const POOLS = 'ippools';
/** IPPools per list call: a cluster has tens of them. */
const POOLS_PAGE = 500;
// Each lost race moves first-fit one address on; past this many, something else is wrong.
const MAX_RACES = 64;

/**
 * The address itself, whatever pool holds it: creating the object is the claim, since names are unique,
 * so two pools that overlap (created at the same moment by two replicas, before either saw the other)
 * still cannot give one address twice. IPv4 as written (a dotted name is a valid object name), IPv6
 * normalized (no "::"), with '-' for ':'.
 */
export function claimName(ip: Address): string {
  return familyOf(ip) === 'ipv4' ? ip.toString() : (ip as IPv6).toNormalizedString().replace(/:/g, '-');
}

/** The name of a claim's stored object: its own, or the name it was stored under before (see Claim.name). */
function nameOf(claim: Claim): string {
  return claim.name ?? claimName(claim.ip);
}

/** The IPClaim object that records a claim. */
export function toObject(claim: Claim): IPClaimObject {
  const o = claim.owner;
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'IPClaim',
    metadata: { name: claimName(claim.ip), labels: { 'netpin.io/pool': claim.pool } },
    spec: {
      pool: claim.pool,
      ip: claim.ip.toString(),
      owner:
        o.kind === 'StatefulSet'
          ? { kind: o.kind, namespace: o.namespace, name: o.name, ordinal: o.ordinal }
          : o.kind === 'Egress'
            ? {
                kind: o.kind,
                namespace: o.namespace,
                workload: o.workload,
                name: o.name,
                ...(o.ordinal === undefined ? {} : { ordinal: o.ordinal }),
              }
            : { kind: o.kind, namespace: o.namespace, name: o.name, ...(o.uid ? { uid: o.uid } : {}) },
    },
  };
}

/** The claim an IPClaim object records; undefined for a malformed one. */
export function toClaim(obj: IPClaimObject): Claim | undefined {
  const s = obj.spec;
  const ip = s && parseAddress(s.ip);
  if (!ip || !s.owner?.namespace) return undefined;
  const o = s.owner;
  const owner: Owner =
    o.kind === 'StatefulSet'
      ? { kind: 'StatefulSet', namespace: o.namespace, name: o.name ?? '', ordinal: o.ordinal ?? 0 }
      : o.kind === 'Egress'
        ? {
            kind: 'Egress',
            namespace: o.namespace,
            workload: o.workload ?? 'Pod',
            name: o.name ?? '',
            ...(o.ordinal === undefined ? {} : { ordinal: o.ordinal }),
          }
        : { kind: 'Pod', namespace: o.namespace, name: o.name ?? '', uid: o.uid };
  const created = obj.metadata?.creationTimestamp;
  const admitted = Date.parse(obj.metadata?.annotations?.[ADMITTED_AT] ?? '');
  const createdAt = Math.max(created ? new Date(created).getTime() : Date.now(), Number.isNaN(admitted) ? 0 : admitted);
  const name = obj.metadata?.name;
  return {
    pool: s.pool,
    ip,
    owner,
    createdAt,
    ref: obj.metadata?.uid,
    version: obj.metadata?.resourceVersion,
    // Stored under another name: `<pool>.<address>`, as netpin named claims before 0.2.
    ...(name !== undefined && name !== claimName(ip) && { name }),
  };
}

/** The calls of client-node's CustomObjectsApi the ledger makes. */
export type ClaimsApi = Pick<
  CustomObjectsApi,
  | 'createClusterCustomObject'
  | 'getClusterCustomObject'
  | 'patchClusterCustomObject'
  | 'deleteClusterCustomObject'
  | 'listClusterCustomObject'
>;

/** IPClaims per list call, by default: a few MB of JSON at a time, not the whole ledger. */
export const CLAIMS_PAGE = 5_000;

/** A page of IPClaims as the API server sends it: the token for the next page is `metadata.continue`. */
interface ClaimsList {
  items: IPClaimObject[];
  metadata?: { continue?: string; resourceVersion?: string };
}

/** One page of `limit` IPClaims, from the continue token `next`. */
async function listClaimPage(api: ClaimsApi, limit: number, next: string | undefined): Promise<Page<IPClaimObject>> {
  const list = (await api.listClusterCustomObject({
    group: GROUP,
    version: VERSION,
    plural: CLAIMS,
    limit,
    _continue: next,
  })) as ClaimsList;
  return { items: list.items, continue: list.metadata?.continue, resourceVersion: list.metadata?.resourceVersion };
}

/** Every IPClaim, listed `limit` at a time. */
export async function listClaims(api: CustomObjectsApi, limit: number): Promise<IPClaimObject[]> {
  const items: IPClaimObject[] = [];
  for await (const page of pages((next) => listClaimPage(api, limit, next)))
    for (const obj of page.items) items.push(obj);
  return items;
}

/** The ledger's writes: a create is a claim, a patch names the pod or renews, a delete releases. */
export type ClaimWrite = 'create' | 'patch' | 'delete';
/**
 * How a write ended. conflict (409): a create found the address claimed already, or a delete's
 * preconditions failed; gone: the claim was not there (404), or was claimed again since (422).
 */
export type WriteOutcome = 'ok' | 'conflict' | 'gone' | 'error';

/** Where the ledger reports its writes (transport/metrics.ts). */
export interface LedgerMetrics {
  write(op: ClaimWrite, outcome: WriteOutcome): void;
}

/**
 * Claims as IPClaim objects in the API server, one per address. Reads come from
 * an index that watches IPPools and IPClaims; a write is one create or delete.
 * Two replicas racing for an address cannot both win the create: the loser
 * learns the holder and moves on to the next free address.
 */
export class KubeLedger implements Ledger {
  readonly index = new ClaimIndex();
  private readonly api: ClaimsApi;
  private pools: Informer<KubernetesObject> | undefined;
  private claims: Reflector<IPClaimObject> | undefined;
  /** While a list of the claims is under way: the stored claims held when it began. */
  private stored: Set<Claim> | undefined;
  synced = false;
  /** Set once the app and its metrics exist, after the ledger (kube-backend.ts). */
  metrics?: LedgerMetrics;

  constructor(
    private readonly kc: KubeConfig,
    private readonly log?: Logger,
    /** IPClaims per list call when (re)listing. */
    private readonly claimsPage = CLAIMS_PAGE,
    /** The claims' API; a test may answer it itself, at the interleavings it chooses. */
    api?: ClaimsApi,
  ) {
    this.api = api ?? kc.makeApiClient(CustomObjectsApi);
  }

  /**
   * Read when a StatefulSet reserves, which is rare: no watch is kept. Only quotas without scopes count,
   * as they apply to every pod. An unreadable list (no RBAC to list resourcequotas) is logged and reads
   * as no limit: admissions go on, checked against the pools' spec.namespaceLimit alone.
   */
  async podQuota(namespace: string): Promise<PodQuota | undefined> {
    let items;
    try {
      items = (await this.kc.makeApiClient(CoreV1Api).listNamespacedResourceQuota({ namespace }, WITHIN_ADMISSION))
        .items;
    } catch (e) {
      this.log?.warn(
        { namespace, err: describeApiError(e) },
        'cannot read ResourceQuotas: reservations are not counted against pods quotas',
      );
      return undefined;
    }
    let least: PodQuota | undefined;
    for (const q of items) {
      if (q.spec?.scopes?.length || q.spec?.scopeSelector) continue;
      for (const key of ['pods', 'count/pods']) {
        const text = q.spec?.hard?.[key];
        const f = text === undefined ? undefined : parseQuantity(String(text));
        if (!f) continue;
        const pods = Number(wholeValue(f));
        if (!least || pods < least.pods) least = { pods, quota: `${q.metadata?.name ?? ''} (${key}: ${String(text)})` };
      }
    }
    return least;
  }

  async start(): Promise<void> {
    const setPool = (obj: KubernetesObject) => {
      try {
        this.index.setPool(compilePool(obj as unknown as IPPoolObject));
      } catch (e) {
        // The IPPool webhook refuses these; one that got in anyway is left out rather than guessed at.
        if (!(e instanceof PoolSpecError)) throw e;
        this.log?.warn({ pool: obj.metadata?.name, err: e.message }, 'ignoring malformed IPPool');
      }
    };
    this.setPool = setPool;
    this.pools = new Informer<KubernetesObject>(
      this.kc,
      POOLS,
      `/apis/${GROUP}/${VERSION}/${POOLS}`,
      async (next) => {
        const list = (await this.api.listClusterCustomObject(
          { group: GROUP, version: VERSION, plural: POOLS, limit: POOLS_PAGE, _continue: next },
          OFF_ADMISSION,
        )) as { items: KubernetesObject[]; metadata?: { continue?: string; resourceVersion?: string } };
        return {
          items: list.items,
          continue: list.metadata?.continue,
          resourceVersion: list.metadata?.resourceVersion,
        };
      },
      { changed: setPool, removed: (obj) => this.index.removePool(obj.metadata?.name ?? '') },
      this.log,
    );

    // The index is the only copy of the claims: no cache of objects, each is reduced to its Claim as it comes in.
    this.claims = new Reflector<IPClaimObject>(
      this.kc,
      {
        what: CLAIMS,
        path: `/apis/${GROUP}/${VERSION}/${CLAIMS}`,
        list: (next) => listClaimPage(this.api, this.claimsPage, next),
        key: (obj) => obj.metadata?.uid ?? '',
        listing: () => {
          this.stored = new Set();
          for (const c of this.index.allClaims()) if (c.ref !== undefined) this.stored.add(c);
        },
        seen: (obj, how) => this.seen(obj, how),
        deleted: (obj) => {
          const c = toClaim(obj);
          if (c) this.index.remove(c);
        },
        listed: (uids) => this.forgetUnlisted(uids),
      },
      this.log,
    );
    // Until both lists are in, an empty index would hand out held addresses: not ready before.
    await Promise.all([this.pools.start(), this.claims.start()]);
    this.synced = true;
  }

  async stop(): Promise<void> {
    await Promise.all([this.pools?.stop(), this.claims?.stop()]);
  }

  /** Whether pools and claims have each completed their latest list (Reflector.complete). */
  complete(): boolean {
    return this.pools?.complete === true && this.claims?.complete === true;
  }

  /**
   * An IPClaim listed or from the watch: a new object is added (or, when this process is creating it,
   * confirmed), a changed one put, and one listed again unchanged left alone. A listed object that is not
   * the stored one held here replaced it: one address, one IPClaim name, so the held one was deleted while
   * nothing watched. An object under the address's own name replaces one under an old name (a claim
   * being migrated), never the reverse.
   */
  private seen(obj: IPClaimObject, how: Seen): void {
    const c = toClaim(obj);
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

  private setPool: ((obj: KubernetesObject) => void) | undefined;

  /** The IPPools as the API server has them now; the watch may lag a pool created a moment ago. */
  async refreshPools(): Promise<void> {
    const list = (await this.api.listClusterCustomObject(
      { group: GROUP, version: VERSION, plural: POOLS },
      WITHIN_ADMISSION,
    )) as { items: KubernetesObject[] };
    for (const obj of list.items) if (!this.index.pool(obj.metadata?.name ?? '')) this.setPool?.(obj);
  }

  async claim(pool: Pool, ip: Address, owner: Owner): Promise<Claim> {
    const mine = this.index.heldBy(ip, owner);
    if (mine) return mine;
    const pending: Claim = { pool: pool.name, ip, owner, createdAt: Date.now() };
    // In the index before the create, so that concurrent admissions in this process skip the address.
    this.index.add(pending);
    try {
      const created = (await this.api.createClusterCustomObject(
        { group: GROUP, version: VERSION, plural: CLAIMS, body: toObject(pending) },
        WITHIN_ADMISSION,
      )) as IPClaimObject;
      const stored: Claim = { ...pending, ref: created.metadata?.uid, version: created.metadata?.resourceVersion };
      this.metrics?.write('create', 'ok');
      if (this.index.replace(pending, stored)) return stored;
      // The watch confirmed it first: that entry, as new as this one or newer, is the claim.
      const held = this.index.holderOf(ip);
      return held !== undefined && held.ref === stored.ref ? held : stored;
    } catch (e) {
      this.metrics?.write('create', statusOf(e) === 409 ? 'conflict' : 'error');
      if (statusOf(e) !== 409) {
        // A create that timed out may still land: then the watch brings the claim back, and the
        // reconciler releases it after the grace period if no pod comes. Until then the address is
        // not held here, unless the watch has already shown that the create landed (confirmed it).
        if (this.index.holderOf(ip) === pending) this.index.remove(pending);
        throw new Error(`claiming ${ip.toString()} in IPPool ${pool.name}: ${describeApiError(e)}`, { cause: e });
      }
      this.index.remove(pending);
      // Another replica won; the watch may not have told us yet, so ask.
      const name = claimName(ip);
      const stored = await this.api
        .getClusterCustomObject({ group: GROUP, version: VERSION, plural: CLAIMS, name }, WITHIN_ADMISSION)
        .catch((err: unknown) => {
          throw new Error(`reading IPClaim ${name}, which another writer created first: ${describeApiError(err)}`);
        });
      const existing = toClaim(stored as IPClaimObject);
      if (!existing) throw new Error(`IPClaim ${name} is malformed`, { cause: e });
      this.index.add(existing);
      if (ownerKey(existing.owner) === ownerKey(owner)) return existing;
      throw new ConflictError(existing);
    }
  }

  /**
   * Moves up to `max` claims stored under an old name to the address's own name, while `mayGoOn()`:
   * the same owner and spec under the new name first, then the old object deleted, by its uid. Returns
   * how many moved. Created under the new name by someone else meanwhile: the old one is left, and told.
   */
  async migrate(max: number, mayGoOn: () => boolean): Promise<number> {
    let moved = 0;
    for (const c of [...this.index.allClaims()]) {
      if (moved >= max || !mayGoOn()) break;
      if (c.name === undefined || c.ref === undefined) continue;
      const body = toObject(c);
      body.metadata!.annotations = { [ADMITTED_AT]: new Date(c.createdAt).toISOString() };
      try {
        await this.api.createClusterCustomObject(
          { group: GROUP, version: VERSION, plural: CLAIMS, body },
          OFF_ADMISSION,
        );
      } catch (e) {
        if (statusOf(e) !== 409) throw e;
        const existing = toClaim(
          (await this.api.getClusterCustomObject(
            { group: GROUP, version: VERSION, plural: CLAIMS, name: claimName(c.ip) },
            OFF_ADMISSION,
          )) as IPClaimObject,
        );
        if (!existing || ownerKey(existing.owner) !== ownerKey(c.owner)) {
          this.log?.error(
            { ip: c.ip.toString(), old: c.name, owner: c.owner, other: existing?.owner },
            'an IPClaim under an old name and one under the address itself name different owners; delete the wrong one by hand',
          );
          continue;
        }
      }
      try {
        await this.api.deleteClusterCustomObject(
          { group: GROUP, version: VERSION, plural: CLAIMS, name: c.name, body: { preconditions: { uid: c.ref } } },
          OFF_ADMISSION,
        );
      } catch (e) {
        if (statusOf(e) !== 404 && statusOf(e) !== 409) throw e;
      }
      moved++;
    }
    return moved;
  }

  async claimNext(pool: Pool, family: Family, owner: Owner): Promise<Claim> {
    for (let race = 0; race < MAX_RACES; race++) {
      const ip = this.index.firstFree(pool.name, family);
      if (!ip) throw new ExhaustedError(pool, family);
      try {
        return await this.claim(pool, ip, owner);
      } catch (e) {
        if (!(e instanceof ConflictError)) throw e;
      }
    }
    throw new Error(`IPPool ${pool.name}: lost ${MAX_RACES} races for a free address in a row`);
  }

  async bind(claim: Claim, pod: { name: string; uid: string }): Promise<void> {
    const owner = { kind: 'Pod', namespace: claim.owner.namespace, name: pod.name, uid: pod.uid };
    // The watch brings the claim back under its new owner.
    await this.patchClaim(
      claim,
      [{ op: 'replace', path: '/spec/owner', value: owner }],
      `binding ${claim.ip.toString()} to pod ${pod.name}`,
    );
  }

  async renew(claim: Claim): Promise<boolean> {
    // Not yet stored (a create still under way in this process): that create is the write.
    if (claim.ref === undefined) return true;
    const now = new Date();
    const owner = renewedOwner(claim.owner);
    const stored = await this.patchClaim(
      claim,
      [
        { op: 'add', path: '/metadata/annotations', value: { [ADMITTED_AT]: now.toISOString() } },
        ...(owner === claim.owner
          ? []
          : [{ op: 'replace', path: '/spec/owner', value: toObject({ ...claim, owner }).spec.owner }]),
      ],
      `renewing the claim on ${claim.ip.toString()} in IPPool ${claim.pool}`,
    );
    if (!stored) {
      this.index.remove(claim);
      return false;
    }
    // The watch may have brought this write, or a later one, in already: then that entry stays.
    const renewed = { ...claim, owner, createdAt: now.getTime(), version: stored.metadata?.resourceVersion };
    this.index.replace(claim, renewed);
    return true;
  }

  /**
   * Changes to this very claim object: the test of its uid makes the patch fail, rather than change
   * a later claim of the same address by someone else. Undefined when the claim is gone (404) or was
   * claimed again since (422).
   */
  private async patchClaim(claim: Claim, changes: object[], doing: string): Promise<IPClaimObject | undefined> {
    try {
      const stored = (await this.api.patchClusterCustomObject(
        {
          group: GROUP,
          version: VERSION,
          plural: CLAIMS,
          name: nameOf(claim),
          body: [{ op: 'test', path: '/metadata/uid', value: claim.ref }, ...changes],
        },
        WITHIN_ADMISSION,
      )) as IPClaimObject;
      this.metrics?.write('patch', 'ok');
      return stored;
    } catch (e) {
      const gone = statusOf(e) === 404 || statusOf(e) === 422;
      this.metrics?.write('patch', gone ? 'gone' : 'error');
      if (!gone) throw new Error(`${doing}: ${describeApiError(e)}`, { cause: e });
      return undefined;
    }
  }

  async release(claim: Claim): Promise<boolean> {
    // A claim whose create is still under way in this process: nothing stored to delete yet, and a
    // delete without a uid could take a later claim of the address. The create's own request gives
    // it back if it fails; else the reconciler does, once no pod comes.
    if (claim.ref === undefined) return false;
    try {
      await this.api.deleteClusterCustomObject(
        {
          group: GROUP,
          version: VERSION,
          plural: CLAIMS,
          name: nameOf(claim),
          // Delete this claim only, never a later claim of the same address by someone else, nor this one
          // once an admission has renewed it since it was read: the version is the one the caller judged.
          body: {
            preconditions: {
              uid: claim.ref,
              ...(claim.version === undefined ? {} : { resourceVersion: claim.version }),
            },
          },
        },
        WITHIN_ADMISSION,
      );
      this.metrics?.write('delete', 'ok');
    } catch (e) {
      const code = statusOf(e);
      this.metrics?.write('delete', code === 404 ? 'gone' : code === 409 ? 'conflict' : 'error');
      // 409: the precondition failed, so the claim was renewed or the address claimed again since; the
      // index has that newer state, or the watch brings it.
      if (code === 409) return false;
      if (code !== 404) throw new Error(`releasing ${claim.ip.toString()}: ${describeApiError(e)}`, { cause: e });
    }
    this.index.remove(claim);
    return true;
  }
}
