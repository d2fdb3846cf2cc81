// Runs the built binary, as `npm test` builds it first with tsc.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { patchOf } from '../../harness/reviews.js';

const ROOT = resolve(import.meta.dirname, '../..');
const MAIN = join(ROOT, 'dist/src/cli/main.js');
const EXAMPLE = JSON.parse(readFileSync(join(ROOT, 'examples/review-pod.json'), 'utf8'));

let tmp: string;
beforeAll(() => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` (npm test does)`);
  tmp = mkdtempSync(join(tmpdir(), 'netpin-cli-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function netpin(args: string[]): ChildProcess {
  // No KUBERNETES_SERVICE_HOST from the environment: it would change the default ledger.
  const env = { PATH: process.env.PATH, HOME: process.env.HOME };
  return spawn(process.execPath, [MAIN, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Runs netpin to its exit. */
function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = netpin(args);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((res) => child.on('close', (code) => res({ code, stdout, stderr })));
}

describe('netpin, the command', () => {
  it('prints usage without a command, and exits 2', async () => {
    const r = await run([]);
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/^usage: netpin serve --cni <calico\|kube-ovn\|antrea\|cilium\|netpin-ipam>/);
    expect((await run(['--help'])).code).toBe(0);
  });

  const badPools = () => {
    const path = join(tmp, `bad-${randomUUID()}.yaml`);
    writeFileSync(path, 'kind: IPPool\nmetadata: { name: web }\nspec: { cidr: 10.20.0.1/24 }\n');
    return path;
  };

  it.concurrent.each<[string, () => string[], number, RegExp]>([
    ['an unknown command', () => ['start'], 2, /^netpin: unknown command "start"$/],
    ['an unknown flag', () => ['serve', '--cni', 'calico', '--bogus', 'x'], 2, /^netpin: unknown flag --bogus$/],
    [
      'an unknown CNI',
      () => ['serve', '--cni', 'flannel', '--pools', 'examples/pools.yaml'],
      2,
      /^netpin: --cni must be one of calico, kube-ovn, antrea, cilium, netpin-ipam, not "flannel"$/,
    ],
    [
      'a bad --listen',
      () => ['serve', '--cni', 'calico', '--pools', 'examples/pools.yaml', '--listen', 'nowhere'],
      2,
      /^netpin: --listen must be host:port, not "nowhere"$/,
    ],
    [
      'a pool file that does not exist',
      () => ['serve', '--cni', 'calico', '--pools', join(tmp, 'none.yaml'), '--cert-dir', join(tmp, 'c1')],
      1,
      /^netpin: cannot read .*none\.yaml: ENOENT$/,
    ],
    [
      'a malformed pool file',
      () => ['serve', '--cni', 'calico', '--pools', badPools(), '--cert-dir', join(tmp, 'c2')],
      1,
      /^netpin: .*bad-.*\.yaml: IPPool web: spec\.cidr\/ranges: "10\.20\.0\.1\/24" has host bits set; the network is 10\.20\.0\.0\/24$/,
    ],
  ])('exits non-zero with one line on stderr for %s', async (_, args, code, line) => {
    const r = await run(args());
    expect(r.code).toBe(code);
    expect(r.stderr.endsWith('\n')).toBe(true);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr.trimEnd()).toMatch(line);
  });

  it('exits 1 with one line when the port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((res) => blocker.listen(0, '127.0.0.1', res));
    try {
      const port = (blocker.address() as { port: number }).port;
      const r = await run([
        'serve',
        '--cni',
        'calico',
        '--pools',
        'examples/pools.yaml',
        '--listen',
        `127.0.0.1:${port}`,
        '--cert-dir',
        join(tmp, 'c3'),
        '--log-level',
        'warn',
      ]);
      expect(r.code).toBe(1);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^netpin: .*EADDRINUSE/);
    } finally {
      blocker.close();
    }
  });
});

describe('netpin serve, as a process', () => {
  let child: ChildProcess;
  let url: URL;
  let ca: string;

  beforeAll(async () => {
    const certDir = join(tmp, 'serve-certs');
    child = netpin([
      'serve',
      '--cni',
      'calico',
      '--pools',
      'examples/pools.yaml',
      '--listen',
      '127.0.0.1:0',
      '--cert-dir',
      certDir,
      '--ledger',
      'memory',
      '--log-level',
      'warn',
    ]);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const lines = createInterface({ input: child.stdout! });
    const serving = await new Promise<RegExpExecArray>((res, rej) => {
      lines.on('line', (line) => {
        const m = /^netpin serving (https:\/\/127\.0\.0\.1:(\d+)) \(CNI calico, memory ledger\); CA bundle: (.+)$/.exec(
          line,
        );
        if (m) res(m);
      });
      child.on('exit', (code) => rej(new Error(`netpin exited with ${code} before serving: ${stderr}`)));
    });
    url = new URL(serving[1]!);
    expect(Number(serving[2])).toBeGreaterThan(0);
    expect(serving[3]).toBe(join(certDir, 'ca.crt'));
    ca = readFileSync(serving[3]!, 'utf8');
  });

  afterAll(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });

  const post = (body: unknown) =>
    new Promise<{ status: number; text: string }>((res, rej) => {
      const req = https.request(
        new URL('/mutate', url),
        { method: 'POST', ca, headers: { 'content-type': 'application/json' } },
        (r) => {
          let text = '';
          r.on('data', (d: Buffer) => (text += d.toString()));
          r.on('end', () => res({ status: r.statusCode!, text }));
        },
      );
      req.on('error', rej);
      req.end(JSON.stringify(body));
    });

  it('answers examples/review-pod.json over HTTPS, trusted through the generated CA, with the patch README shows', async () => {
    const first = await post(EXAMPLE);
    expect(first.status).toBe(200);
    const response = JSON.parse(first.text).response;
    expect(response).toMatchObject({ uid: EXAMPLE.request.uid, allowed: true, patchType: 'JSONPatch' });
    const patch = patchOf(response);
    expect(patch.filter((op) => op.path.startsWith('/metadata/annotations/'))).toEqual([
      { op: 'add', path: '/metadata/annotations/kubernetes.io~1egress-bandwidth', value: '10M' },
      { op: 'add', path: '/metadata/annotations/cni.projectcalico.org~1ipAddrs', value: '["10.20.0.2"]' },
      { op: 'add', path: '/metadata/annotations/netpin.io~1allocated', value: '10.20.0.2' },
    ]);
    // README quotes the decoded patch; it must be this one, op for op.
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const block = /which decodes to:\s*```json\n([\s\S]*?)```/.exec(readme);
    expect(block, 'README has the decoded patch of examples/review-pod.json').not.toBeNull();
    expect(patch).toEqual(JSON.parse(block![1]!));

    // The same uid again: the same answer, byte for byte.
    expect((await post(EXAMPLE)).text).toBe(first.text);
  });

  it('gives another pod the next address, and the same pod name its address again', async () => {
    const other = structuredClone(EXAMPLE);
    other.request.uid = randomUUID();
    other.request.name = other.request.object.metadata.name = 'checkout-2';
    const allocated = (text: string) =>
      patchOf(JSON.parse(text).response).find((op) => op.path === '/metadata/annotations/netpin.io~1allocated');
    expect(allocated((await post(other)).text)).toMatchObject({ value: '10.20.0.3' });
    const sameName = structuredClone(EXAMPLE);
    sameName.request.uid = randomUUID();
    expect(allocated((await post(sameName)).text)).toMatchObject({ value: '10.20.0.2' });
  });

  it('answers a malformed review with 400', async () => {
    const r = await post({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' });
    expect(r.status).toBe(400);
    expect(JSON.parse(r.text)).toEqual({ message: 'malformed AdmissionReview: request is missing' });
  });

  it('stops on SIGTERM and exits 0', async () => {
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
