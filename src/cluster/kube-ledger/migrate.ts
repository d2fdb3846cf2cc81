import type { Logger } from 'pino';
import type { ClaimIndex } from '../../ipam/claim-index.js';
import { ownerKey } from '../../ipam/claim.js';
import { GROUP, OFF_ADMISSION, statusOf, VERSION } from '../kube.js';
import { ADMITTED_AT, CLAIMS, claimName, toClaim, toObject, type ClaimsApi, type IPClaimObject } from './ipclaim.js';

/**
 * Moves up to `max` claims stored under an old name to the address's own name, while `mayGoOn()`:
 * the same owner and spec under the new name first, then the old object deleted, by its uid. Returns
 * how many moved. Created under the new name by someone else meanwhile: the old one is left, and told.
 */
export async function migrateClaims(
  api: ClaimsApi,
  index: ClaimIndex,
  max: number,
  mayGoOn: () => boolean,
  log?: Logger,
): Promise<number> {
  let moved = 0;
  for (const c of [...index.allClaims()]) {
    if (moved >= max || !mayGoOn()) break;
    if (c.name === undefined || c.ref === undefined || c.shared) continue;
    const body = toObject(c);
    body.metadata!.annotations = { [ADMITTED_AT]: new Date(c.createdAt).toISOString() };
    try {
      await api.createClusterCustomObject({ group: GROUP, version: VERSION, plural: CLAIMS, body }, OFF_ADMISSION);
    } catch (e) {
      if (statusOf(e) !== 409) throw e;
      const existing = toClaim(
        (await api.getClusterCustomObject(
          { group: GROUP, version: VERSION, plural: CLAIMS, name: claimName(c.ip) },
          OFF_ADMISSION,
        )) as IPClaimObject,
      );
      if (!existing || ownerKey(existing.owner) !== ownerKey(c.owner)) {
        log?.error(
          { ip: c.ip.toString(), old: c.name, owner: c.owner, other: existing?.owner },
          'an IPClaim under an old name and one under the address itself name different owners; delete the wrong one by hand',
        );
        continue;
      }
    }
    try {
      await api.deleteClusterCustomObject(
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
