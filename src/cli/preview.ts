import { randomUUID } from 'node:crypto';
import { text } from 'node:stream/consumers';
import fastJsonPatch, { type Operation as PatchOperation } from 'fast-json-patch';
import { stringify } from 'yaml';
import { Admission, type Endpoint } from '../admission/handler.js';
import type { AdmissionRequest, AdmissionResponse, AdmissionReview, KubeObject } from '../admission/review.js';
import type { CniName, Dialect } from '../cni/dialect.js';
import { dialectFor } from '../cni/index.js';
import { StaticClusterView, workloadInfo, type WorkloadKind } from '../cluster/view.js';
import { defaultsIn, isNamespace, namespacesIn, parseManifest, type ManifestObject } from '../config/manifest.js';
import { ConfigError, loadPoolsFile, readConfigFile, type PoolsFile } from '../config/pools-file.js';
import { namespaceDefaults } from '../intent/defaults.js';
import { Allocator } from '../ipam/allocator.js';
import type { Claim } from '../ipam/claim.js';
import { MemoryLedger } from '../ipam/memory-ledger.js';
import { parseAddress, type Address } from '../net/address.js';
import { cniFlag, parseFlags, UsageError } from './args.js';
import { deploymentPods, statefulSetPods } from './preview-pods.js';

interface PreviewOptions {
  /** The manifest; `-` reads stdin. */
  file: string;
  cni: CniName;
  pools?: string;
  namespaces?: string;
  kubeconfig?: string;
  /** For objects that name no namespace, as kubectl's --namespace. */
  namespace: string;
}

/** Where preview reads and writes: the process's streams, or a test's. */
export interface PreviewIO {
  stdin(): Promise<string>;
  stdout(text: string): Promise<void>;
  /** One line, without its newline. */
  stderr(line: string): void;
}

const PROCESS_IO: PreviewIO = {
  stdin: () => text(process.stdin),
  // Resolves once written: main exits the process right after, and a pipe may still be draining.
  stdout: (t) => new Promise((resolve, reject) => process.stdout.write(t, (e) => (e ? reject(e) : resolve()))),
  stderr: (line) => process.stderr.write(`${line}\n`),
};

const FLAGS = ['file', 'cni', 'pools', 'namespaces', 'kubeconfig', 'namespace'] as const;
/** kubectl's short flags, as operators type them. */
const SHORT = new Map([
  ['-f', '--file'],
  ['-n', '--namespace'],
]);

/** Parses `preview` flags; throws UsageError with a one-line reason. */
function parsePreviewArgs(argv: string[]): PreviewOptions {
  const values = parseFlags(
    argv.map((a) => SHORT.get(a) ?? a),
    FLAGS,
  );
  const file = values.get('file');
  if (!file) throw new UsageError('-f <manifest.yaml> is required (-f - reads stdin)');
  const cni = cniFlag(values.get('cni'));
  const pools = values.get('pools');
  const kubeconfig = values.get('kubeconfig');
  if (pools && kubeconfig)
    throw new UsageError('give --pools or --kubeconfig, not both: the pools come from the file or from the cluster');
  if (!pools && !kubeconfig)
    throw new UsageError('--pools <file.yaml> is required, or --kubeconfig <file> to read the cluster');
  return {
    file,
    cni,
    pools,
    kubeconfig,
    namespaces: values.get('namespaces'),
    namespace: values.get('namespace') ?? 'default',
  };
}

/** What admission starts from: pools and namespace labels, and the addresses held before the manifest. */
interface Seed extends PoolsFile {
  claims: Claim[];
  /** Addresses that live pods hold against other owners, by `namespace/name` (PodRecord.inUse). */
  inUse: Map<string, Address[]>;
}

type Resource = NonNullable<AdmissionRequest['resource']>;

interface AdmittedKind {
  resource: Resource;
  /** The first `count` pods its controller creates; a Pod is its own. */
  pods?: (stored: KubeObject, count: number) => KubeObject[];
}

/**
 * The most pods preview builds for one workload: spec.replicas may be up to 2^31 - 1, and that many
 * pods exhaust the heap. The webhook's bound on the StatefulSet ordinals it reserves is the same
 * (MAX_RESERVED_ORDINALS in admission/workloads.ts). Above it, preview builds the first pods and says so.
 */
const MAX_PODS_PER_WORKLOAD = 10_000;

const POD: Resource = { group: '', version: 'v1', resource: 'pods' };

/** By `apiVersion/kind`: what netpin's webhooks admit and preview builds pods for. */
const KINDS = new Map<string, AdmittedKind>([
  ['v1/Pod', { resource: POD }],
  ['apps/v1/Deployment', { resource: { group: 'apps', version: 'v1', resource: 'deployments' }, pods: deploymentPods }],
  [
    'apps/v1/StatefulSet',
    { resource: { group: 'apps', version: 'v1', resource: 'statefulsets' }, pods: statefulSetPods },
  ],
]);

/**
 * `netpin preview`: the pods a manifest would make, through the webhook's own admission on an
 * in-memory ledger. Resolves to the exit status: 1 when anything is refused, else 0.
 */
export async function preview(
  argv: string[],
  io: PreviewIO = PROCESS_IO,
  maxPods = MAX_PODS_PER_WORKLOAD,
): Promise<number> {
  const opts = parsePreviewArgs(argv);
  const source = opts.file === '-' ? 'stdin' : opts.file;
  const objects = parseManifest(opts.file === '-' ? await io.stdin() : await readConfigFile(opts.file), source);
  const unnamed = objects.find((o) => KINDS.has(kindOf(o)) && !o.metadata?.name && !o.metadata?.generateName);
  if (unnamed)
    throw new ConfigError(`${source}: a ${unnamed.kind} has neither metadata.name nor metadata.generateName`);
  const extraNamespaces = opts.namespaces ? await namespacesFile(opts.namespaces) : [];
  const dialect = dialectFor(opts.cni);
  const seed: Seed = opts.kubeconfig
    ? await readCluster(opts.kubeconfig, dialect.addressKeys, io.stderr)
    : { ...(await loadPoolsFile(opts.pools!)), claims: [], inUse: new Map() };
  // Later sources win: --namespaces, then the manifest's own Namespaces, which the apply would create first.
  for (const more of [extraNamespaces, objects]) {
    const defaults = defaultsIn(more);
    for (const [name, labels] of namespacesIn(more, source)) {
      seed.namespaces.set(name, labels);
      seed.defaults.set(name, defaults.get(name) ?? {});
    }
  }

  const run = new Run(admissionFor(dialect, seed), io.stderr, opts.namespace, maxPods);
  for (const o of objects) await run.apply(o);
  await io.stdout(run.pods.map((p) => stringify(p, { lineWidth: 0 })).join('---\n'));
  return run.refused ? 1 : 0;
}

function admissionFor(dialect: Dialect, seed: Seed): Admission {
  const ledger = new MemoryLedger(seed.pools);
  for (const claim of seed.claims) ledger.index.add(claim);
  for (const [pod, addresses] of seed.inUse) ledger.index.observe(pod, addresses);
  const cluster = new StaticClusterView();
  for (const [name, labels] of seed.namespaces) cluster.setNamespace(name, labels, seed.defaults.get(name));
  // Nothing is deleted in a preview, so there is nothing to release.
  return new Admission({ dialect, allocator: new Allocator(ledger), cluster, releaseOnDelete: false });
}

/** --namespaces: Namespace objects, or a List of them as `kubectl get namespaces -o yaml` prints it. */
async function namespacesFile(path: string): Promise<ManifestObject[]> {
  const objects = parseManifest(await readConfigFile(path), path);
  const other = objects.find((o) => !isNamespace(o));
  if (other) throw new ConfigError(`${path}: expected kind Namespace, got ${other.kind}`);
  namespacesIn(objects, path);
  return objects;
}

/**
 * The cluster's IPPools, namespaces, IPClaims and the addresses its pods use, with list calls only:
 * preview writes nothing, and holds whatever the cluster holds. Loaded on demand, as the client is heavy.
 */
async function readCluster(
  kubeconfig: string,
  addressKeys: readonly string[],
  note: (line: string) => void,
): Promise<Seed> {
  const read = await import('./cluster-read.js');
  const c = read.clusterClients(read.operatorKubeConfig(kubeconfig));
  const [pools, claims, namespaces, pods, webhooks] = await Promise.all([
    read.readPools(c.custom),
    read.readClaims(c.custom),
    read.reading('namespaces', () => c.core.listNamespace()),
    read.readPods(c.core),
    read.readWebhooks(c),
  ]);
  for (const m of pools.malformed) note(m);
  // What each pod holds against others, as the server judges it: a squatter's forged annotations hold nothing.
  const { inUse } = await import('../cluster/pod-tracker.js');
  const records = read.podRecords(pods, namespaces.items, webhooks, addressKeys);
  return {
    pools: pools.pools,
    claims,
    namespaces: new Map(namespaces.items.map((ns) => [ns.metadata?.name ?? '', ns.metadata?.labels ?? {}])),
    defaults: new Map(
      namespaces.items.map((ns) => [ns.metadata?.name ?? '', namespaceDefaults(ns.metadata?.annotations)]),
    ),
    inUse: new Map(records.map((r) => [`${r.namespace}/${r.name}`, inUse(r).map((a) => parseAddress(a)!)])),
  };
}

/** One preview: the objects in manifest order, what was said about them, and the pods that came of them. */
class Run {
  refused = false;
  readonly pods: KubeObject[] = [];
  /** Warnings already printed, under the first object that got them: kubectl, too, prints each warning once. */
  private readonly warned = new Set<string>();
  /** How many names each generateName prefix has given. */
  private readonly generated = new Map<string, number>();

  constructor(
    private readonly admission: Admission,
    private readonly stderr: (line: string) => void,
    private readonly defaultNamespace: string,
    private readonly maxPods: number,
  ) {}

  async apply(o: ManifestObject): Promise<void> {
    const kind = KINDS.get(kindOf(o));
    if (!kind) {
      // Namespaces were read before any object, as the apply creates them first.
      const where = [o.kind, o.metadata?.namespace, o.metadata?.name].filter(Boolean).join('/');
      if (!isNamespace(o)) this.stderr(`${where}: skipped: ${skipReason(o)}`);
      return;
    }
    const obj = {
      ...o,
      metadata: { ...o.metadata, namespace: o.metadata?.namespace ?? this.defaultNamespace },
    } as KubeObject;
    const stored = await this.create(obj, kind.resource);
    if (!stored) return;
    if (!kind.pods) {
      this.pods.push(stored);
      return;
    }
    const { replicas } = workloadInfo(stored.kind as WorkloadKind, stored.spec);
    const count = Math.min(replicas, this.maxPods);
    if (replicas > count)
      this.stderr(
        `${stored.kind}/${stored.metadata!.namespace}/${stored.metadata!.name}: truncated: ` +
          `preview builds the first ${count} of its ${replicas} replicas`,
      );
    for (const pod of kind.pods(stored, count)) {
      const created = await this.create(pod, POD);
      if (created) this.pods.push(created);
    }
  }

  /** One object through both webhooks, as the API server sends it at CREATE: the object as stored, or undefined if refused. */
  private async create(obj: KubeObject, resource: Resource): Promise<KubeObject | undefined> {
    const name = this.nameOf(obj);
    const ref = `${obj.kind}/${obj.metadata!.namespace}/${name}`;
    const mutated = await this.ask('mutate', obj, resource, ref);
    if (!mutated) return undefined;
    const stored = patched(obj, mutated);
    // The API server names an object from its generateName after the mutating webhooks, before the validating ones.
    stored.metadata = { name, ...stored.metadata };
    return (await this.ask('validate', stored, resource, ref)) ? stored : undefined;
  }

  private async ask(
    endpoint: Endpoint,
    object: KubeObject,
    resource: Resource,
    ref: string,
  ): Promise<AdmissionResponse | undefined> {
    const review = await this.admission.review(endpoint, reviewOf(object, resource)).catch((e: unknown) => {
      // A value kubectl could not send either, such as a number among the annotations.
      throw new ConfigError(`${ref}: ${e instanceof Error ? e.message : String(e)}`);
    });
    const answer = review.response!;
    for (const w of answer.warnings ?? []) this.warn(ref, w);
    if (answer.allowed) return answer;
    this.refused = true;
    this.stderr(`${ref}: denied: ${answer.status!.message}`);
    return undefined;
  }

  private warn(ref: string, warning: string): void {
    if (this.warned.has(warning)) return;
    this.warned.add(warning);
    this.stderr(`${ref}: warning: ${warning}`);
  }

  /** The object's name; from generateName, a count stands for the random suffix the API server adds. */
  private nameOf(obj: KubeObject): string {
    const { name, generateName = '' } = obj.metadata!;
    if (name) return name;
    const n = this.generated.get(generateName) ?? 0;
    this.generated.set(generateName, n + 1);
    return `${generateName}${n}`;
  }
}

function kindOf(o: ManifestObject): string {
  return `${o.apiVersion}/${o.kind}`;
}

function skipReason(o: ManifestObject): string {
  return o.kind === 'IPPool'
    ? 'preview takes IPPools from --pools or from the cluster (--kubeconfig)'
    : 'preview admits Pods, Deployments and StatefulSets only';
}

function reviewOf(object: KubeObject, resource: Resource): AdmissionReview {
  const { name, namespace } = object.metadata!;
  const kind = { group: resource.group, version: resource.version, kind: object.kind! };
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid: randomUUID(), kind, resource, name, namespace, operation: 'CREATE', object },
  };
}

/** The object after the answer's JSONPatch, applied as the API server applies it. */
function patched(object: KubeObject, answer: AdmissionResponse): KubeObject {
  const ops = answer.patch
    ? (JSON.parse(Buffer.from(answer.patch, 'base64').toString('utf8')) as PatchOperation[])
    : [];
  return fastJsonPatch.applyPatch(structuredClone(object), ops, true, false).newDocument;
}
