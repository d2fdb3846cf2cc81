import { parseAllDocuments } from 'yaml';
import { namespaceDefaults, type NamespaceDefaults } from '../intent/defaults.js';
import { ConfigError } from './pools-file.js';

/** One object of a manifest: the fields read here; the rest is kept as written. */
export interface ManifestObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    generateName?: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

/**
 * The objects of a multi-document YAML manifest, in order, as `kubectl apply -f` reads them: empty
 * documents are skipped and a List (what `kubectl get -o yaml` prints) stands for its items.
 */
export function parseManifest(text: string, source: string): ManifestObject[] {
  const objects: ManifestObject[] = [];
  parseAllDocuments(text).forEach((doc, i) => {
    const where = `${source}: document ${i + 1}`;
    if (doc.errors.length) throw new ConfigError(`${where}: ${doc.errors[0]!.message.split('\n')[0]}`);
    const obj: unknown = doc.toJS();
    if (obj === null || obj === undefined) return;
    const items =
      isObject(obj) && typeof obj.kind === 'string' && obj.kind.endsWith('List') && Array.isArray(obj.items)
        ? (obj.items as unknown[])
        : [obj];
    for (const item of items) {
      if (!isObject(item) || typeof item.kind !== 'string')
        throw new ConfigError(`${where}: expected a Kubernetes object with a kind`);
      if (item.metadata !== undefined && !isObject(item.metadata))
        throw new ConfigError(`${where}: ${item.kind} has a metadata that is not a mapping`);
      // A mapping with a kind, and a metadata that is a mapping when present: the fields ManifestObject reads.
      objects.push(item as ManifestObject);
    }
  });
  return objects;
}

/** Namespace labels by name, from the Namespace objects of a manifest; they stand in for the cluster's. */
export function namespacesIn(objects: ManifestObject[], source: string): Map<string, Record<string, string>> {
  const namespaces = new Map<string, Record<string, string>>();
  for (const o of objects.filter(isNamespace)) {
    if (!o.metadata?.name) throw new ConfigError(`${source}: a Namespace has no metadata.name`);
    namespaces.set(o.metadata.name, o.metadata.labels ?? {});
  }
  return namespaces;
}

/** The default pools of the manifest's Namespaces, by name (namespacesIn has checked their names). */
export function defaultsIn(objects: ManifestObject[]): Map<string, NamespaceDefaults> {
  return new Map(
    objects.filter(isNamespace).map((o) => [o.metadata?.name ?? '', namespaceDefaults(o.metadata?.annotations)]),
  );
}

export function isNamespace(o: ManifestObject): boolean {
  return o.apiVersion === 'v1' && o.kind === 'Namespace';
}

/** A JSON or YAML mapping: not null, not an array. */
export function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
