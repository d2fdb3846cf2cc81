import { CustomObjectsApi, type ConfigurationOptions, type KubeConfig } from '@kubernetes/client-node';
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import {
  egressKinds,
  egressLabelValue,
  egressResources,
  MANAGED_BY,
  type EgressCni,
  type EgressResource,
  type EgressUse,
} from '../cni/egress.js';
import { familyOf, type DualAddress } from '../net/address.js';
import { ownerKey, type Claim } from '../ipam/claim.js';
import type { Ledger } from '../ipam/ledger.js';
import { OFF_ADMISSION_MS, statusOf, withTimeout } from './kube.js';

interface Stored {
  metadata?: { name?: string; resourceVersion?: string; labels?: Record<string, string> };
  spec?: unknown;
}

/**
 * Keeps the cluster resources that put netpin's egress addresses on gateway nodes: one per
 * egress address claimed in the ledger (Antrea Egress, Cilium CiliumEgressGatewayPolicy), and
 * Antrea's ExternalIPPool per egress pool in use. It creates what is missing, puts back what was
 * changed by hand, and deletes what no claim needs any more; the reconciler releases a claim once
 * no pod has used its address for the grace period. It only ever touches resources labelled as
 * netpin's. Runs on the leader, after each sweep.
 */
export class EgressController {
  private readonly api: CustomObjectsApi;
  // A hung call would hold the leader's sweeps, which wait for this sync.
  private readonly calls: ConfigurationOptions;

  constructor(
    kc: KubeConfig,
    private readonly ledger: Ledger,
    private readonly cni: EgressCni,
    private readonly excludedCIDRs: readonly string[],
    private readonly log?: Logger,
    timeoutMs = OFF_ADMISSION_MS,
  ) {
    this.api = kc.makeApiClient(CustomObjectsApi);
    this.calls = withTimeout(timeoutMs);
  }

  /** The resources the ledger's egress claims need. */
  desired(): EgressResource[] {
    const index = this.ledger.index;
    const byOwner = new Map<string, Claim[]>();
    for (const c of index.allClaims()) {
      if (c.owner.kind !== 'Egress') continue;
      const key = ownerKey(c.owner);
      byOwner.set(key, [...(byOwner.get(key) ?? []), c]);
    }
    const uses: EgressUse[] = [];
    for (const claims of byOwner.values()) {
      // The pods carry one label for all the families of their egress: each family's resource selects it.
      const dual: DualAddress = {};
      for (const c of claims) Object.assign(dual, { [familyOf(c.ip)]: c.ip });
      for (const c of claims) {
        const pool = index.pool(c.pool);
        if (pool?.egress)
          uses.push({ address: c.ip, namespace: c.owner.namespace, labelValue: egressLabelValue(dual), pool });
      }
    }
    return egressResources(this.cni, uses, this.excludedCIDRs);
  }

  async sync(): Promise<void> {
    const desired = this.desired();
    for (const kind of egressKinds(this.cni)) {
      const [group, version] = kind.apiVersion.split('/') as [string, string];
      const target = { group, version, plural: kind.plural };
      const list = (await this.api.listClusterCustomObject(
        { ...target, labelSelector: selector(MANAGED_BY) },
        this.calls,
      )) as { items: Stored[] };
      const existing = new Map(list.items.map((o) => [o.metadata?.name ?? '', o]));
      for (const want of desired.filter((d) => d.plural === kind.plural)) {
        const have = existing.get(want.metadata.name);
        existing.delete(want.metadata.name);
        const body = { apiVersion: want.apiVersion, kind: want.kind, metadata: want.metadata, spec: want.spec };
        if (!have) {
          await this.api.createClusterCustomObject({ ...target, body }, this.calls);
          this.log?.info({ kind: want.kind, name: want.metadata.name }, 'created egress resource');
        } else if (!isDeepStrictEqual(have.spec, want.spec)) {
          await this.api.replaceClusterCustomObject(
            {
              ...target,
              name: want.metadata.name,
              body: { ...body, metadata: { ...want.metadata, resourceVersion: have.metadata?.resourceVersion } },
            },
            this.calls,
          );
          this.log?.warn({ kind: want.kind, name: want.metadata.name }, 'put back an egress resource changed by hand');
        }
      }
      for (const [name] of existing) {
        try {
          await this.api.deleteClusterCustomObject({ ...target, name }, this.calls);
          this.log?.info({ plural: kind.plural, name }, 'deleted an egress resource no claim needs');
        } catch (e) {
          if (statusOf(e) !== 404) throw e;
        }
      }
    }
  }
}

function selector(labels: Readonly<Record<string, string>>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}
