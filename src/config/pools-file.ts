import { readFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import { formatRange } from '../net/address.js';
import { namespaceDefaults, type NamespaceDefaults } from '../intent/defaults.js';
import { compilePool, poolOverlap, PoolSpecError, type IPPoolObject, type Pool } from '../ipam/pool.js';

export interface PoolsFile {
  pools: Pool[];
  /** Namespace labels by name: they stand in for the cluster's when there is no cluster. */
  namespaces: Map<string, Record<string, string>>;
  /** The default pools of those namespaces (their netpin.io/pool and netpin.io/egress-pool annotations). */
  defaults: Map<string, NamespaceDefaults>;
}

export class ConfigError extends Error {}

/** Reads IPPool and Namespace objects from a multi-document YAML file; anything else is an error. */
export async function loadPoolsFile(path: string): Promise<PoolsFile> {
  return parsePools(await readConfigFile(path), path);
}

/** A file's text; a ConfigError names the file and the reason (ENOENT, EACCES, ...) when it cannot be read. */
export async function readConfigFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

export function parsePools(text: string, source = 'pools'): PoolsFile {
  const pools: Pool[] = [];
  const namespaces = new Map<string, Record<string, string>>();
  const defaults = new Map<string, NamespaceDefaults>();
  parseAllDocuments(text).forEach((doc, i) => {
    if (doc.errors.length)
      throw new ConfigError(`${source}: document ${i + 1}: ${doc.errors[0]!.message.split('\n')[0]}`);
    const obj = doc.toJS() as {
      kind?: string;
      metadata?: { name?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
    } | null;
    if (obj === null || obj === undefined) return;
    if (obj.kind === 'IPPool') {
      try {
        pools.push(compilePool(obj as IPPoolObject));
      } catch (e) {
        if (e instanceof PoolSpecError) throw new ConfigError(`${source}: ${e.message}`);
        throw e;
      }
    } else if (obj.kind === 'Namespace') {
      // Said apart from a wrong kind, which would read "got Namespace".
      if (!obj.metadata?.name) throw new ConfigError(`${source}: document ${i + 1}: Namespace has no metadata.name`);
      namespaces.set(obj.metadata.name, obj.metadata.labels ?? {});
      defaults.set(obj.metadata.name, namespaceDefaults(obj.metadata.annotations));
    } else {
      throw new ConfigError(
        `${source}: document ${i + 1}: expected kind IPPool or Namespace, got ${JSON.stringify(obj.kind ?? null)}`,
      );
    }
  });
  // Before overlaps: a pool pasted twice would otherwise read "IPPool a overlaps IPPool a".
  const twice = pools.find((p, i) => pools.findIndex((q) => q.name === p.name) !== i);
  if (twice) throw new ConfigError(`${source}: IPPool ${twice.name} is defined twice`);
  for (let i = 0; i < pools.length; i++) {
    for (let j = i + 1; j < pools.length; j++) {
      const shared = poolOverlap(pools[i]!, pools[j]!);
      if (shared)
        throw new ConfigError(
          `${source}: IPPool ${pools[i]!.name} overlaps IPPool ${pools[j]!.name} at ${formatRange(shared)}`,
        );
    }
  }
  return { pools, namespaces, defaults };
}
