import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Address, Family } from '../net/address.js';
import { ClaimIndex } from '../ipam/claim-index.js';
import type { Claim, Owner } from '../ipam/claim.js';
import type { Ledger, PodQuota } from '../ipam/ledger.js';
import type { Pool } from '../ipam/pool.js';
import { LedgerFeed } from './kube-ledger/feed.js';
import { CLAIMS_PAGE, type ClaimsApi, type ClaimLocation } from './kube-ledger/ipclaim.js';
import { migrateClaims } from './kube-ledger/migrate.js';
import { readPodQuota } from './kube-ledger/pod-quota.js';
import { ClaimWriter, type LedgerMetrics } from './kube-ledger/writes.js';

// The ledger's surface, wherever each part lives.
export {
  CLAIMS_PAGE,
  CLUSTER_LABEL,
  claimName,
  listClaims,
  toClaim,
  toObject,
  type ClaimsApi,
  type ClaimLocation,
  type IPClaimObject,
} from './kube-ledger/ipclaim.js';
export type { ClaimWrite, LedgerMetrics, WriteOutcome } from './kube-ledger/writes.js';

/**
 * Claims as IPClaim objects in the API server, one per address. Reads come from
 * an index that watches IPPools and IPClaims; a write is one create or delete.
 * Two replicas racing for an address cannot both win the create: the loser
 * learns the holder and moves on to the next free address.
 *
 * Each part is a module of kube-ledger/: the IPClaim objects, the watches that feed the index, the
 * writes, the migration of old names, and the pods quota.
 */
export class KubeLedger implements Ledger {
  private readonly api: ClaimsApi;
  private readonly writes: ClaimWriter;
  private feed: LedgerFeed | undefined;
  synced = false;

  constructor(
    private readonly kc: KubeConfig,
    private readonly log?: Logger,
    /** IPClaims per list call when (re)listing. */
    private readonly claimsPage = CLAIMS_PAGE,
    /** The claims' API; a test may answer it itself, at the interleavings it chooses. */
    api?: ClaimsApi,
    /** Where writes are counted; tests and tools count none. */
    metrics: LedgerMetrics = { write: () => {} },
    /** What the watches fill, given by whoever reads it too (the metrics, a ClusterSet's other ledger). */
    readonly index = new ClaimIndex(),
    /** A ClusterSet's broker: this cluster's id, and how messages name the broker (" in the ClusterSet's broker"). */
    private readonly store: ClaimLocation & { where?: string } = {},
  ) {
    this.api = api ?? kc.makeApiClient(CustomObjectsApi);
    this.writes = new ClaimWriter(this.api, this.index, metrics, store, store.where);
  }

  podQuota(namespace: string): Promise<PodQuota | undefined> {
    return readPodQuota(this.kc, namespace, this.log);
  }

  async start(): Promise<void> {
    this.feed = new LedgerFeed(this.kc, this.api, this.index, this.claimsPage, this.log, this.store);
    await this.feed.start();
    this.synced = true;
  }

  async stop(): Promise<void> {
    await this.feed?.stop();
  }

  /** Whether pools and claims have each completed their latest list (Reflector.complete). */
  complete(): boolean {
    return this.feed?.complete() === true;
  }

  /** The IPPools as the API server has them now; before start, nothing: the first list brings them all. */
  async refreshPools(): Promise<void> {
    await this.feed?.refreshPools();
  }

  claim(pool: Pool, ip: Address, owner: Owner): Promise<Claim> {
    return this.writes.claim(pool, ip, owner);
  }

  claimNext(pool: Pool, family: Family, owner: Owner): Promise<Claim> {
    return this.writes.claimNext(pool, family, owner);
  }

  bind(claim: Claim, pod: { name: string; uid: string }): Promise<void> {
    return this.writes.bind(claim, pod);
  }

  renew(claim: Claim): Promise<boolean> {
    return this.writes.renew(claim);
  }

  release(claim: Claim): Promise<boolean> {
    return this.writes.release(claim);
  }

  /** See ClaimWriter.promise: for a ClusterSet's broker. */
  promise(claim: Claim, to: string): Promise<boolean> {
    return this.writes.promise(claim, to);
  }

  /** See ClaimWriter.handOver: for a ClusterSet's broker. */
  handOver(claim: Claim): Promise<boolean> {
    return this.writes.handOver(claim);
  }

  migrate(max: number, mayGoOn: () => boolean): Promise<number> {
    return migrateClaims(this.api, this.index, max, mayGoOn, this.log);
  }
}
