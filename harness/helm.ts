// Helpers for the chart tests: run the helm binary from the control-plane build,
// parse rendered manifests, and name objects' REST paths (rest.ts is the client that reads them).

import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { repoPath } from './controlplane.js';
import type { WireJson } from './json.js';

export const CHART_DIR = repoPath('charts/netpin');
export const KUBE_VERSION = '1.36.3';

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: WireJson;
}

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class Helm {
  constructor(
    readonly binDir: string,
    /** Own HELM_*_HOME dirs, so that tests neither read nor write the user's helm config. */
    readonly homeDir: string,
    readonly kubeconfigPath?: string,
  ) {}

  run(args: string[]): Promise<HelmResult> {
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const k of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy', 'KUBECONFIG', 'HELM_NAMESPACE'])
      delete env[k];
    env.NO_PROXY = env.no_proxy = '127.0.0.1,localhost';
    env.HELM_CACHE_HOME = path.join(this.homeDir, 'cache');
    env.HELM_CONFIG_HOME = path.join(this.homeDir, 'config');
    env.HELM_DATA_HOME = path.join(this.homeDir, 'data');
    // Without a kubeconfig, helm must not find a cluster anywhere.
    env.KUBECONFIG = this.kubeconfigPath ?? path.join(this.homeDir, 'no-kubeconfig');
    return new Promise((resolve) => {
      execFile(path.join(this.binDir, 'helm'), args, { env, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : 1
          : 0;
        resolve({ code, stdout, stderr });
      });
    });
  }

  async ok(args: string[]): Promise<string> {
    const r = await this.run(args);
    if (r.code !== 0) throw new Error(`helm ${args.join(' ')} failed (${r.code}):\n${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  /** `helm template` with --set pairs; returns the parsed objects. */
  async template(
    sets: Record<string, string | number | boolean>,
    extra: string[] = [],
    release = 'netpin',
    namespace = 'netpin-system',
  ): Promise<Manifest[]> {
    return parseManifests(
      await this.ok([
        'template',
        release,
        CHART_DIR,
        '-n',
        namespace,
        '--kube-version',
        KUBE_VERSION,
        ...setArgs(sets),
        ...extra,
      ]),
    );
  }
}

export function setArgs(sets: Record<string, string | number | boolean>): string[] {
  return Object.entries(sets).flatMap(([k, v]) =>
    typeof v === 'string' ? ['--set-string', `${k}=${v}`] : ['--set', `${k}=${v}`],
  );
}

export function parseManifests(text: string): Manifest[] {
  return parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length) throw new Error(`bad YAML from helm: ${d.errors[0]!.message}`);
      return d.toJSON() as Manifest | null;
    })
    .filter((m): m is Manifest => !!m);
}

export function only(objs: Manifest[], kind: string, name?: string): Manifest {
  const found = objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0]!;
}

/** The REST path of an object, from its apiVersion and kind (the chart's kinds pluralise with a trailing s). */
export function restPath(o: Pick<Manifest, 'apiVersion' | 'kind' | 'metadata'>): string {
  const base = o.apiVersion === 'v1' ? '/api/v1' : `/apis/${o.apiVersion}`;
  const ns = o.metadata.namespace ? `/namespaces/${o.metadata.namespace}` : '';
  return `${base}${ns}/${o.kind.toLowerCase()}s/${o.metadata.name}`;
}
