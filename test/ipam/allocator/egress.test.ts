// The allocator's egress side and its plan: which egress address a workload gets, what it keeps, what
// is refused and in which words. Pod addresses are in allocator.test.ts.
import { describe, expect, it, vi } from 'vitest';
import { parsePools } from '../../../src/config/pools-file.js';
import { parseIntent } from '../../../src/intent/parse.js';
import { Allocator, type EgressResult } from '../../../src/ipam/allocator.js';
import { ConflictError, type EgressOwner, type Owner } from '../../../src/ipam/claim.js';
import { MemoryLedger } from '../../../src/ipam/memory-ledger.js';
import { formatDual } from '../../../src/net/address.js';

const GATEWAYS = 'egress: { nodeSelector: { matchLabels: { egress: gateway } } }';
const POOLS = `
kind: IPPool
metadata: { name: web }
spec: { cidr: 10.20.0.0/24, namespaceSelector: { matchLabels: { team: web } } }
---
kind: IPPool
metadata: { name: web-v6 }
spec: { cidr: "fd00:20::/120", namespaceSelector: { matchLabels: { team: web } } }
---
kind: IPPool
metadata: { name: out }
spec: { ranges: ["203.0.113.1-203.0.113.2"], ${GATEWAYS} }
---
kind: IPPool
metadata: { name: out-v6 }
spec: { ranges: ["2001:db8::1-2001:db8::2"], ${GATEWAYS} }
---
kind: IPPool
metadata: { name: out-dual }
spec: { ranges: ["198.18.0.1-198.18.0.2", "2001:db8:1::1-2001:db8:1::2"], ${GATEWAYS} }
---
kind: IPPool
metadata: { name: out-db }
spec:
  ranges: ["198.51.100.1-198.51.100.2"]
  namespaceSelector: { matchLabels: { team: db } }
  ${GATEWAYS}
`;
const SHOP = { team: 'web' };
const deployment = (name: string): EgressOwner => ({ kind: 'Egress', namespace: 'shop', workload: 'Deployment', name });

function setup(pools = POOLS) {
  const ledger = new MemoryLedger(parsePools(pools).pools);
  const allocator = new Allocator(ledger);
  const plan = (annotations: Record<string, string>, labels: Record<string, string> = SHOP) => {
    const { intent, problems } = parseIntent(annotations);
    expect(problems).toEqual([]);
    return { intent, plan: allocator.plan(intent, 'shop', labels) };
  };
  const egress = (
    annotations: Record<string, string>,
    owner: EgressOwner,
    more: { dryRun?: boolean; labels?: Record<string, string> } = {},
  ) => {
    const { intent, plan: p } = plan(annotations, more.labels);
    return allocator.allocateEgress({
      intent,
      namespace: owner.namespace,
      namespaceLabels: more.labels ?? SHOP,
      owner,
      dryRun: more.dryRun ?? false,
      plan: p,
    });
  };
  const held = () => [...ledger.index.allClaims()].map((c) => `${c.ip.toString()} ${c.pool} ${c.owner.name}`).sort();
  return { ledger, allocator, plan, egress, held };
}

const addressesOf = (r: EgressResult) =>
  r.ok ? formatDual(r.addresses) : `denied: ${r.problems.map((p) => `${p.key}: ${p.message}`).join('; ')}`;
const freshOf = (r: EgressResult) => (r.ok ? r.fresh.map((c) => c.ip.toString()) : undefined);
const problemsOf = (r: EgressResult) => {
  if (r.ok) throw new Error(`expected a refusal, got ${formatDual(r.addresses)}`);
  return r.problems;
};

describe('egress addresses from egress pools', () => {
  it('gives each workload the lowest free address of each pool named, and the same again while it holds it', async () => {
    const { egress, held } = setup();
    const first = await egress({ 'netpin.io/egress-pool': 'out,out-v6' }, deployment('api'));
    expect(addressesOf(first)).toBe('203.0.113.1,2001:db8::1');
    expect(freshOf(first)).toEqual(['203.0.113.1', '2001:db8::1']);
    const again = await egress({ 'netpin.io/egress-pool': 'out,out-v6' }, deployment('api'));
    expect(addressesOf(again)).toBe('203.0.113.1,2001:db8::1');
    expect(freshOf(again)).toEqual([]);
    expect(addressesOf(await egress({ 'netpin.io/egress-pool': 'out' }, deployment('web')))).toBe('203.0.113.2');
    expect(held()).toEqual(['2001:db8::1 out-v6 api', '203.0.113.1 out api', '203.0.113.2 out web']);
  });

  it('gives a workload whose intent changed a new address, and gives back the old one', async () => {
    const { egress, held } = setup();
    await egress({ 'netpin.io/egress-pool': 'out' }, deployment('api'));
    const moved = await egress({ 'netpin.io/egress-pool': 'out-v6' }, deployment('api'));
    expect(addressesOf(moved)).toBe('2001:db8::1');
    expect(held()).toEqual(['2001:db8::1 out-v6 api']);
  });

  it('refuses an exhausted egress pool with its usage, and names the other egress pools the namespace may use', async () => {
    const { egress } = setup();
    await egress({ 'netpin.io/egress-pool': 'out' }, deployment('a'));
    await egress({ 'netpin.io/egress-pool': 'out' }, deployment('b'));
    for (const dryRun of [false, true]) {
      expect(problemsOf(await egress({ 'netpin.io/egress-pool': 'out' }, deployment('c'), { dryRun }))).toEqual([
        {
          key: 'netpin.io/egress-pool',
          message: 'IPPool out has no free IPv4 address (2 of 2 held)',
          fix: 'add addresses to IPPool out (spec.cidr or spec.ranges), delete workloads that hold them, or name another pool: out-dual',
        },
      ]);
    }
    // Another namespace may use more.
    const db = { team: 'db' };
    expect(problemsOf(await egress({ 'netpin.io/egress-pool': 'out' }, deployment('c'), { labels: db }))[0]!.fix).toBe(
      'add addresses to IPPool out (spec.cidr or spec.ranges), delete workloads that hold them, or name another pool: out-dual, out-db',
    );
  });

  it('reports in a dry run what would be given, and claims nothing', async () => {
    const { egress, held } = setup();
    await egress({ 'netpin.io/egress-pool': 'out' }, deployment('api'));
    const r = await egress({ 'netpin.io/egress-pool': 'out,out-v6' }, deployment('web'), { dryRun: true });
    expect(addressesOf(r)).toBe('203.0.113.2,2001:db8::1');
    expect(freshOf(r)).toEqual([]);
    // A workload moving to another pool keeps its address in a dry run.
    const moving = await egress({ 'netpin.io/egress-pool': 'out-v6' }, deployment('api'), { dryRun: true });
    expect(addressesOf(moving)).toBe('2001:db8::1');
    expect(held()).toEqual(['203.0.113.1 out api']);
  });

  it('gives back the first family when the second is exhausted', async () => {
    const { egress, held } = setup();
    await egress({ 'netpin.io/egress-pool': 'out-v6' }, deployment('a'));
    await egress({ 'netpin.io/egress-pool': 'out-v6' }, deployment('b'));
    const r = await egress({ 'netpin.io/egress-pool': 'out,out-v6' }, deployment('c'));
    expect(problemsOf(r)[0]!.message).toBe('IPPool out-v6 has no free IPv6 address (2 of 2 held)');
    expect(held()).toEqual(['2001:db8::1 out-v6 a', '2001:db8::2 out-v6 b']);
  });

  it('passes on errors other than exhaustion, after giving back what it claimed', async () => {
    const { ledger, egress, held } = setup();
    const claimNext = ledger.claimNext.bind(ledger);
    vi.spyOn(ledger, 'claimNext').mockImplementation(async (p, f, o) => {
      if (f === 'ipv6') throw new Error('API server unavailable');
      return claimNext(p, f, o);
    });
    await expect(egress({ 'netpin.io/egress-pool': 'out,out-v6' }, deployment('api'))).rejects.toThrow(
      'API server unavailable',
    );
    expect(held()).toEqual([]);
  });
});

describe('fixed egress addresses', () => {
  it('claims one that lies in an egress pool, and refuses it to another workload, naming the holder', async () => {
    const { egress, held } = setup();
    const r = await egress({ 'netpin.io/egress-ip': '203.0.113.2' }, deployment('api'));
    expect(addressesOf(r)).toBe('203.0.113.2');
    expect(freshOf(r)).toEqual(['203.0.113.2']);
    expect(held()).toEqual(['203.0.113.2 out api']);
    for (const dryRun of [false, true]) {
      expect(problemsOf(await egress({ 'netpin.io/egress-ip': '203.0.113.2' }, deployment('web'), { dryRun }))).toEqual(
        [
          {
            key: 'netpin.io/egress-ip',
            message: '203.0.113.2 is held by the egress of Deployment shop/api',
            fix: 'choose another egress address, or have one given with netpin.io/egress-pool',
          },
        ],
      );
    }
    // Its holder keeps it.
    const again = await egress({ 'netpin.io/egress-ip': '203.0.113.2' }, deployment('api'));
    expect([addressesOf(again), freshOf(again)]).toEqual(['203.0.113.2', []]);
  });

  it('claims nothing for an address outside every pool, the operator’s to keep apart', async () => {
    const { egress, held } = setup();
    const r = await egress({ 'netpin.io/egress-ip': '192.0.2.7' }, deployment('api'));
    expect([addressesOf(r), freshOf(r)]).toEqual(['192.0.2.7', []]);
    expect(held()).toEqual([]);
    // And only the part of a dual-stack address that lies in a pool.
    const dual = await egress({ 'netpin.io/egress-ip': '192.0.2.7,2001:db8::2' }, deployment('api'));
    expect([addressesOf(dual), freshOf(dual)]).toEqual(['192.0.2.7,2001:db8::2', ['2001:db8::2']]);
    expect(held()).toEqual(['2001:db8::2 out-v6 api']);
  });

  it('claims nothing in a dry run, and keeps what the workload held', async () => {
    const { egress, held } = setup();
    await egress({ 'netpin.io/egress-pool': 'out' }, deployment('api'));
    const r = await egress({ 'netpin.io/egress-ip': '203.0.113.2' }, deployment('api'), { dryRun: true });
    expect([addressesOf(r), freshOf(r)]).toEqual(['203.0.113.2', []]);
    expect(held()).toEqual(['203.0.113.1 out api']);
    // For real, the workload moves from the address it was given to the fixed one.
    await egress({ 'netpin.io/egress-ip': '203.0.113.2' }, deployment('api'));
    expect(held()).toEqual(['203.0.113.2 out api']);
  });

  it('is refused when another writer wins the race for it, and nothing is left claimed', async () => {
    const { ledger, egress, held } = setup();
    const claim = ledger.claim.bind(ledger);
    const rival = deployment('rival');
    vi.spyOn(ledger, 'claim').mockImplementation(async (p, ip, o) => {
      if (ip.kind() === 'ipv6') {
        const won = await claim(p, ip, rival);
        throw new ConflictError(won);
      }
      return claim(p, ip, o);
    });
    const r = await egress({ 'netpin.io/egress-ip': '203.0.113.1,2001:db8::1' }, deployment('api'));
    expect(problemsOf(r)).toEqual([
      {
        key: 'netpin.io/egress-ip',
        message: '2001:db8::1 is held by the egress of Deployment shop/rival',
        fix: 'choose another egress address, or have one given with netpin.io/egress-pool',
      },
    ]);
    expect(held()).toEqual(['2001:db8::1 out-v6 rival']);
  });

  it('passes on errors other than a conflict, after giving back what it claimed', async () => {
    const { ledger, egress, held } = setup();
    const claim = ledger.claim.bind(ledger);
    vi.spyOn(ledger, 'claim').mockImplementation(async (p, ip, o) => {
      if (ip.kind() === 'ipv6') throw new Error('API server unavailable');
      return claim(p, ip, o);
    });
    await expect(egress({ 'netpin.io/egress-ip': '203.0.113.1,2001:db8::1' }, deployment('api'))).rejects.toThrow(
      'API server unavailable',
    );
    expect(held()).toEqual([]);
  });

  it('refuses what the plan refused, claiming nothing', async () => {
    const { egress, held } = setup();
    const [p, ...more] = problemsOf(await egress({ 'netpin.io/egress-ip': '10.20.0.5' }, deployment('api')));
    expect(more).toEqual([]);
    expect(p!.key).toBe('netpin.io/egress-ip');
    expect(held()).toEqual([]);
  });
});

describe('the plan of egress addresses', () => {
  it.each<[string, Record<string, string>, Record<string, string>, { key: string; message: string; fix: string }]>([
    [
      'a fixed egress address in a pod pool',
      { 'netpin.io/egress-ip': '10.20.0.5' },
      SHOP,
      {
        key: 'netpin.io/egress-ip',
        message: '10.20.0.5 lies in IPPool web, a pod pool: an egress address is never a pod address',
        fix: 'choose an address of an egress pool (spec.egress) namespace shop may use: out (203.0.113.1-203.0.113.2); out-v6 (2001:db8::1-2001:db8::2); out-dual (198.18.0.1-198.18.0.2, 2001:db8:1::1-2001:db8:1::2)',
      },
    ],
    [
      'a fixed egress address in an egress pool that leaves the namespace out',
      { 'netpin.io/egress-ip': '198.51.100.1' },
      SHOP,
      {
        key: 'netpin.io/egress-ip',
        message:
          '198.51.100.1 lies in egress IPPool out-db, which does not select namespace shop (spec.namespaceSelector)',
        fix: 'choose an egress address namespace shop may use: out (203.0.113.1-203.0.113.2); out-v6 (2001:db8::1-2001:db8::2); out-dual (198.18.0.1-198.18.0.2, 2001:db8:1::1-2001:db8:1::2)',
      },
    ],
    [
      'a pod pool named as an egress pool',
      { 'netpin.io/egress-pool': 'web' },
      SHOP,
      {
        key: 'netpin.io/egress-pool',
        message: 'IPPool web is a pod pool: it has no spec.egress, and its addresses are never egress addresses',
        fix: 'name an egress pool (out (203.0.113.1-203.0.113.2); out-v6 (2001:db8::1-2001:db8::2); out-dual (198.18.0.1-198.18.0.2, 2001:db8:1::1-2001:db8:1::2)), or add spec.egress to a pool of its own',
      },
    ],
    [
      'an egress pool named as a pod pool',
      { 'netpin.io/pool': 'out' },
      SHOP,
      {
        key: 'netpin.io/pool',
        message: 'IPPool out is an egress pool (spec.egress): its addresses are never pod addresses',
        fix: 'name a pod pool (web (10.20.0.1-10.20.0.254); web-v6 (fd00:20::1-fd00:20::ff)), or ask for an egress address with netpin.io/egress-pool: out',
      },
    ],
    [
      'a fixed pod address in an egress pool',
      { 'netpin.io/ip': '203.0.113.1' },
      SHOP,
      {
        key: 'netpin.io/ip',
        message: '203.0.113.1 lies in IPPool out, an egress pool: an egress address is never a pod address',
        fix: 'choose an address in a pod pool namespace shop may use: web (10.20.0.1-10.20.0.254); web-v6 (fd00:20::1-fd00:20::ff)',
      },
    ],
    [
      'an egress pool that leaves the namespace out',
      { 'netpin.io/egress-pool': 'out-db' },
      SHOP,
      {
        key: 'netpin.io/egress-pool',
        message: 'IPPool out-db does not select namespace shop (spec.namespaceSelector)',
        fix: 'name a pool namespace shop may use (out (203.0.113.1-203.0.113.2); out-v6 (2001:db8::1-2001:db8::2); out-dual (198.18.0.1-198.18.0.2, 2001:db8:1::1-2001:db8:1::2)), or widen the namespaceSelector of IPPool out-db',
      },
    ],
    [
      'an unknown egress pool, naming the egress pools every namespace may use',
      { 'netpin.io/egress-pool': 'nope' },
      { team: 'nobody' },
      {
        key: 'netpin.io/egress-pool',
        message: 'IPPool nope does not exist',
        fix: 'name a pool namespace shop may use: out (203.0.113.1-203.0.113.2); out-v6 (2001:db8::1-2001:db8::2); out-dual (198.18.0.1-198.18.0.2, 2001:db8:1::1-2001:db8:1::2)',
      },
    ],
    [
      'a pod address, in a namespace that may use no pod pool',
      { 'netpin.io/ip': '192.0.2.1' },
      { team: 'nobody' },
      {
        key: 'netpin.io/ip',
        message: '192.0.2.1 lies outside every IPPool',
        fix: 'choose an address in a pool namespace shop may use: none',
      },
    ],
  ])('refuses %s', (_, annotations, labels, expected) => {
    const { plan } = setup();
    const { plan: p } = plan(annotations, labels);
    expect(p.problems).toEqual([expected]);
  });

  it('serves each family of the egress pools named, and lists every egress pool involved once', () => {
    const { plan } = setup();
    const named = plan({ 'netpin.io/egress-pool': 'out,out-v6' }).plan;
    expect(named.problems).toEqual([]);
    expect(named.egressByFamily.ipv4?.name).toBe('out');
    expect(named.egressByFamily.ipv6?.name).toBe('out-v6');
    expect(named.egressPools.map((p) => p.name)).toEqual(['out', 'out-v6']);
    expect(named.pools).toEqual([]);
    const fixed = plan({ 'netpin.io/egress-ip': '198.18.0.1,2001:db8:1::1' }).plan;
    expect(fixed.problems).toEqual([]);
    expect(fixed.egressPools.map((p) => p.name)).toEqual(['out-dual']);
    expect(fixed.unknown).toBe(false);
    const outside = plan({ 'netpin.io/egress-ip': '192.0.2.1' }).plan;
    expect([outside.problems, outside.egressPools, outside.unknown]).toEqual([[], [], false]);
  });

  it('says when a pool named, or a fixed pod address, is unknown to this process (its pools may be stale)', () => {
    const { plan } = setup();
    expect(plan({ 'netpin.io/egress-pool': 'nope' }).plan.unknown).toBe(true);
    expect(plan({ 'netpin.io/pool': 'nope' }).plan.unknown).toBe(true);
    expect(plan({ 'netpin.io/ip': '192.0.2.1' }).plan.unknown).toBe(true);
    expect(plan({ 'netpin.io/pool': 'web' }).plan.unknown).toBe(false);
    expect(plan({ 'netpin.io/pool': 'out' }).plan.unknown).toBe(false);
    expect(plan({ 'netpin.io/ip': '203.0.113.1' }).plan.unknown).toBe(false);
  });
});

describe('an owner of a pod address', () => {
  it('is not an egress owner: the same names hold their pod and egress addresses apart', async () => {
    const { allocator, egress, ledger } = setup();
    const pod: Owner = { kind: 'Pod', namespace: 'shop', name: 'api' };
    const { intent } = parseIntent({ 'netpin.io/pool': 'web' });
    const r = await allocator.allocate({ intent, namespace: 'shop', namespaceLabels: SHOP, owner: pod, dryRun: false });
    expect(r.ok).toBe(true);
    await egress({ 'netpin.io/egress-pool': 'out' }, { ...deployment('api'), workload: 'Pod' });
    expect(ledger.index.claimsOf(pod).map((c) => c.ip.toString())).toEqual(['10.20.0.1']);
  });
});

describe('a workload changing its fixed egress address', () => {
  it('may, in a dry run, add to what it holds already', async () => {
    const { egress, held } = setup();
    await egress({ 'netpin.io/egress-ip': '203.0.113.1' }, deployment('api'));
    const r = await egress({ 'netpin.io/egress-ip': '203.0.113.1,2001:db8::1' }, deployment('api'), { dryRun: true });
    expect([addressesOf(r), freshOf(r)]).toEqual(['203.0.113.1,2001:db8::1', []]);
    expect(held()).toEqual(['203.0.113.1 out api']);
  });
});
