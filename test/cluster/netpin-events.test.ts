import { describe, expect, it } from 'vitest';
import { releaseEvents } from '../../src/cluster/netpin-events.js';
import type { Claim } from '../../src/ipam/claim.js';
import { v4 } from '../cni/fixtures.js';

describe('the Released events of a sweep', () => {
  const claim = (ip: string, owner: Claim['owner'], pool = 'web'): Claim => ({ pool, ip: v4(ip), owner, createdAt: 0 });

  it('are one per object that held the claims, named without a uid since it is gone', () => {
    const events = releaseEvents([
      claim('10.20.0.5', { kind: 'Pod', namespace: 'shop', name: 'api-x1', uid: 'req-1' }),
      claim('10.20.0.6', { kind: 'StatefulSet', namespace: 'shop', name: 'db', ordinal: 0 }),
      claim('10.20.0.7', { kind: 'StatefulSet', namespace: 'shop', name: 'db', ordinal: 1 }),
      claim('203.0.113.1', { kind: 'Egress', namespace: 'shop', workload: 'Deployment', name: 'api' }, 'out'),
      claim('10.20.0.8', { kind: 'Pod', namespace: 'shop', name: '', uid: 'req-2' }),
    ]);
    expect(events.every((e) => e.type === 'Normal' && e.reason === 'Released' && e.action === 'Release')).toBe(true);
    expect(events.map(({ regarding, note }) => ({ regarding, note }))).toEqual([
      {
        regarding: { apiVersion: 'v1', kind: 'Pod', namespace: 'shop', name: 'api-x1' },
        note: 'Released 10.20.0.5 from IPPool web',
      },
      {
        regarding: { apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: 'shop', name: 'db' },
        note: 'Released 10.20.0.6 from IPPool web (ordinal 0), 10.20.0.7 from IPPool web (ordinal 1)',
      },
      {
        regarding: { apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'shop', name: 'api' },
        note: 'Released egress address 203.0.113.1 from IPPool out',
      },
      {
        regarding: { apiVersion: 'netpin.io/v1alpha1', kind: 'IPPool', namespace: '', name: 'web' },
        note: 'Released 10.20.0.8 from IPPool web (claimed for a pod in namespace shop that was never seen)',
      },
    ]);
  });
});
