import type { Logger } from 'pino';
import type { Address, Family } from '../../net/address.js';
import type { ClaimIndex } from '../../ipam/claim-index.js';
import type { Claim, Owner } from '../../ipam/claim.js';
import type { Ledger, PodQuota } from '../../ipam/ledger.js';
import type { Pool } from '../../ipam/pool.js';
import type { KubeLedger } from '../kube-ledger.js';
import type { Membership } from './membership.js';

/** How often every replica checks its member Lease: made again at once if it went while netpin runs. */
const JOIN_EVERY_MS = 30_000;
/** How long start waits for the broker's first lists before serving this cluster's own pools anyway. */
const BROKER_START_MS = 10_000;

/**
 * A member cluster's ledger: this cluster's own IPPools and claims in its API server, and the
 * ClusterSet's shared pools and claims in the broker's, both read into one index. Every write goes
 * where its pool is kept; creating the IPClaim in the broker decides between member clusters as it
 * decides between replicas. A shared pool is served only while this cluster is a member in good
 * standing: else each request for it is refused, saying why, rather than claimed by a guess.
 */
export class ClusterSetLedger implements Ledger {
  readonly index: ClaimIndex;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly local: KubeLedger,
    private readonly broker: KubeLedger,
    readonly membership: Membership,
    private readonly log?: Logger,
  ) {
    if (local.index !== broker.index) throw new Error('a ClusterSet ledger needs one index for both stores');
    this.index = local.index;
  }

  get synced(): boolean {
    return this.local.synced;
  }

  /** This cluster's watches: the reconciler judges this cluster's claims by them. */
  complete(): boolean {
    return this.local.complete();
  }

  private of(pool: Pool, owner: Owner): KubeLedger {
    if (!pool.shared) return this.local;
    this.mustBeJoined(pool.name);
    const incoming = this.handedOverTo(owner);
    // Claimed now, the ordinals would get other addresses, and the handover would then find them taken.
    if (incoming) {
      throw new Error(
        `StatefulSet ${owner.namespace}/${owner.name} is being handed over to this cluster from cluster ${incoming.owner.cluster}, which still holds ${incoming.ip.toString()}: apply it again once cluster ${incoming.owner.cluster} has let its pods go`,
      );
    }
    return this.broker;
  }

  /** A peer's claim promised to this cluster for the same StatefulSet, still held by that peer. */
  private handedOverTo(owner: Owner): Claim | undefined {
    if (owner.kind !== 'StatefulSet') return undefined;
    const self = this.membership.self.id;
    for (const c of this.index.allClaims()) {
      const o = c.owner;
      if (c.handoverTo === self && o.kind === 'StatefulSet' && o.namespace === owner.namespace && o.name === owner.name)
        return c;
    }
    return undefined;
  }

  /** A shared pool is served only in good standing: joined, its Lease held by this installation. */
  private mustBeJoined(pool: string): void {
    const standing = this.membership.current;
    if (!standing.joined) throw new Error(`IPPool ${pool} is shared by the ClusterSet, and ${standing.why}`);
  }

  private get joined(): boolean {
    return this.membership.current.joined;
  }

  /**
   * A shared claim held already is handed out again only while this installation holds the cluster's id:
   * else the claims under that id are another installation's, whose pods use their addresses. A broker
   * out of reach for a while does not keep a StatefulSet's pod from its reservation.
   */
  checkHeld(claims: readonly Claim[]): void {
    if (this.membership.holdsId) return;
    for (const c of claims) if (c.shared) this.mustBeJoined(c.pool);
  }

  claim(pool: Pool, ip: Address, owner: Owner): Promise<Claim> {
    return this.of(pool, owner).claim(pool, ip, owner);
  }

  claimNext(pool: Pool, family: Family, owner: Owner): Promise<Claim> {
    return this.of(pool, owner).claimNext(pool, family, owner);
  }

  /** A shared claim promised to another member is handed to it, never freed: see promise(). */
  async release(claim: Claim): Promise<boolean> {
    if (!claim.shared) return this.local.release(claim);
    if (claim.owner.cluster !== undefined) return false; // a peer's: only that cluster lets it go
    // Out of good standing, a claim under this id may be the other installation's, whose pods are not seen here.
    if (!this.joined) return false;
    return claim.handoverTo === undefined ? this.broker.release(claim) : this.broker.handOver(claim);
  }

  async renew(claim: Claim): Promise<boolean> {
    if (!claim.shared) return this.local.renew(claim);
    this.mustBeJoined(claim.pool);
    return this.broker.renew(claim);
  }

  async bind(claim: Claim, pod: { name: string; uid: string }): Promise<void> {
    if (!claim.shared) return this.local.bind(claim, pod);
    if (this.joined) await this.broker.bind(claim, pod);
  }

  /** Records that this cluster's claim goes to member `to` once this cluster lets it go. */
  promise(claim: Claim, to: string): Promise<boolean> {
    this.mustBeJoined(claim.pool);
    return this.broker.promise(claim, to);
  }

  async refreshPools(): Promise<void> {
    await this.local.refreshPools();
    // A broker out of reach leaves the shared pools as last read: requests for them are refused by the create.
    await this.broker
      .refreshPools()
      .catch((e: unknown) => this.log?.warn({ err: e }, 'could not read the shared pools'));
  }

  podQuota(namespace: string): Promise<PodQuota | undefined> {
    return this.local.podQuota(namespace);
  }

  migrate(max: number, mayGoOn: () => boolean): Promise<number> {
    return this.local.migrate(max, mayGoOn);
  }

  async start(): Promise<void> {
    await this.local.start();
    await this.membership.join();
    this.timer = setInterval(() => void this.membership.join(), JOIN_EVERY_MS);
    this.timer.unref();
    // A broker out of reach must not keep this cluster's own pools from being served.
    const brokerListed = this.broker.start();
    await Promise.race([brokerListed, new Promise((r) => setTimeout(r, BROKER_START_MS).unref())]);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.broker.stop();
    await this.local.stop();
  }
}
