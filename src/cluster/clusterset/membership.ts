// A member's place in its ClusterSet: one Lease per member cluster in the broker's namespace
// netpin-clusterset, named after the cluster's id and held by its installation (the uid of its
// kube-system namespace). Creating it is joining: a second installation with the same id finds it held
// by another and refuses to join. Deleting it is leaving: the other members release the departed
// cluster's claims once it has stayed away for the leave grace period.
import { CoordinationV1Api, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { describeApiError, OFF_ADMISSION, statusOf } from '../kube.js';
import type { ClusterIdentity } from './identity.js';

export const MEMBERS_NAMESPACE = 'netpin-clusterset';

/** Where this member stands: joined, or why not (the reason every refusal of a shared pool gives). */
export type Standing = { joined: true } | { joined: false; why: string };

export class Membership {
  private readonly api: CoordinationV1Api;
  private standing: Standing = { joined: false, why: "netpin has not reached the ClusterSet's broker yet" };
  /** What the last read of this member's Lease said: held by this installation, or by another. */
  private ours: boolean | undefined;

  constructor(
    broker: KubeConfig,
    readonly self: ClusterIdentity,
    private readonly log?: Logger,
  ) {
    this.api = broker.makeApiClient(CoordinationV1Api);
  }

  get current(): Standing {
    return this.standing;
  }

  /**
   * Whether the broker's claims under this cluster's id are this installation's: its Lease was last read
   * held by this installation. A broker out of reach changes nothing here; another holder does.
   */
  get holdsId(): boolean {
    return this.ours === true;
  }

  /**
   * Joins, or confirms this member's Lease is still there and its own; made again if it was deleted
   * while this member runs (a member that runs has not left). Never throws: the standing says why not.
   */
  async join(): Promise<Standing> {
    const { id, installation } = this.self;
    try {
      let lease: V1Lease;
      try {
        lease = await this.api.readNamespacedLease({ name: id, namespace: MEMBERS_NAMESPACE }, OFF_ADMISSION);
      } catch (e) {
        if (statusOf(e) !== 404) throw e;
        lease = await this.api.createNamespacedLease(
          {
            namespace: MEMBERS_NAMESPACE,
            body: {
              metadata: { name: id, labels: { 'app.kubernetes.io/managed-by': 'netpin' } },
              spec: { holderIdentity: installation },
            },
          },
          OFF_ADMISSION,
        );
        this.log?.info({ cluster: id }, 'joined the ClusterSet');
      }
      const holder = lease.spec?.holderIdentity;
      this.ours = holder === installation;
      this.standing =
        holder === installation
          ? { joined: true }
          : {
              joined: false,
              why: `the cluster id ${id} is taken by another member of the ClusterSet (installation ${holder ?? 'unknown'}), so this cluster refuses to join; give it another id: the ClusterProperty cluster.clusterset.k8s.io, or the chart value clusterSet.clusterId`,
            };
    } catch (e) {
      // 409: another installation created it between the read and the create; the next round reads it.
      this.standing = { joined: false, why: `the ClusterSet's broker could not be reached: ${describeApiError(e)}` };
    }
    if (!this.standing.joined)
      this.log?.warn({ cluster: id, why: this.standing.why }, 'not a member of the ClusterSet');
    return this.standing;
  }

  /** The ids of the clusters that are members now; undefined when the broker cannot be read. */
  async members(): Promise<Set<string> | undefined> {
    try {
      const list = await this.api.listNamespacedLease({ namespace: MEMBERS_NAMESPACE }, OFF_ADMISSION);
      return new Set(list.items.map((l) => l.metadata?.name ?? ''));
    } catch (e) {
      this.log?.warn({ err: describeApiError(e) }, "could not list the ClusterSet's members");
      return undefined;
    }
  }
}
