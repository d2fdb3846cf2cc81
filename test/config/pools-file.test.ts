import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadPoolsFile, parsePools } from '../../src/config/pools-file.js';
import { describePool } from '../../src/ipam/pool.js';

const pool = (name: string, spec: string) => `kind: IPPool\nmetadata: { name: ${name} }\nspec: ${spec}\n`;

describe('loadPoolsFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'netpin-pools-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads the example file: its pools and namespace labels', async () => {
    const file = await loadPoolsFile('examples/pools.yaml');
    expect(file.pools.map(describePool)).toEqual([
      'web (10.20.0.2-10.20.0.254)',
      'web-v6 (fd00:20::1-fd00:20::ff)',
      'db (10.30.0.10-10.30.0.19)',
    ]);
    expect(file.pools[0]!.cni).toEqual({
      calico: { pool: 'web-pool' },
      kubeOvn: { subnet: 'web-subnet' },
      antrea: { pool: 'web-pool' },
      cilium: { pool: 'web-pool' },
    });
    expect(Object.fromEntries(file.namespaces)).toEqual({ shop: { team: 'web' }, payments: { team: 'db' } });
  });

  it('names the file it cannot read', async () => {
    const path = join(dir, 'missing.yaml');
    await expect(loadPoolsFile(path)).rejects.toThrow(new ConfigError(`cannot read ${path}: ENOENT`));
  });

  it('names the file in parse errors', async () => {
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, pool('web', '{ cidr: 10.0.0.0/33 }'));
    await expect(loadPoolsFile(path)).rejects.toThrow(
      new ConfigError(`${path}: IPPool web: spec.cidr/ranges: "10.0.0.0/33" is not a CIDR`),
    );
  });
});

describe('parsePools', () => {
  it('skips empty documents and reads a namespace without labels', () => {
    const file = parsePools(
      `---\n${pool('a', '{ cidr: 10.0.0.0/24 }')}---\n---\nkind: Namespace\nmetadata: { name: plain }\n`,
    );
    expect(file.pools.map((p) => p.name)).toEqual(['a']);
    expect(file.namespaces.get('plain')).toEqual({});
  });

  it("reads a namespace's default pools from its annotations, and nothing else of them", () => {
    const file = parsePools(
      `kind: Namespace\nmetadata:\n  name: shop\n  annotations: { netpin.io/pool: web, netpin.io/egress-pool: out, team: x }\n` +
        `---\nkind: Namespace\nmetadata: { name: plain }\n`,
    );
    expect(file.defaults.get('shop')).toEqual({ pool: 'web', egressPool: 'out' });
    expect(file.defaults.get('plain')).toEqual({});
  });

  it.each([
    ['YAML that does not parse', 'kind: IPPool\nmetadata: { name: web\n', /^f: document 1: /],
    [
      'another kind',
      `${pool('a', '{ cidr: 10.0.0.0/24 }')}---\nkind: ConfigMap\nmetadata: { name: x }\n`,
      'f: document 2: expected kind IPPool or Namespace, got "ConfigMap"',
    ],
    [
      'a document without a kind',
      'metadata: { name: x }\n',
      'f: document 1: expected kind IPPool or Namespace, got null',
    ],
    [
      'a Namespace without a name',
      'kind: Namespace\nmetadata: { labels: { team: web } }\n',
      'f: document 1: Namespace has no metadata.name',
    ],
    [
      'a malformed pool',
      pool('web', '{ cidr: 10.20.0.1/24 }'),
      'f: IPPool web: spec.cidr/ranges: "10.20.0.1/24" has host bits set; the network is 10.20.0.0/24',
    ],
    [
      'an exclusion that is not a list',
      pool('web', '{ cidr: 10.20.0.0/24, exclude: 10.20.0.1 }'),
      'f: IPPool web: spec.exclude must be a list of strings',
    ],
    [
      'overlapping pools',
      `${pool('a', '{ cidr: 10.0.0.0/24 }')}---\n${pool('b', '{ ranges: [10.0.0.200-10.0.1.5] }')}`,
      'f: IPPool a overlaps IPPool b at 10.0.0.200-10.0.0.254',
    ],
    [
      'a pool defined twice',
      `${pool('a', '{ cidr: 10.0.0.0/24 }')}---\n${pool('a', '{ cidr: 10.0.1.0/24 }')}`,
      'f: IPPool a is defined twice',
    ],
    [
      'a pool defined twice with the same range',
      `${pool('a', '{ cidr: 10.0.0.0/24 }')}---\n${pool('a', '{ cidr: 10.0.0.0/24 }')}`,
      'f: IPPool a is defined twice',
    ],
  ])('refuses %s', (_, text, message) => {
    let err: unknown;
    try {
      parsePools(text, 'f');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    if (typeof message === 'string') expect(msg).toBe(message);
    else expect(msg).toMatch(message);
    // One line: main prints it as is.
    expect(msg).not.toContain('\n');
  });

  it('reads spec.namespaceLimit, and refuses one that is not a whole number of addresses', () => {
    expect(parsePools(pool('a', '{ cidr: 10.0.0.0/24, namespaceLimit: 20 }')).pools[0]!.namespaceLimit).toBe(20);
    expect(() => parsePools(pool('a', '{ cidr: 10.0.0.0/24, namespaceLimit: ten }'), 'f')).toThrow(
      'f: IPPool a: spec.namespaceLimit must be a whole number of addresses, 0 or more',
    );
  });

  it('allows pools that only touch', () => {
    expect(
      parsePools(`${pool('a', '{ cidr: 10.0.0.0/25 }')}---\n${pool('b', '{ cidr: 10.0.0.128/25 }')}`).pools,
    ).toHaveLength(2);
  });
});
