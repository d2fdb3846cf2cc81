import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import type { PodRecord } from '../../src/cluster/pod-tracker.js';
import type { Claim, Owner } from '../../src/ipam/claim.js';
import { compilePool, type IPPoolSpec } from '../../src/ipam/pool.js';
import type { Address } from '../../src/net/address.js';
import {
  formatAge,
  namespaceTable,
  poolDetail,
  poolTable,
  servedNamespaces,
  table,
  type StatusInput,
} from '../../src/cli/status.js';
import { defaultsTable } from '../../src/cli/status-defaults.js';
import type { NamespaceDefaults } from '../../src/intent/defaults.js';

const NOW = Date.parse('2026-01-01T12:00:00Z');
const pool = (name: string, spec: IPPoolSpec) => compilePool({ metadata: { name }, spec });
const claim = (p: string, ip: string, owner: Owner, ageSeconds: number): Claim => ({
  pool: p,
  ip: ipaddr.parse(ip) as Address,
  owner,
  createdAt: NOW - ageSeconds * 1000,
});
const pod = (namespace: string, name: string, addresses: string[] = [], egress: string[] = []): PodRecord => ({
  namespace,
  name,
  uid: `${namespace}-${name}`,
  addresses,
  egress,
});
/** A table's rows as cells: columns are two or more spaces apart. */
const cells = (text: string) => text.split('\n').map((line) => line.split(/ {2,}/));

const web = pool('web', { cidr: '10.50.0.0/24', namespaceSelector: { matchLabels: { team: 'web' } } });
const open = pool('open', { ranges: ['10.60.0.1-10.60.0.8'] });
const dual = pool('dual', {
  ranges: ['10.70.0.1-10.70.0.2', 'fd00::1-fd00::4'],
  namespaceSelector: { matchLabels: { team: 'db' } },
});
const out = pool('out', {
  ranges: ['10.90.0.1-10.90.0.4'],
  egress: { nodeSelector: { matchLabels: { egress: 'true' } } },
});

// The chart's webhook namespaceSelector: opted in, and never kube-system.
const input: StatusInput = {
  pools: [dual, open, out, web],
  claims: [
    claim('web', '10.50.0.1', { kind: 'StatefulSet', namespace: 'shop', name: 'db', ordinal: 0 }, 90),
    claim('web', '10.50.0.2', { kind: 'StatefulSet', namespace: 'shop', name: 'db', ordinal: 1 }, 600),
    claim('web', '10.50.0.20', { kind: 'Pod', namespace: 'shop', name: 'solo' }, 7200),
    claim('web', '10.50.0.21', { kind: 'Pod', namespace: 'shop', name: '', uid: 'req-1' }, 5),
    claim('web', '10.50.0.22', { kind: 'Pod', namespace: 'shop', name: 'gone' }, 3 * 86400),
    claim('out', '10.90.0.1', { kind: 'Egress', namespace: 'shop', workload: 'Deployment', name: 'api' }, 60),
    claim('dual', 'fd00::2', { kind: 'Pod', namespace: 'db', name: 'pg' }, 60),
  ],
  pods: [
    pod('shop', 'db-0', ['10.50.0.1']),
    pod('shop', 'solo', ['10.50.0.20']),
    pod('shop', 'api-1', ['10.244.0.9'], ['10.90.0.1']),
    pod('shop', 'new-xyz', ['10.50.0.21']),
    // Not opted in: its address is held all the same, with no claim.
    pod('plain', 'rogue', ['10.50.0.30']),
    pod('db', 'pg', ['fd00::2']),
  ],
  namespaces: [
    { name: 'shop', labels: { 'netpin.io/enabled': 'true', team: 'web', 'kubernetes.io/metadata.name': 'shop' } },
    { name: 'plain', labels: { team: 'web', 'kubernetes.io/metadata.name': 'plain' } },
    { name: 'db', labels: { 'netpin.io/enabled': 'true', team: 'db', 'kubernetes.io/metadata.name': 'db' } },
    {
      name: 'kube-system',
      labels: { 'netpin.io/enabled': 'true', team: 'web', 'kubernetes.io/metadata.name': 'kube-system' },
    },
  ],
  optIn: {
    matchExpressions: [
      { key: 'netpin.io/enabled', operator: 'In', values: ['true'] },
      { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system'] },
    ],
  },
};

describe('netpin status, all pools', () => {
  it('gives one row per pool and family: size, held, free, largest free range and the namespaces served', () => {
    expect(cells(poolTable(input))).toEqual([
      ['POOL', 'USE', 'FAMILY', 'SIZE', 'HELD', 'FREE', 'LARGEST FREE RANGE', 'NAMESPACES'],
      ['dual', 'pods', 'IPv4', '2', '0', '2', '10.70.0.1-10.70.0.2 (2)', 'db'],
      ['dual', 'pods', 'IPv6', '4', '1', '3', 'fd00::3-fd00::4 (2)', 'db'],
      ['open', 'pods', 'IPv4', '8', '0', '8', '10.60.0.1-10.60.0.8 (8)', 'all opted-in (2)'],
      ['out', 'egress', 'IPv4', '4', '1', '3', '10.90.0.2-10.90.0.4 (3)', 'all opted-in (2)'],
      // Network and broadcast left out; 5 claims and one pod without a claim; kube-system never opts in.
      ['web', 'pods', 'IPv4', '254', '6', '248', '10.50.0.31-10.50.0.254 (224)', 'shop'],
    ]);
  });

  it('says "none" for a full pool and for a selector no opted-in namespace matches', () => {
    const tiny = pool('tiny', { ranges: ['10.80.0.1'], namespaceSelector: { matchLabels: { team: 'nobody' } } });
    const full = {
      ...input,
      pools: [tiny],
      claims: [claim('tiny', '10.80.0.1', { kind: 'Pod', namespace: 'shop', name: 'solo' }, 1)],
    };
    expect(cells(poolTable(full))[1]).toEqual(['tiny', 'pods', 'IPv4', '1', '1', '0', 'none', 'none']);
  });

  it('lists the opted-in namespaces a selector admits, and counts the rest in the table', () => {
    const many = Array.from({ length: 6 }, (_, i) => ({
      name: `ns${i}`,
      labels: { 'netpin.io/enabled': 'true', team: 'web' },
    }));
    const wide = { ...input, pools: [web], claims: [], pods: [], namespaces: many };
    expect(servedNamespaces(wide, web)).toEqual(['ns0', 'ns1', 'ns2', 'ns3', 'ns4', 'ns5']);
    expect(cells(poolTable(wide))[1]!.at(-1)).toBe('ns0, ns1, ns2, ns3, +2 more');
    expect(poolDetail(wide, web, NOW)).toContain('Namespaces: ns0, ns1, ns2, ns3, ns4, ns5');
    expect(poolDetail({ ...wide, pools: [open] }, open, NOW)).toContain(
      'Namespaces: all opted-in (6): ns0, ns1, ns2, ns3, ns4, ns5',
    );
  });

  it('says so when there is no pool', () => {
    expect(poolTable({ ...input, pools: [] })).toBe('No IPPool exists.');
  });
});

describe('netpin status --pool', () => {
  it('lists each held address in order: owner, ordinal, age, and whether its pod exists', () => {
    const text = poolDetail(input, web, NOW);
    const [head, rows] = text.split('\n\n') as [string, string];
    expect(head.split('\n')).toEqual([
      'IPPool web (pod addresses): 10.50.0.1-10.50.0.254',
      'Namespaces: shop',
      'IPv4: 254 addresses, 6 held, 248 free; largest free range 10.50.0.31-10.50.0.254 (224)',
    ]);
    expect(cells(rows)).toEqual([
      ['ADDRESS', 'OWNER', 'ORDINAL', 'AGE', 'POD'],
      ['10.50.0.1', 'StatefulSet/shop/db', '0', '90s', 'yes'],
      // Kept on scale-down: ordinal 1 has no pod.
      ['10.50.0.2', 'StatefulSet/shop/db', '1', '10m', 'no'],
      ['10.50.0.20', 'Pod/shop/solo', '-', '2h', 'yes'],
      // Claimed before the pod had a name: the pod that shows the address.
      ['10.50.0.21', 'Pod/shop/(not yet named)', '-', '5s', 'yes'],
      ['10.50.0.22', 'Pod/shop/gone', '-', '3d', 'no'],
      ['10.50.0.30', 'Pod/plain/rogue (no claim)', '-', '-', 'yes'],
    ]);
  });

  it('counts a pod outside opted-in namespaces only by what it holds as the server judges it, not by its forged annotations', () => {
    // A Pending pod of a namespace netpin does not admit, naming a pool address in netpin.io/allocated.
    const squatter = { ...pod('plain', 'squatter', ['10.50.0.40']), inUse: [] };
    const text = poolDetail({ ...input, pods: [...input.pods, squatter] }, web, NOW);
    expect(text).toContain('6 held, 248 free');
    expect(text).not.toContain('squatter');
  });

  it('says a pod whose containers have all ended is finished: it holds nothing, and the reconciler will release its claim', () => {
    const done = { ...pod('shop', 'solo'), finished: true };
    const pods = [...input.pods.filter((p) => p.name !== 'solo'), done];
    const rows = cells(poolDetail({ ...input, pods }, web, NOW).split('\n\n')[1]!);
    expect(rows.find((r) => r[0] === '10.50.0.20')).toEqual(['10.50.0.20', 'Pod/shop/solo', '-', '2h', 'finished']);
  });

  it('shows an egress address by the workload that holds it, and its pods by the address they show', () => {
    const rows = cells(poolDetail(input, out, NOW).split('\n\n')[1]!);
    expect(rows[1]).toEqual(['10.90.0.1', 'Deployment/shop/api (egress)', '-', '60s', 'yes']);
    const gone = { ...input, pods: input.pods.filter((p) => p.name !== 'api-1') };
    expect(cells(poolDetail(gone, out, NOW).split('\n\n')[1]!)[1]!.at(-1)).toBe('no');
  });

  it('gives each family of a dual-stack pool its own line, and says when nothing is held', () => {
    expect(poolDetail(input, dual, NOW).split('\n')).toEqual([
      'IPPool dual (pod addresses): 10.70.0.1-10.70.0.2, fd00::1-fd00::4',
      'Namespaces: db',
      'IPv4: 2 addresses, 0 held, 2 free; largest free range 10.70.0.1-10.70.0.2 (2)',
      'IPv6: 4 addresses, 1 held, 3 free; largest free range fd00::3-fd00::4 (2)',
      '',
      'ADDRESS  OWNER      ORDINAL  AGE  POD',
      'fd00::2  Pod/db/pg  -        60s  yes',
      '',
      'NAMESPACE  POOL  FAMILY  HELD  WITHOUT POD  LIMIT  USE',
      'db         dual  IPv6    1     0            -      -',
    ]);
    expect(poolDetail(input, open, NOW).split('\n').at(-1)).toBe('No address is held.');
  });
});

describe('netpin status per namespace', () => {
  const capped = pool('capped', { cidr: '10.80.0.0/24', namespaceLimit: 4 });
  const withCap: StatusInput = {
    ...input,
    pools: [...input.pools, capped],
    claims: [
      ...input.claims,
      ...[1, 2, 3].map((k) =>
        claim('capped', `10.80.0.${k}`, { kind: 'StatefulSet', namespace: 'hoard', name: 'big', ordinal: k - 1 }, 60),
      ),
      claim('capped', '10.80.0.9', { kind: 'Pod', namespace: 'shop', name: 'solo2' }, 60),
    ],
    pods: [...input.pods, pod('hoard', 'big-0', ['10.80.0.1']), pod('shop', 'solo2', ['10.80.0.9'])],
  };

  it('shows what each namespace holds of each pool and family, the reservations without a pod, and use against the limit, fullest first', () => {
    expect(cells(namespaceTable(withCap))).toEqual([
      ['NAMESPACE', 'POOL', 'FAMILY', 'HELD', 'WITHOUT POD', 'LIMIT', 'USE'],
      ['hoard', 'capped', 'IPv4', '3', '2', '4', '75%'],
      ['shop', 'capped', 'IPv4', '1', '0', '4', '25%'],
      ['shop', 'web', 'IPv4', '5', '1', '-', '-'],
      ['db', 'dual', 'IPv6', '1', '0', '-', '-'],
      ['shop', 'out', 'IPv4', '1', '0', '-', '-'],
    ]);
  });

  it("shows a pool's limit in its own view, and only its namespaces", () => {
    const text = poolDetail(withCap, capped, NOW);
    expect(text.split('\n')).toContain('Per namespace: at most 4 addresses of each family (spec.namespaceLimit)');
    expect(cells(text.split('\n\n').at(-1)!).map((r) => r[0])).toEqual(['NAMESPACE', 'hoard', 'shop']);
  });

  it('says when no namespace holds anything', () => {
    expect(namespaceTable({ ...input, claims: [] })).toBe('No namespace holds an address.');
  });
});

describe('formatting', () => {
  it.each([
    [0, '0s'],
    [119_000, '119s'],
    [120_000, '2m'],
    [7_199_000, '119m'],
    [7_200_000, '2h'],
    [47 * 3_600_000, '47h'],
    [48 * 3_600_000, '2d'],
    [-5_000, '0s'],
  ])('an age of %i ms is %s', (ms, text) => expect(formatAge(ms)).toBe(text));

  it('pads every column but the last', () => {
    expect(
      table(
        ['A', 'BB'],
        [
          ['xxx', 'y'],
          ['z', 'long value'],
        ],
      ),
    ).toBe('A    BB\nxxx  y\nz    long value');
  });
});

describe("each namespace's default pools", () => {
  const withDefaults = (defaults: Record<string, NamespaceDefaults>): StatusInput => ({
    ...input,
    namespaces: input.namespaces.map((ns) => ({ ...ns, defaults: defaults[ns.name] })),
  });

  it('lists opted-in namespaces with a default, and what would refuse their pods', () => {
    const text = defaultsTable(
      withDefaults({
        shop: { pool: 'web', egressPool: 'out' },
        db: { pool: 'web,nope' },
        plain: { pool: 'open' },
        'kube-system': { pool: 'web' },
      }),
      table,
    );
    expect(cells(text)).toEqual([
      ['NAMESPACE', 'DEFAULT POOL', 'DEFAULT EGRESS POOL', 'CHECK'],
      ['db', '"web,nope"', '-', "IPPool web's namespaceSelector does not select it; no IPPool nope"],
      ['shop', '"web"', '"out"', 'ok'],
    ]);
  });

  it('says so when none has one, and names a default that does not parse', () => {
    expect(defaultsTable(input, table)).toMatch(/^No opted-in namespace has a default pool/);
    const text = defaultsTable(withDefaults({ shop: { pool: 'Web!' } }), table);
    expect(text).toContain('netpin.io/pool: "Web!" is not an IPPool name');
  });
});
