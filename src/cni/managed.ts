// The cluster-scoped objects netpin keeps for a CNI (egress policies and pools, Cilium's single-address
// pools): what they look like, and how netpin tells its own from everyone else's.
import type { Address } from '../net/address.js';
import type { ClaimIndex } from '../ipam/claim-index.js';

/** Marks the cluster resources netpin keeps, so that it never touches one it did not create. */
export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'netpin' } as const;

/** Whether an object's labels mark it as netpin's. */
export function isNetpins(labels: Readonly<Record<string, string>> | undefined): boolean {
  return Object.entries(MANAGED_BY).every(([k, v]) => labels?.[k] === v);
}

/** A kind of object netpin keeps: where the API server serves it. */
export interface ManagedKind {
  apiVersion: string;
  plural: string;
}

/** One object netpin keeps, as it must be. */
export interface ManagedResource extends ManagedKind {
  kind: string;
  metadata: { name: string; labels: Record<string, string> };
  spec: Record<string, unknown>;
}

/**
 * The objects one feature keeps in line with the ledger's claims: created when missing, put back when
 * changed by hand, deleted when no claim needs them.
 */
export interface ManagedSet {
  kinds: ManagedKind[];
  desired(index: ClaimIndex): ManagedResource[];
  /**
   * How long an object no claim needs is kept after its creation. Set where admission creates objects:
   * another replica may have made one for a claim this replica's watch has not brought yet.
   */
  keepYoungMs?: number;
}

export function managedResource(
  kind: Pick<ManagedResource, 'apiVersion' | 'kind' | 'plural'>,
  name: string,
  spec: Record<string, unknown>,
): ManagedResource {
  return { ...kind, metadata: { name, labels: { ...MANAGED_BY } }, spec };
}

/**
 * One address as part of a label value or object name: ':' is allowed in neither and '-' is. A leading
 * or trailing "::" gets a 0 ("0--1" for ::1), which keeps the part valid and names the same address.
 */
export function addressPart(addr: Address): string {
  let part = addr.toString().replaceAll(':', '-');
  if (part.startsWith('-')) part = `0${part}`;
  if (part.endsWith('-')) part = `${part}0`;
  return part;
}
