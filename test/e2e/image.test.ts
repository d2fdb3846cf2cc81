// The image `npm run image` builds (no Docker engine) must be the image the Dockerfile describes,
// for users who build with Docker or BuildKit: the same entrypoint, user, workdir, environment,
// ports and files, the same Node major, and it must start as 65532 on a root it cannot write.
// Everything expected is read from the Dockerfile's final stage, never restated here.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { USAGE } from '../../src/cli/args.js';
import { repoPath } from '../../harness/controlplane.js';
import { netpinImage, removeNetpinImage } from '../../harness/install.js';

const execFileP = promisify(execFile);
const USER = '65532:65532';
/** Where the image keeps the netpin-ipam CNI plugin, and how the chart's DaemonSet runs it (as root). */
const IPAM_PLUGIN = '/netpin-ipam/netpin-ipam';

// ---------------------------------------------------------------------------
// The Dockerfile's final stage

interface Copy {
  flags: Record<string, string>;
  sources: string[];
  /** absolute, resolved against the WORKDIR in force */
  dest: string;
  /** the destination names a directory: sources go inside it */
  intoDir: boolean;
}

interface FinalStage {
  from: string;
  workdir: string;
  user?: string;
  env: Record<string, string>;
  expose: string[];
  entrypoint?: string[];
  cmd?: string[];
  copies: Copy[];
}

/** Logical lines: comments and parser directives dropped, backslash continuations joined. */
function instructions(text: string): { op: string; args: string }[] {
  const out: { op: string; args: string }[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.endsWith('\\')) {
      pending += line.slice(0, -1) + ' ';
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    const m = /^(\S+)\s*(.*)$/.exec(full);
    if (m) out.push({ op: m[1]!.toUpperCase(), args: m[2]! });
  }
  return out;
}

/** ENTRYPOINT and CMD in exec form; the shell form would need a shell, which distroless has not. */
function execForm(op: string, args: string): string[] {
  const parsed: unknown = JSON.parse(args);
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string'))
    throw new Error(`${op} ${args}: not the exec form`);
  return parsed as string[];
}

/** ENV key=value ... (values possibly quoted), or the legacy ENV key value. */
function envPairs(args: string): [string, string][] {
  if (!/^[^\s=]+=/.test(args)) {
    const m = /^(\S+)\s+(.*)$/.exec(args);
    return m ? [[m[1]!, m[2]!]] : [];
  }
  return [...args.matchAll(/([^\s=]+)=("(?:[^"\\]|\\.)*"|\S*)/g)].map((m) => {
    const v = m[2]!;
    return [m[1]!, v.startsWith('"') ? (JSON.parse(v) as string) : v];
  });
}

function finalStage(text: string): FinalStage {
  const all = instructions(text);
  const start = all.map((i) => i.op).lastIndexOf('FROM');
  if (start < 0) throw new Error('Dockerfile has no FROM');
  const stage: FinalStage = { from: all[start]!.args.split(/\s+/)[0]!, workdir: '/', env: {}, expose: [], copies: [] };
  for (const { op, args } of all.slice(start + 1)) {
    switch (op) {
      case 'WORKDIR':
        stage.workdir = path.posix.resolve(stage.workdir, args);
        break;
      case 'USER':
        stage.user = args;
        break;
      case 'ENV':
        for (const [k, v] of envPairs(args)) stage.env[k] = v;
        break;
      case 'EXPOSE':
        // A port without a protocol is TCP (the image config always spells it out).
        stage.expose.push(...args.split(/\s+/).map((p) => (p.includes('/') ? p : `${p}/tcp`)));
        break;
      case 'ENTRYPOINT':
        stage.entrypoint = execForm(op, args);
        break;
      case 'CMD':
        stage.cmd = execForm(op, args);
        break;
      case 'COPY':
      case 'ADD': {
        const words = args.split(/\s+/);
        const flags: Record<string, string> = {};
        while (words[0]?.startsWith('--')) {
          const [k, v = ''] = words.shift()!.slice(2).split('=');
          flags[k!] = v;
        }
        const dest = words.pop();
        if (dest === undefined || words.length === 0) throw new Error(`${op} ${args}: no source or destination`);
        stage.copies.push({
          flags,
          sources: words,
          dest: path.posix.resolve(stage.workdir, dest),
          intoDir: dest.endsWith('/') || dest === '.' || words.length > 1,
        });
        break;
      }
      default:
        // RUN, LABEL, ... leave nothing the image config or these checks could compare.
        break;
    }
  }
  return stage;
}

// ---------------------------------------------------------------------------
// The OCI archive

interface Descriptor {
  mediaType: string;
  digest: string;
}

interface ImageConfig {
  config: {
    Entrypoint?: string[];
    Cmd?: string[];
    User?: string;
    WorkingDir?: string;
    Env?: string[];
    ExposedPorts?: Record<string, object>;
  };
}

let work: string;
let rootfs: string;
let config: ImageConfig;
let stage: FinalStage;

function blob(layout: string, d: Descriptor): string {
  const [alg, hex] = d.digest.split(':');
  return path.join(layout, 'blobs', alg!, hex!);
}

/** Follows index.json (and nested indexes) to the one image manifest. */
async function manifest(layout: string): Promise<{ config: Descriptor; layers: Descriptor[] }> {
  let doc = JSON.parse(await fsp.readFile(path.join(layout, 'index.json'), 'utf8')) as { manifests?: Descriptor[] };
  for (;;) {
    const ms = doc.manifests ?? [];
    if (ms.length !== 1) throw new Error(`expected one image in the archive, found ${ms.length}`);
    const next = JSON.parse(await fsp.readFile(blob(layout, ms[0]!), 'utf8')) as {
      manifests?: Descriptor[];
      config?: Descriptor;
      layers?: Descriptor[];
    };
    if (next.config && next.layers) return { config: next.config, layers: next.layers };
    doc = next;
  }
}

async function tar(args: string[]): Promise<void> {
  await execFileP('tar', args, { maxBuffer: 16 << 20 });
}

/** A program of this machine, found on this process's PATH: the child's PATH is the image's, which lacks /usr/sbin. */
function hostBin(name: string): string {
  return (
    (process.env.PATH ?? '/usr/sbin:/usr/bin')
      .split(':')
      .map((d) => path.join(d, name))
      .find((p) => fs.existsSync(p)) ?? name
  );
}

/** The image config's Env only: NODE_OPTIONS or NODE_EXTRA_CA_CERTS of this process (vitest's, or a
 * proxy CA's) would point Node at files the image does not have. */
function imageEnv(): Record<string, string> {
  return Object.fromEntries(
    (config.config.Env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]),
  );
}

/** Runs a program of the image as its user would be (or as `user`): in its root, with the image's environment only. */
function inImage(args: string[], user = USER): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      hostBin('chroot'),
      [`--userspec=${user}`, rootfs, ...args],
      { env: imageEnv(), timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : -1
          : 0;
        resolve({ code, stdout, stderr: code === -1 ? `${stderr}${String(err)}` : stderr });
      },
    );
  });
}

beforeAll(async () => {
  stage = finalStage(await fsp.readFile(repoPath('Dockerfile'), 'utf8'));
  const started = Date.now();
  const archive = await netpinImage();
  process.stderr.write(`image: npm run image took ${Date.now() - started} ms\n`);
  work = await fsp.mkdtemp(path.join(tmpdir(), 'netpin-image-test-'));
  const layout = path.join(work, 'oci');
  rootfs = path.join(work, 'rootfs');
  await fsp.mkdir(layout);
  await fsp.mkdir(rootfs);
  await tar(['-xf', archive, '-C', layout]);
  const m = await manifest(layout);
  config = JSON.parse(await fsp.readFile(blob(layout, m.config), 'utf8')) as ImageConfig;
  // GNU tar detects the layer's compression; as root it keeps owners and modes, which the checks read.
  for (const layer of m.layers)
    await tar(['-xf', blob(layout, layer), '-C', rootfs, '--numeric-owner', '--same-owner', '--same-permissions']);
}, 15 * 60_000);

afterAll(async () => {
  if (work) await fsp.rm(work, { recursive: true, force: true });
  await removeNetpinImage();
});

describe('the image agrees with the Dockerfile', () => {
  it('in its config: entrypoint, cmd, user, workdir, env and ports', () => {
    expect(stage.entrypoint, 'the Dockerfile has an ENTRYPOINT').toBeDefined();
    expect(config.config.Entrypoint).toEqual(stage.entrypoint);
    expect(config.config.Cmd ?? []).toEqual(stage.cmd ?? []);
    expect(config.config.User).toBe(stage.user);
    expect(config.config.WorkingDir).toBe(stage.workdir);
    expect(stage.env).toHaveProperty('NODE_ENV');
    for (const [k, v] of Object.entries(stage.env)) expect(config.config.Env ?? []).toContain(`${k}=${v}`);
    expect(Object.keys(config.config.ExposedPorts ?? {}).sort()).toEqual([...stage.expose].sort());
  });

  it('in its files: every COPY destination, the production dependencies and the entrypoint', async () => {
    expect(stage.copies.length).toBeGreaterThan(0);
    const inRoot = (p: string) => path.join(rootfs, p);
    for (const c of stage.copies) {
      const targets = c.intoDir ? c.sources.map((s) => path.posix.join(c.dest, path.posix.basename(s))) : [c.dest];
      for (const t of targets)
        expect(fs.existsSync(inRoot(t)), `${t} (COPY ${c.sources.join(' ')} ${c.dest})`).toBe(true);
    }
    // What the COPY lines stand for: package.json as in the repository ("type": "module" is
    // needed at run time), every production dependency, and the compiled CLI the entrypoint runs.
    const pkgDest = stage.copies.find((c) => c.sources.includes('package.json'));
    expect(pkgDest, 'the Dockerfile copies package.json').toBeDefined();
    const pkgInImage = path.posix.join(pkgDest!.dest, pkgDest!.intoDir ? 'package.json' : '');
    expect(await fsp.readFile(inRoot(pkgInImage), 'utf8')).toBe(await fsp.readFile(repoPath('package.json'), 'utf8'));
    const deps = Object.keys(
      (JSON.parse(await fsp.readFile(repoPath('package.json'), 'utf8')) as { dependencies: Record<string, string> })
        .dependencies,
    );
    expect(deps).toContain('fastify');
    const modules = stage.copies.find((c) => path.posix.basename(c.dest) === 'node_modules');
    expect(modules, 'the Dockerfile copies node_modules').toBeDefined();
    for (const d of deps)
      expect(fs.existsSync(inRoot(path.posix.join(modules!.dest, d, 'package.json'))), `${d} in ${modules!.dest}`).toBe(
        true,
      );
    // Dev dependencies stay out (the deps stage runs npm ci --omit=dev).
    expect(fs.existsSync(inRoot(path.posix.join(modules!.dest, 'vitest')))).toBe(false);
    const [bin, script] = stage.entrypoint!;
    expect(fs.statSync(inRoot(bin!)).mode & 0o111, `${bin} is executable`).not.toBe(0);
    expect(
      fs.statSync(inRoot(path.posix.resolve(stage.workdir, script!))).isFile(),
      `${script} under ${stage.workdir}`,
    ).toBe(true);
  });

  it("runs the Node major of the Dockerfile's base image", async () => {
    // gcr.io/distroless/nodejs24-debian12: the major is in the image name.
    const major = /nodejs(\d+)/.exec(stage.from)?.[1];
    expect(major, `a Node major in FROM ${stage.from}`).toBeDefined();
    expect(major).toBe('24');
    const r = await inImage([stage.entrypoint![0]!, '-p', 'process.versions.node']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('.')[0]).toBe(major);
  });

  it('starts as the user would: 65532, no arguments, prints the usage and exits 2', async () => {
    const [bin, script] = stage.entrypoint!;
    // chroot starts in /, not WORKDIR: the script by its absolute path is what WORKDIR makes of it.
    const r = await inImage([bin!, path.posix.resolve(stage.workdir, script!)]);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(USAGE.trim());
    expect(r.code).toBe(2);
  });

  it('has no file that 65532 may write, except under /tmp', async () => {
    const [uid, gid] = USER.split(':').map(Number) as [number, number];
    const writable: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        const rel = '/' + path.relative(rootfs, p);
        if (rel === '/tmp') continue;
        const st = await fsp.lstat(p);
        // A symlink's own mode means nothing; its target is checked where it lies.
        if (
          !st.isSymbolicLink() &&
          ((st.uid === uid && st.mode & 0o200) || (st.gid === gid && st.mode & 0o020) || st.mode & 0o002)
        )
          writable.push(rel);
        if (st.isDirectory()) await walk(p);
      }
    };
    const root = await fsp.lstat(rootfs);
    if ((root.uid === uid && root.mode & 0o200) || (root.gid === gid && root.mode & 0o020) || root.mode & 0o002)
      writable.push('/');
    await walk(rootfs);
    expect(writable).toEqual([]);
  });
});

/** Whether an ELF executable asks for a program interpreter (PT_INTERP): a dynamically linked one does. */
function hasInterpreter(elf: Buffer): boolean {
  expect(elf.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
  expect(elf[4], 'a 64-bit ELF').toBe(2);
  const le = elf[5] === 1;
  const u16 = (o: number) => (le ? elf.readUInt16LE(o) : elf.readUInt16BE(o));
  const u32 = (o: number) => (le ? elf.readUInt32LE(o) : elf.readUInt32BE(o));
  const phoff = Number(le ? elf.readBigUInt64LE(0x20) : elf.readBigUInt64BE(0x20));
  const [phentsize, phnum] = [u16(0x36), u16(0x38)];
  for (let i = 0; i < phnum; i++) if (u32(phoff + i * phentsize) === 3) return true;
  return false;
}

describe("the image's netpin-ipam plugin", () => {
  const inRoot = (p: string) => path.join(rootfs, p);

  it('is where the Dockerfile copies it: root-owned, 0755, statically linked', async () => {
    const copy = stage.copies.find((c) => c.dest === IPAM_PLUGIN);
    expect(copy, `the Dockerfile copies the plugin to ${IPAM_PLUGIN}`).toBeDefined();
    expect(copy!.flags.from, 'from a build stage that runs netpin-ipam/build.sh').toBeTruthy();
    const dockerfile = await fsp.readFile(repoPath('Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(
      new RegExp(
        `FROM \\S+ AS ${copy!.flags.from}\\n(?:(?!FROM )[^])*?RUN .*netpin-ipam/build\\.sh ${copy!.sources[0]}`,
      ),
    );
    // Not owned by 65532, nor writable by it (the walk above checks every file): mode exactly 0755.
    expect(copy!.flags.chmod).toBe('0755');
    expect(copy!.flags.chown).toBeUndefined();
    const st = await fsp.stat(inRoot(IPAM_PLUGIN));
    expect(st.isFile()).toBe(true);
    expect([st.uid, st.gid]).toEqual([0, 0]);
    expect(st.mode & 0o7777).toBe(0o755);
    const dir = await fsp.stat(inRoot(path.posix.dirname(IPAM_PLUGIN)));
    expect([dir.uid, dir.mode & 0o022]).toEqual([0, 0]);
    // It is copied onto nodes whose C library nothing promises: no program interpreter.
    expect(hasInterpreter(await fsp.readFile(inRoot(IPAM_PLUGIN))), 'statically linked').toBe(false);
  });

  /**
   * Starts the plugin in the image's root as the DaemonSet does (uid 0), with the arguments given.
   * It finds its own file through /proc/self/exe, as in any container: this bind-mounts /proc into
   * the root, in a mount namespace of its own that ends with the process. unshare, sh and chroot
   * each exec the next, so that a signal to the child reaches the plugin.
   */
  function startPlugin(args: string[]) {
    const script =
      'set -e; "$0" --bind /proc "$1/proc"; root="$1" chroot="$2"; shift 2; exec "$chroot" --userspec=0:0 "$root" "$@"';
    const argv = [hostBin('mount'), rootfs, hostBin('chroot'), IPAM_PLUGIN, ...args];
    return spawn(hostBin('unshare'), ['--mount', '--propagation', 'private', hostBin('sh'), '-c', script, ...argv], {
      env: imageEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  /** A directory under the image's /tmp (so the chrooted plugin sees it), root's and 0755 as a node's CNI bin directory. */
  async function cniBinDir(): Promise<{ host: string; inside: string }> {
    const host = await fsp.mkdtemp(path.join(rootfs, 'tmp', 'cni-bin-'));
    await fsp.chmod(host, 0o755);
    return { host, inside: '/' + path.relative(rootfs, host) };
  }

  beforeAll(async () => {
    await fsp.mkdir(inRoot('/proc'), { mode: 0o555 });
  });
  afterAll(async () => {
    if (rootfs) await fsp.rmdir(inRoot('/proc')).catch(() => undefined);
  });

  it('runs as the DaemonSet runs it: `install --dir` copies it into the directory and exits 0', async () => {
    const dir = await cniBinDir();
    try {
      const child = startPlugin(['install', '--dir', dir.inside]);
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      expect(code, out).toBe(0);
      const copied = path.join(dir.host, 'netpin-ipam');
      expect(await fsp.readFile(copied)).toEqual(await fsp.readFile(inRoot(IPAM_PLUGIN)));
      expect((await fsp.stat(copied)).mode & 0o777).toBe(0o755);
      // Atomic: nothing but the plugin is left behind.
      expect(await fsp.readdir(dir.host)).toEqual(['netpin-ipam']);
    } finally {
      await fsp.rm(dir.host, { recursive: true, force: true });
    }
  });

  it('with --wait, keeps running after the copy until SIGTERM, then exits 0', async () => {
    const dir = await cniBinDir();
    try {
      const child = startPlugin(['install', '--dir', dir.inside, '--wait']);
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.on('exit', (code, signal) => resolve({ code, signal })),
      );
      const copied = path.join(dir.host, 'netpin-ipam');
      const deadline = Date.now() + 30_000;
      while (!fs.existsSync(copied) && child.exitCode === null && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      expect(fs.existsSync(copied), out).toBe(true);
      // Still waiting a moment later, as a DaemonSet container must.
      await new Promise((r) => setTimeout(r, 500));
      expect(child.exitCode, out).toBeNull();
      child.kill('SIGTERM');
      expect(await exited, out).toEqual({ code: 0, signal: null });
    } finally {
      await fsp.rm(dir.host, { recursive: true, force: true });
    }
  });

  it('npm run image fails, saying so, when netpin-ipam/build.sh is missing', async () => {
    const root = await fsp.mkdtemp(path.join(tmpdir(), 'netpin-image-ipam-'));
    try {
      await fsp.mkdir(path.join(root, 'scripts'));
      for (const f of ['scripts/image.sh', 'scripts/node-checksums.txt', 'package-lock.json'])
        await fsp.copyFile(repoPath(f), path.join(root, f));
      // The real Node (its checksum passes), so that the script gets as far as the plugin.
      await fsp.mkdir(path.join(root, 'node_modules/node/bin'), { recursive: true });
      await fsp.symlink(
        fs.realpathSync(repoPath('node_modules/node/bin/node')),
        path.join(root, 'node_modules/node/bin/node'),
      );
      const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
        execFile('bash', [path.join(root, 'scripts/image.sh')], { timeout: 60_000 }, (err, _out, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stderr }),
        );
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('netpin-ipam/build.sh not found');
    } finally {
      await fsp.rm(root, { recursive: true, force: true });
    }
  });
});

describe("the image's Node", () => {
  it('is the binary scripts/node-checksums.txt names for the lockfile version and this architecture', async () => {
    const lock = JSON.parse(await fsp.readFile(repoPath('package-lock.json'), 'utf8')) as {
      packages: Record<string, { version?: string }>;
    };
    const version = lock.packages['node_modules/node']?.version;
    expect(version, 'the node devDependency in package-lock.json').toMatch(/^24\./);
    // The image is built for this machine, and npm names the binary's package after Node's process.arch.
    const kept = (await fsp.readFile(repoPath('scripts/node-checksums.txt'), 'utf8'))
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('#'))
      .map((l) => l.trim().split(/\s+/))
      .find(([v, platform]) => v === version && platform === `linux-${process.arch}`);
    expect(kept, `a line for ${version} linux-${process.arch}`).toBeDefined();
    const node = await fsp.readFile(path.join(rootfs, stage.entrypoint![0]!));
    expect(createHash('sha256').update(node).digest('hex')).toBe(kept![2]);
  });

  it('npm run image refuses a Node binary whose SHA-256 is not the one kept, before running it', async () => {
    const root = await fsp.mkdtemp(path.join(tmpdir(), 'netpin-image-sum-'));
    try {
      await fsp.mkdir(path.join(root, 'scripts'));
      await fsp.mkdir(path.join(root, 'node_modules/node/bin'), { recursive: true });
      for (const f of ['scripts/image.sh', 'scripts/node-checksums.txt', 'package-lock.json'])
        await fsp.copyFile(repoPath(f), path.join(root, f));
      // Not Node: were it run, it would leave a mark.
      const mark = path.join(root, 'ran');
      await fsp.writeFile(path.join(root, 'node_modules/node/bin/node'), `#!/bin/sh\ntouch '${mark}'\n`, {
        mode: 0o755,
      });
      const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
        execFile('bash', [path.join(root, 'scripts/image.sh')], { timeout: 60_000 }, (err, _out, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stderr }),
        );
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/is not the Node 24\.\S+ linux-\S+ of scripts\/node-checksums\.txt/);
      expect(fs.existsSync(mark)).toBe(false);
    } finally {
      await fsp.rm(root, { recursive: true, force: true });
    }
  });
});
