// Stand-ins for a member's two KubeLedgers and its membership: only for deterministic tests of the
// ClusterSet's routing and rounds; the real broker is in test/e2e/clusterset.test.ts.
import { vi } from 'vitest';
import { ClusterSetLedger } from '../../../src/cluster/clusterset/ledger.js';
import type { Membership, Standing } from '../../../src/cluster/clusterset/membership.js';
import type { KubeLedger } from '../../../src/cluster/kube-ledger.js';
import { ClaimIndex } from '../../../src/ipam/claim-index.js';
import type { Claim, Owner } from '../../../src/ipam/claim.js';
import { compilePool, type Pool } from '../../../src/ipam/pool.js';

export const own: Pool = compilePool({ metadata: { name: 'own' }, spec: { cidr: '10.1.0.0/28' } });
export const shared: Pool = {
  ...compilePool({ metadata: { name: 'shared' }, spec: { cidr: '10.99.0.0/28' } }),
  shared: true,
};
export const db = (ordinal: number, cluster?: string): Owner => ({
  kind: 'StatefulSet',
  namespace: 'shop',
  name: 'db',
  ordinal,
  ...(cluster === undefined ? {} : { cluster }),
});

function fakeLedger(index: ClaimIndex) {
  return {
    index,
    claim: vi.fn(async (pool: Pool, ip, owner: Owner): Promise<Claim> => ({
      pool: pool.name,
      ip,
      owner,
      createdAt: 0,
    })),
    claimNext: vi.fn(),
    release: vi.fn(async (_claim: Claim) => true),
    handOver: vi.fn(async () => true),
    promise: vi.fn(async (_claim: Claim, _to: string) => true),
    renew: vi.fn(async () => true),
    bind: vi.fn(async () => {}),
  };
}

export function setLedger(standing: Standing, members?: Set<string>, holdsId = standing.joined) {
  const index = new ClaimIndex();
  const local = fakeLedger(index);
  const broker = fakeLedger(index);
  const membership = {
    current: standing,
    self: { id: 'a', source: 'configured', installation: 'uid-a' },
    members: vi.fn(async () => members),
    holdsId,
  } as unknown as Membership;
  const ledger = new ClusterSetLedger(local as unknown as KubeLedger, broker as unknown as KubeLedger, membership);
  return { ledger, local, broker, index };
}
