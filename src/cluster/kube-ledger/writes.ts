import type { Address, Family } from '../../net/address.js';
import type { ClaimIndex } from '../../ipam/claim-index.js';
import { ConflictError, ExhaustedError, ownerKey, renewedOwner, type Claim, type Owner } from '../../ipam/claim.js';
import type { Pool } from '../../ipam/pool.js';
import { describeApiError, GROUP, statusOf, VERSION, WITHIN_ADMISSION } from '../kube.js';
import {
  ADMITTED_AT,
  CLAIMS,
  KEPT_UNTIL,
  claimName,
  nameOf,
  toClaim,
  toObject,
  type ClaimsApi,
  type ClaimLocation,
  type IPClaimObject,
} from './ipclaim.js';

/** How long a cluster keeps a claim handed over to it for its StatefulSet to come: time to apply it there. */
const HANDOVER_KEEP_MS = 10 * 60_000;

// Each lost race moves first-fit one address on; past this many, something else is wrong.
const MAX_RACES = 64;

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
 * The ledger's writes, each one call to the API server: a create is a claim, a patch names the pod or
 * renews, a delete releases. The index is kept in step with each, ahead of the watch.
 */
export class ClaimWriter {
  constructor(
    private readonly api: ClaimsApi,
    private readonly index: ClaimIndex,
    private readonly metrics: LedgerMetrics,
    private readonly store: ClaimLocation = {},
    /** Where the claims are kept, for messages: "" for this cluster's API server. */
    private readonly where = '',
  ) {}

  async claim(pool: Pool, ip: Address, owner: Owner): Promise<Claim> {
    const mine = this.index.heldBy(ip, owner);
    if (mine) return mine;
    // A broker's claim says so from the start: the ClusterSet's ledger sends its renewal, naming and
    // release where it is kept by that mark, and this entry stays in the index until the claim changes.
    const pending: Claim = {
      pool: pool.name,
      ip,
      owner,
      createdAt: Date.now(),
      ...(this.store.cluster !== undefined && { shared: true }),
    };
    // In the index before the create, so that concurrent admissions in this process skip the address.
    this.index.add(pending);
    try {
      const created = (await this.api.createClusterCustomObject(
        { group: GROUP, version: VERSION, plural: CLAIMS, body: toObject(pending, this.store) },
        WITHIN_ADMISSION,
      )) as IPClaimObject;
      const stored: Claim = { ...pending, ref: created.metadata?.uid, version: created.metadata?.resourceVersion };
      this.metrics.write('create', 'ok');
      if (this.index.replace(pending, stored)) return stored;
      // The watch confirmed it first: that entry, as new as this one or newer, is the claim.
      const held = this.index.holderOf(ip);
      return held !== undefined && held.ref === stored.ref ? held : stored;
    } catch (e) {
      this.metrics.write('create', statusOf(e) === 409 ? 'conflict' : 'error');
      if (statusOf(e) !== 409) {
        // A create that timed out may still land: then the watch brings the claim back, and the
        // reconciler releases it after the grace period if no pod comes. Until then the address is
        // not held here, unless the watch has already shown that the create landed (confirmed it).
        if (this.index.holderOf(ip) === pending) this.index.remove(pending);
        throw new Error(`claiming ${ip.toString()} in IPPool ${pool.name}${this.where}: ${describeApiError(e)}`, {
          cause: e,
        });
      }
      this.index.remove(pending);
      // Another replica won; the watch may not have told us yet, so ask.
      const name = claimName(ip);
      const stored = await this.api
        .getClusterCustomObject({ group: GROUP, version: VERSION, plural: CLAIMS, name }, WITHIN_ADMISSION)
        .catch((err: unknown) => {
          throw new Error(`reading IPClaim ${name}, which another writer created first: ${describeApiError(err)}`);
        });
      const existing = toClaim(stored as IPClaimObject, this.store);
      if (!existing) throw new Error(`IPClaim ${name} is malformed`, { cause: e });
      this.index.add(existing);
      if (ownerKey(existing.owner) === ownerKey(owner)) return existing;
      throw new ConflictError(existing);
    }
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
          : [{ op: 'replace', path: '/spec/owner', value: toObject({ ...claim, owner }, this.store).spec.owner }]),
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
   * A ClusterSet's claim, promised to member cluster `to`: recorded in the broker, so that whichever replica
   * leads later hands it over rather than releasing it. False when the claim is gone.
   */
  async promise(claim: Claim, to: string): Promise<boolean> {
    const stored = await this.patchClaim(
      claim,
      [{ op: 'add', path: '/spec/handoverTo', value: to }],
      `promising ${claim.ip.toString()} to cluster ${to}`,
    );
    if (stored) this.index.put(toClaim(stored, this.store) ?? claim);
    return stored !== undefined;
  }

  /**
   * Gives a promised claim to the cluster it was promised to, in one write, exactly as it was judged (its
   * uid and resourceVersion): the address is held all along, by this cluster and then by that one, so no
   * third cluster can take it in between. False when the claim moved on since. The receiving cluster
   * keeps it for HANDOVER_KEEP_MS whether or not its StatefulSet exists yet, where the claim's first
   * admission, long past, would have it released at that cluster's next sweep.
   */
  async handOver(claim: Claim): Promise<boolean> {
    const to = claim.handoverTo;
    if (to === undefined || claim.ref === undefined) return false;
    const stored = await this.patchClaim(
      claim,
      [
        ...(claim.version === undefined
          ? []
          : [{ op: 'test', path: '/metadata/resourceVersion', value: claim.version }]),
        {
          op: 'add',
          path: '/metadata/annotations',
          value: {
            [ADMITTED_AT]: new Date().toISOString(),
            [KEPT_UNTIL]: new Date(Date.now() + HANDOVER_KEEP_MS).toISOString(),
          },
        },
        { op: 'replace', path: '/spec/cluster', value: to },
        { op: 'remove', path: '/spec/handoverTo' },
        { op: 'add', path: '/metadata/labels/netpin.io~1cluster', value: to },
      ],
      `handing ${claim.ip.toString()} over to cluster ${to}`,
    );
    if (!stored) return false;
    this.index.put(toClaim(stored, this.store) ?? claim);
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
      this.metrics.write('patch', 'ok');
      return stored;
    } catch (e) {
      const gone = statusOf(e) === 404 || statusOf(e) === 422;
      this.metrics.write('patch', gone ? 'gone' : 'error');
      if (!gone) throw new Error(`${doing}${this.where}: ${describeApiError(e)}`, { cause: e });
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
      this.metrics.write('delete', 'ok');
    } catch (e) {
      const code = statusOf(e);
      this.metrics.write('delete', code === 404 ? 'gone' : code === 409 ? 'conflict' : 'error');
      // 409: the precondition failed, so the claim was renewed or the address claimed again since; the
      // index has that newer state, or the watch brings it.
      if (code === 409) return false;
      if (code !== 404)
        throw new Error(`releasing ${claim.ip.toString()}${this.where}: ${describeApiError(e)}`, { cause: e });
    }
    this.index.remove(claim);
    return true;
  }
}
