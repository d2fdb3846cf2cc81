import type { CustomObjectsApi, KubernetesObject } from '@kubernetes/client-node';
import type { IPv6 } from 'ipaddr.js';
import { familyOf, parseAddress, type Address } from '../../net/address.js';
import type { Claim, EgressOwner, Owner } from '../../ipam/claim.js';
import { GROUP, VERSION } from '../kube.js';
import { pages, type Page } from '../reflector.js';

export interface IPClaimObject extends KubernetesObject {
  spec: {
    pool: string;
    ip: string;
    /** In a ClusterSet's broker: the id of the member cluster that holds the claim. */
    cluster?: string;
    /** In a ClusterSet's broker: the member cluster the claim goes to once its holder lets it go. */
    handoverTo?: string;
    owner: {
      kind: Owner['kind'];
      namespace: string;
      name?: string;
      uid?: string;
      ordinal?: number;
      node?: string;
      workload?: EgressOwner['workload'];
    };
  };
}

export const CLAIMS = 'ipclaims';
/** When an admission last handed the claim out (renew): the reconciler's grace period counts from the later of this and the creation. */
export const ADMITTED_AT = 'netpin.io/admitted-at';
/** Until when the claim stays whatever the sweep finds (a ClusterSet handover waiting for its StatefulSet). */
export const KEPT_UNTIL = 'netpin.io/kept-until';

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
export function nameOf(claim: Claim): string {
  return claim.name ?? claimName(claim.ip);
}

/**
 * Where a ledger keeps its claims: this cluster's API server (no cluster), or a ClusterSet's broker,
 * where every claim names the member cluster holding it and `cluster` is this one's id.
 */
export interface ClaimLocation {
  cluster?: string;
}

export const CLUSTER_LABEL = 'netpin.io/cluster';

/** The IPClaim object that records a claim. */
export function toObject(claim: Claim, store: ClaimLocation = {}): IPClaimObject {
  const o = claim.owner;
  const cluster = store.cluster === undefined ? undefined : (o.cluster ?? store.cluster);
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'IPClaim',
    metadata: {
      name: claimName(claim.ip),
      labels: { 'netpin.io/pool': claim.pool, ...(cluster === undefined ? {} : { [CLUSTER_LABEL]: cluster }) },
    },
    spec: {
      pool: claim.pool,
      ip: claim.ip.toString(),
      ...(cluster === undefined ? {} : { cluster }),
      owner:
        o.kind === 'StatefulSet'
          ? { kind: o.kind, namespace: o.namespace, name: o.name, ordinal: o.ordinal }
          : o.kind === 'DaemonSet'
            ? { kind: o.kind, namespace: o.namespace, name: o.name, node: o.node }
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

/** The claim an IPClaim object records; undefined for a malformed one, or a broker's claim naming no cluster. */
export function toClaim(obj: IPClaimObject, store: ClaimLocation = {}): Claim | undefined {
  const s = obj.spec;
  const ip = s && parseAddress(s.ip);
  if (!ip || !s.owner?.namespace) return undefined;
  if (store.cluster !== undefined && (typeof s.cluster !== 'string' || s.cluster === '')) return undefined;
  const o = s.owner;
  const local: Owner =
    o.kind === 'StatefulSet'
      ? { kind: 'StatefulSet', namespace: o.namespace, name: o.name ?? '', ordinal: o.ordinal ?? 0 }
      : o.kind === 'DaemonSet'
        ? { kind: 'DaemonSet', namespace: o.namespace, name: o.name ?? '', node: o.node ?? '' }
        : o.kind === 'Egress'
          ? {
              kind: 'Egress',
              namespace: o.namespace,
              workload: o.workload ?? 'Pod',
              name: o.name ?? '',
              ...(o.ordinal === undefined ? {} : { ordinal: o.ordinal }),
            }
          : { kind: 'Pod', namespace: o.namespace, name: o.name ?? '', uid: o.uid };
  const peer = store.cluster !== undefined && s.cluster !== store.cluster ? s.cluster : undefined;
  const owner: Owner = peer === undefined ? local : { ...local, cluster: peer };
  const created = obj.metadata?.creationTimestamp;
  const admitted = Date.parse(obj.metadata?.annotations?.[ADMITTED_AT] ?? '');
  const createdAt = Math.max(created ? new Date(created).getTime() : Date.now(), Number.isNaN(admitted) ? 0 : admitted);
  const name = obj.metadata?.name;
  const keptUntil = Date.parse(obj.metadata?.annotations?.[KEPT_UNTIL] ?? '') || 0;
  return {
    pool: s.pool,
    ip,
    owner,
    createdAt,
    ref: obj.metadata?.uid,
    version: obj.metadata?.resourceVersion,
    // Stored under another name: `<pool>.<address>`, as netpin named claims before 0.2.
    ...(name !== undefined && name !== claimName(ip) && { name }),
    ...(store.cluster !== undefined && { shared: true }),
    ...(store.cluster !== undefined && typeof s.handoverTo === 'string' && { handoverTo: s.handoverTo }),
    ...(keptUntil > 0 && { keptUntil }),
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
export async function listClaimPage(
  api: ClaimsApi,
  limit: number,
  next: string | undefined,
): Promise<Page<IPClaimObject>> {
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
