// `netpin preview`: in process through preview(), and as the built binary for streams and exit codes.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import type { KubeObject } from '../../src/admission/review.js';
import { PREVIEW_USAGE, SERVE_USAGE, UsageError } from '../../src/cli/args.js';
import { preview, type PreviewIO } from '../../src/cli/preview.js';
import { denial, deployment, harness, pod, podCreate, review } from '../../harness/reviews.js';

const ROOT = resolve(import.meta.dirname, '../..');
const MAIN = join(ROOT, 'dist/src/cli/main.js');
const POOLS = 'examples/pools.yaml';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'netpin-preview-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Result {
  code: number;
  pods: KubeObject[];
  stderr: string[];
}

async function run(argv: string[], stdin = '', maxPods?: number): Promise<Result> {
  let stdout = '';
  const stderr: string[] = [];
  const io: PreviewIO = {
    stdin: async () => stdin,
    stdout: async (t) => void (stdout += t),
    stderr: (line) => void stderr.push(line),
  };
  const code = await preview(argv, io, maxPods);
  return { code, pods: parseAllDocuments(stdout).map((d) => d.toJS() as KubeObject), stderr };
}

/** A temporary file with these YAML objects, one document each. */
function file(name: string, ...objects: object[]): string {
  const path = join(tmp, name);
  writeFileSync(path, objects.map((o) => stringify(o)).join('---\n'));
  return path;
}

const manifest = (...objects: object[]) => objects.map((o) => stringify(o)).join('---\n');
const names = (r: Result) => r.pods.map((p) => p.metadata?.name);
const annotation = (key: string) => (p: KubeObject) => p.metadata?.annotations?.[key];
const allocated = annotation('netpin.io/allocated');

describe('netpin preview', () => {
  it('prints the pods of examples/workloads.yaml as their controllers would create them, with what netpin writes', async () => {
    const r = await run(['-f', 'examples/workloads.yaml', '--cni', 'calico', '--pools', POOLS]);
    expect(r.code).toBe(0);
    expect(names(r)).toEqual(['cache-0', 'cache-1', 'cache-2', 'api-preview-0', 'api-preview-1', 'ledger']);
    // The StatefulSet's ordinals first, in order, then the Deployment's replicas; 10.20.0.1 is excluded.
    expect(r.pods.map(allocated)).toEqual([
      '10.20.0.2',
      '10.20.0.3',
      '10.20.0.4',
      '10.20.0.5',
      '10.20.0.6',
      '10.30.0.15',
    ]);
    expect(r.pods.map(annotation('cni.projectcalico.org/ipAddrs'))).toEqual(r.pods.map((p) => `["${allocated(p)}"]`));

    const [sts, , , deploy, , bare] = r.pods;
    expect(sts!.metadata).toMatchObject({
      namespace: 'shop',
      labels: {
        app: 'cache',
        'statefulset.kubernetes.io/pod-name': 'cache-0',
        'apps.kubernetes.io/pod-index': '0',
        'netpin.io/pinned': 'true',
      },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'cache', controller: true }],
    });
    expect(sts!.spec).toMatchObject({ hostname: 'cache-0', subdomain: 'cache', containers: [{ name: 'cache' }] });
    expect(deploy!.metadata).toMatchObject({
      generateName: 'api-preview-',
      labels: { app: 'api', 'pod-template-hash': 'preview' },
      annotations: { 'netpin.io/egress-rate': '10M', 'kubernetes.io/egress-bandwidth': '10M' },
      ownerReferences: [{ kind: 'ReplicaSet', name: 'api-preview', controller: true }],
    });
    expect(bare!.metadata).toMatchObject({
      namespace: 'payments',
      annotations: { 'kubernetes.io/ingress-bandwidth': '50M' },
    });
    expect(bare!.metadata?.ownerReferences).toBeUndefined();

    expect(r.stderr[0]).toBe('Service/shop/cache: skipped: preview admits Pods, Deployments and StatefulSets only');
    expect(r.stderr[1]).toBe(
      'StatefulSet/shop/cache: warning: netpin: reserved cache-0=10.20.0.2 cache-1=10.20.0.3 cache-2=10.20.0.4',
    );
    // The same warning for each pod is said once, under the first.
    expect(r.stderr.slice(2)).toEqual([
      expect.stringMatching(/^Pod\/shop\/api-preview-0: warning: netpin: Calico applies kubernetes\.io\/\*-bandwidth/),
    ]);
  });

  it('gives StatefulSet ordinals their netpin.io/ips entries in order from spec.ordinals.start, read from stdin', async () => {
    const sts = {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'db', namespace: 'payments' },
      spec: {
        replicas: 3,
        ordinals: { start: 3 },
        selector: { matchLabels: { app: 'db' } },
        template: {
          metadata: { labels: { app: 'db' }, annotations: { 'netpin.io/ips': '10.30.0.17;10.30.0.12;10.30.0.19' } },
          spec: { containers: [] },
        },
      },
    };
    const r = await run(['-f', '-', '--cni', 'calico', '--pools', POOLS], manifest(sts));
    expect(r.code).toBe(0);
    expect(names(r)).toEqual(['db-3', 'db-4', 'db-5']);
    expect(r.pods.map(allocated)).toEqual(['10.30.0.17', '10.30.0.12', '10.30.0.19']);
    expect(r.pods.map((p) => p.metadata?.labels?.['apps.kubernetes.io/pod-index'])).toEqual(['3', '4', '5']);
  });

  it("refuses examples/refused.yaml in the webhook's own words, prints what it admitted, and exits 1", async () => {
    const r = await run(['-f', 'examples/refused.yaml', '--cni', 'calico', '--pools', POOLS]);
    // The same objects, posted to the webhook app as the API server would.
    const h = await harness({ pools: readFileSync(POOLS, 'utf8') });
    await h.mutate(podCreate({ name: 'cart', annotations: { 'netpin.io/ip': '10.20.0.7' } }));
    const held = denial(await h.mutate(podCreate({ name: 'cart-copy', annotations: { 'netpin.io/ip': '10.20.0.7' } })));
    const replicas = denial(
      await h.mutate(
        deployment('CREATE', { name: 'checkout', replicas: 3, annotations: { 'netpin.io/ip': '10.20.0.8' } }),
      ),
    );
    expect(held).toMatch(/^netpin\.io\/ip \(CNI Calico\): 10\.20\.0\.7 is held by pod shop\/cart/);
    expect(r.stderr).toEqual([`Pod/shop/cart-copy: denied: ${held}`, `Deployment/shop/checkout: denied: ${replicas}`]);
    expect(names(r)).toEqual(['cart']);
    expect(r.code).toBe(1);
  });

  it('runs the validating webhook on what the mutating one let through', async () => {
    // No netpin intent: the mutating webhook lets it be, the validating one refuses what containerd would reject.
    const bad = pod({ name: 'raw', annotations: { 'kubernetes.io/ingress-bandwidth': '10Mbps' } });
    const h = await harness({ pools: readFileSync(POOLS, 'utf8') });
    const body = review({
      kind: { group: '', version: 'v1', kind: 'Pod' },
      operation: 'CREATE',
      namespace: 'shop',
      name: 'raw',
      object: bad,
    });
    expect((await h.mutate(body)).response.allowed).toBe(true);
    const message = denial(await h.validate(body));

    const r = await run(['-f', '-', '--cni', 'calico', '--pools', POOLS], manifest(bad));
    expect(r.stderr).toEqual([`Pod/shop/raw: denied: ${message}`]);
    expect(r.pods).toEqual([]);
    expect(r.code).toBe(1);
  });

  it('gives the replicas of a Deployment one egress address: the webhook finds the Deployment from the ReplicaSet', async () => {
    const pools = file('egress-pools.yaml', {
      apiVersion: 'netpin.io/v1alpha1',
      kind: 'IPPool',
      metadata: { name: 'out' },
      spec: { cidr: '203.0.113.0/28', egress: {} },
    });
    const template = {
      metadata: { labels: { app: 'api' }, annotations: { 'netpin.io/egress-pool': 'out' } },
      spec: { containers: [] },
    };
    const objects = [
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'api', namespace: 'shop' },
        spec: { replicas: 3, template },
      },
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'solo', namespace: 'shop', annotations: template.metadata.annotations },
      },
    ];
    const r = await run(['-f', '-', '--cni', 'kube-ovn', '--pools', pools], manifest(...objects));
    expect(r.code).toBe(0);
    expect(r.pods.map(annotation('ovn.kubernetes.io/snat'))).toEqual([
      '203.0.113.1',
      '203.0.113.1',
      '203.0.113.1',
      '203.0.113.2',
    ]);
  });

  it('builds the first pods of a workload only, up to a bound, and says so: spec.replicas may be 2^31 - 1', async () => {
    const workload = (kind: string, name: string) => ({
      apiVersion: 'apps/v1',
      kind,
      metadata: { name, namespace: 'shop' },
      spec: { replicas: 2_000_000_000, template: { spec: { containers: [] } } },
    });
    const r = await run(
      ['-f', '-', '--cni', 'calico', '--pools', POOLS],
      manifest(workload('Deployment', 'api'), workload('StatefulSet', 'db'), {
        ...workload('StatefulSet', 'two'),
        spec: { replicas: 2 },
      }),
      3,
    );
    expect(r.code).toBe(0);
    expect(r.stderr).toEqual([
      'Deployment/shop/api: truncated: preview builds the first 3 of its 2000000000 replicas',
      'StatefulSet/shop/db: truncated: preview builds the first 3 of its 2000000000 replicas',
    ]);
    expect(names(r)).toEqual([
      'api-preview-0',
      'api-preview-1',
      'api-preview-2',
      'db-0',
      'db-1',
      'db-2',
      'two-0',
      'two-1',
    ]);
  });

  it('reads namespace labels from --namespaces and the manifest; an object without a namespace gets -n or default', async () => {
    const blogPod = (name: string, namespace?: string) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, ...(namespace && { namespace }), annotations: { 'netpin.io/pool': 'web' } },
    });
    const refused = await run(['-f', '-', '--cni', 'calico', '--pools', POOLS, '-n', 'blog'], manifest(blogPod('a')));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toEqual([
      expect.stringMatching(/^Pod\/blog\/a: denied: netpin\.io\/pool \(CNI Calico\): .*namespaceSelector/),
    ]);

    const namespaces = file('namespaces.yaml', {
      apiVersion: 'v1',
      kind: 'List',
      items: [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'blog', labels: { team: 'web' } } }],
    });
    const given = await run(
      ['-f', '-', '--cni', 'calico', '--pools', POOLS, '--namespace', 'blog', '--namespaces', namespaces],
      manifest(blogPod('a')),
    );
    expect(given.stderr).toEqual([]);
    expect(given.pods.map((p) => [p.metadata?.namespace, allocated(p)])).toEqual([['blog', '10.20.0.2']]);

    const own = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'news', labels: { team: 'web' } } };
    const generated = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { generateName: 'job-', namespace: 'news', annotations: { 'netpin.io/pool': 'web' } },
    };
    const inManifest = await run(
      ['-f', '-', '--cni', 'calico', '--pools', POOLS],
      manifest(own, generated, generated, blogPod('b')),
    );
    expect(inManifest.pods.map((p) => `${p.metadata?.namespace}/${p.metadata?.name}=${allocated(p)}`)).toEqual([
      'news/job-0=10.20.0.2',
      'news/job-1=10.20.0.3',
    ]);
    expect(inManifest.stderr).toEqual([
      expect.stringMatching(/^Pod\/default\/b: denied: netpin\.io\/pool \(CNI Calico\): .*namespaceSelector/),
    ]);
  });

  it("gives pods and templates that name no address source their namespace's default pool, from the manifest's Namespace", async () => {
    const ns = {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'blog', labels: { team: 'web' }, annotations: { 'netpin.io/pool': 'web' } },
    };
    const plain = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'plain', namespace: 'blog' } };
    const r = await run(['-f', '-', '--cni', 'calico', '--pools', POOLS], manifest(ns, plain));
    expect(r.stderr).toEqual([]);
    expect(r.pods.map((p) => [annotation('netpin.io/pool')(p), allocated(p)])).toEqual([['web', '10.20.0.2']]);

    const elsewhere = { ...ns, metadata: { ...ns.metadata, labels: {} } };
    const refused = await run(['-f', '-', '--cni', 'calico', '--pools', POOLS], manifest(elsewhere, plain));
    expect(refused.stderr).toEqual([
      expect.stringMatching(
        /^Pod\/blog\/plain: denied: netpin\.io\/pool \(namespace blog's default\) \(CNI Calico\): /,
      ),
    ]);
  });

  it.each<[string, string[], RegExp]>([
    ['no manifest', ['--cni', 'calico', '--pools', POOLS], /^-f <manifest\.yaml> is required/],
    ['no --cni', ['-f', 'x.yaml', '--pools', POOLS], /^--cni is required$/],
    [
      'an unknown CNI',
      ['-f', 'x.yaml', '--cni', 'flannel', '--pools', POOLS],
      /^--cni must be one of calico, kube-ovn, antrea, cilium, netpin-ipam, not "flannel"$/,
    ],
    [
      'neither pools nor cluster',
      ['-f', 'x.yaml', '--cni', 'calico'],
      /^--pools <file\.yaml> is required, or --kubeconfig <file>/,
    ],
    [
      'both pools and cluster',
      ['-f', 'x.yaml', '--cni', 'calico', '--pools', POOLS, '--kubeconfig', 'k'],
      /^give --pools or --kubeconfig, not both/,
    ],
    [
      'an unknown flag',
      ['-f', 'x.yaml', '--cni', 'calico', '--pools', POOLS, '--ledger', 'kube'],
      /^unknown flag --ledger$/,
    ],
    ['a stray argument', ['x.yaml', '--cni', 'calico'], /^unexpected argument "x\.yaml"$/],
  ])('refuses %s as a usage error', async (_, argv, message) => {
    const failed = run(argv);
    await expect(failed).rejects.toThrow(UsageError);
    await expect(failed).rejects.toThrow(message);
  });

  it('names the document of a manifest it cannot parse, and an object without a name', async () => {
    await expect(run(['-f', '-', '--cni', 'calico', '--pools', POOLS], 'kind: Pod\n---\n[a\n')).rejects.toThrow(
      /^stdin: document 2: /,
    );
    await expect(
      run(['-f', '-', '--cni', 'calico', '--pools', POOLS], 'apiVersion: v1\nkind: Pod\nmetadata: {}\n'),
    ).rejects.toThrow('stdin: a Pod has neither metadata.name nor metadata.generateName');
  });
});

describe('netpin preview, as a process', () => {
  beforeAll(() => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` (npm test does)`);
  });

  /** Runs the binary to its exit, with `stdin` on its standard input. */
  function netpin(args: string[], stdin = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const child = spawn(process.execPath, [MAIN, ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.end(stdin);
    return new Promise((res) => child.on('close', (code) => res({ code, stdout, stderr })));
  }

  it('reads the manifest from stdin with -f -, prints YAML on stdout and exits 0', async () => {
    const r = await netpin(
      ['preview', '-f', '-', '--cni', 'calico', '--pools', POOLS],
      readFileSync(join(ROOT, 'examples/workloads.yaml'), 'utf8'),
    );
    expect(r.code).toBe(0);
    const pods = parseAllDocuments(r.stdout).map((d) => d.toJS() as KubeObject);
    expect(pods.map((p) => `${p.metadata?.name}=${allocated(p)}`)).toEqual([
      'cache-0=10.20.0.2',
      'cache-1=10.20.0.3',
      'cache-2=10.20.0.4',
      'api-preview-0=10.20.0.5',
      'api-preview-1=10.20.0.6',
      'ledger=10.30.0.15',
    ]);
    expect(r.stderr.split('\n')[0]).toBe(
      'Service/shop/cache: skipped: preview admits Pods, Deployments and StatefulSets only',
    );
  });

  it('exits 1 with the denials on stderr, one line each, and what it admitted on stdout', async () => {
    const r = await netpin(['preview', '-f', 'examples/refused.yaml', '--cni=calico', '--pools', POOLS]);
    expect(r.code).toBe(1);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(
      /^Pod\/shop\/cart-copy: denied: netpin\.io\/ip \(CNI Calico\): 10\.20\.0\.7 is held by pod shop\/cart \(IPPool web\)\. Fix: /,
    );
    expect(lines[1]).toMatch(
      /^Deployment\/shop\/checkout: denied: netpin\.io\/ip \(CNI Calico\): one fixed address cannot serve 3 replicas/,
    );
    expect(parseAllDocuments(r.stdout).map((d) => (d.toJS() as KubeObject).metadata?.name)).toEqual(['cart']);
  });

  it.each<[string, string[], number, RegExp]>([
    [
      'bad flags',
      ['preview', '-f', 'examples/workloads.yaml', '--cni', 'flannel', '--pools', POOLS],
      2,
      /^netpin: --cni must be one of/,
    ],
    ['no manifest', ['preview', '--cni', 'calico', '--pools', POOLS], 2, /^netpin: -f <manifest\.yaml> is required/],
    [
      'a manifest that does not exist',
      ['preview', '-f', 'examples/none.yaml', '--cni', 'calico', '--pools', POOLS],
      1,
      /^netpin: cannot read examples\/none\.yaml: ENOENT$/,
    ],
  ])('exits non-zero for %s, with one line on stderr and nothing on stdout', async (_, args, code, line) => {
    const r = await netpin(args);
    expect(r.code).toBe(code);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(line)]);
  });

  it('lists preview after serve in the usage', async () => {
    const r = await netpin([]);
    expect(r.code).toBe(2);
    expect(r.stdout.startsWith(`${SERVE_USAGE}\n`)).toBe(true);
    expect(r.stdout).toContain(`\n${PREVIEW_USAGE}\n`);
    expect(PREVIEW_USAGE).toMatch(
      /^usage: netpin preview -f <manifest\.yaml\|-> --cni <calico\|kube-ovn\|antrea\|cilium\|netpin-ipam>/,
    );
  });
});
