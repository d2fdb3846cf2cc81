import type { Address, Family } from '../net/address.js';
import { ClaimIndex } from './claim-index.js';
import { ExhaustedError, renewedOwner, type Claim, type Owner } from './claim.js';
import type { Ledger, PodQuota } from './ledger.js';
import type { Pool } from './pool.js';

/** A ledger that lives in this process only: for local runs and unit tests. */
export class MemoryLedger implements Ledger {
  readonly index = new ClaimIndex();
  /** No cluster, so no ResourceQuota: unset, unless a test stands one in. */
  podQuota?: (namespace: string) => Promise<PodQuota | undefined>;

  constructor(pools: Pool[] = []) {
    for (const p of pools) this.index.setPool(p);
  }

  async claim(pool: Pool, ip: Address, owner: Owner): Promise<Claim> {
    const mine = this.index.heldBy(ip, owner);
    if (mine) return mine;
    const claim: Claim = { pool: pool.name, ip, owner, createdAt: Date.now() };
    this.index.add(claim);
    return claim;
  }

  async claimNext(pool: Pool, family: Family, owner: Owner): Promise<Claim> {
    const ip = this.index.firstFree(pool.name, family);
    if (!ip) throw new ExhaustedError(pool, family);
    return this.claim(pool, ip, owner);
  }

  async release(claim: Claim): Promise<boolean> {
    // Exactly the claim the caller judged: a renewal since replaced it, as it changes the stored version.
    return this.index.holderOf(claim.ip) === claim && this.index.remove(claim);
  }

  async renew(claim: Claim): Promise<boolean> {
    return this.index.replace(claim, { ...claim, owner: renewedOwner(claim.owner), createdAt: Date.now() });
  }

  async bind(claim: Claim, pod: { name: string; uid: string }): Promise<void> {
    if (this.index.remove(claim))
      this.index.add({
        ...claim,
        owner: { kind: 'Pod', namespace: claim.owner.namespace, name: pod.name, uid: pod.uid },
      });
  }

  async start(): Promise<void> {}

  async stop(): Promise<void> {}
}
