// Summaries of V8 CPU profiles (node --cpu-prof): where a server's busy time goes, by function
// and by package, so that a missed target comes with its cause and not a guess.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';

interface CpuProfile {
  nodes: Array<{
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    hitCount?: number;
    children?: number[];
  }>;
  samples: number[];
  timeDeltas: number[];
}

/** Frames of one file of netpin (its path under dist/src), optionally only these functions. */
export interface FrameMatch {
  label: string;
  file: string;
  functions?: string[];
}

export interface ProfileEntry {
  name: string;
  /** Share of the busy (non-idle) time, in percent: self time, or inclusive for ownInclusive. */
  percent: number;
  ms: number;
}

export interface ProfileSummary {
  /** Busy time: every sample but (idle). */
  busyMs: number;
  idlePercent: number;
  topFunctions: ProfileEntry[];
  byArea: ProfileEntry[];
  /** netpin's own functions (dist/src) with everything they call: which parts of a request cost what. */
  ownInclusive: ProfileEntry[];
  /** Per FrameMatch asked for, the samples with such a frame anywhere on the stack (each sample once). */
  focused?: ProfileEntry[];
}

/** Reads the one .cpuprofile in `dir` (a process writes one at exit) and summarizes it. */
export function summarizeProfileDir(dir: string, root: string, top = 15, focus: FrameMatch[] = []): ProfileSummary {
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no .cpuprofile in ${dir}`);
  return summarizeProfile(readProfile(join(dir, file)), root, top, focus);
}

export function readProfile(file: string): CpuProfile {
  return JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
}

/**
 * For a child that the bench does not start itself (startNetpin): NODE_OPTIONS that load
 * bench/profile-preload.ts, whose first SIGUSR2 starts V8's profiler and the second writes `file`.
 */
export function profilePreloadEnv(root: string, file: string): NodeJS.ProcessEnv {
  const preload = `--import=${pathToFileURL(join(root, 'dist/bench/profile-preload.js')).href}`;
  return { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${preload}`.trim(), NETPIN_BENCH_PROFILE: file };
}

type Frame = CpuProfile['nodes'][number]['callFrame'];

/** The profile's nodes by id, each node's parent, and the frames on a node's stack (its own first). */
function walk(p: CpuProfile) {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const stack = (id: number) => {
    const out: Frame[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) out.push(byId.get(at)!.callFrame);
    return out;
  };
  return { byId, parent, stack };
}

function matches(m: FrameMatch, frame: Frame, root: string): boolean {
  return shortUrl(frame.url, root) === m.file && (!m.functions || m.functions.includes(frame.functionName));
}

/** One run of some work, as the sampling profiler saw it. */
export interface StackRun {
  /** From the first sample with the work on the stack to the last: awaited I/O included. */
  wallMs: number;
  /** Those samples, and the garbage collector's between two of them: the event loop held by this work. */
  busyMs: number;
}

/**
 * The runs of the work with a frame of `m` on the stack: such samples less than `gapMs` apart make
 * one run. For work on a timer (the reconciler, every 5 s), a run is one round of it.
 */
export function stackRuns(p: CpuProfile, root: string, m: FrameMatch, gapMs = 1000): StackRun[] {
  const { byId, stack } = walk(p);
  const hit = new Map<number, boolean>();
  const runs: StackRun[] = [];
  let run: { from: number; to: number; busy: number } | undefined;
  let gc = 0;
  let t = 0;
  const close = () => {
    if (run) runs.push({ wallMs: (run.to - run.from) / 1000, busyMs: run.busy / 1000 });
    run = undefined;
  };
  for (let i = 0; i < p.samples.length; i++) {
    // A sample stands for the interval before it.
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    const id = p.samples[i]!;
    if (!hit.has(id))
      hit.set(
        id,
        stack(id).some((f) => matches(m, f, root)),
      );
    if (!hit.get(id)) {
      gc = byId.get(id)!.callFrame.functionName === '(garbage collector)' ? gc + dt : 0;
      continue;
    }
    if (run && t - run.to > gapMs * 1000) close();
    if (run) run.busy += gc + dt;
    run ??= { from: t - dt, to: t, busy: dt };
    run.to = t;
    gc = 0;
  }
  close();
  return runs;
}

export function summarizeProfile(p: CpuProfile, root: string, top = 15, focus: FrameMatch[] = []): ProfileSummary {
  const { byId, parent } = walk(p);
  const selfUs = new Map<number, number>();
  // timeDeltas[i] is the time before sample i; attribute it to that sample's node.
  for (let i = 0; i < p.samples.length; i++)
    selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));

  const fn = new Map<string, number>();
  const area = new Map<string, number>();
  let busy = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    if (functionName === '(idle)') {
      idle += us;
      continue;
    }
    busy += us;
    const where = shortUrl(url, root);
    const key = where ? `${functionName || '(anonymous)'} ${where}:${lineNumber + 1}` : functionName || '(anonymous)';
    fn.set(key, (fn.get(key) ?? 0) + us);
    const a = areaOf(functionName, where);
    area.set(a, (area.get(a) ?? 0) + us);
  }
  // Inclusive time of netpin's own functions: each sample counts once for every distinct function on its stack.
  const inclusive = new Map<string, number>();
  const focusedUs = new Map<string, number>(focus.map((m) => [m.label, 0]));
  for (const [id, us] of selfUs) {
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const { functionName, url, lineNumber } = byId.get(at)!.callFrame;
      const where = shortUrl(url, root);
      if (!where.startsWith('dist/src/')) continue;
      const key = `${functionName || '(anonymous)'} ${where}:${lineNumber + 1}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + us);
    }
    for (const m of focus) {
      let hit = false;
      for (let at: number | undefined = id; at !== undefined && !hit; at = parent.get(at))
        hit = matches(m, byId.get(at)!.callFrame, root);
      if (hit) focusedUs.set(m.label, focusedUs.get(m.label)! + us);
    }
  }

  const entries = (m: Map<string, number>, n: number): ProfileEntry[] =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, us]) => ({ name, ms: round(us / 1000), percent: round((100 * us) / busy) }));
  return {
    busyMs: round(busy / 1000),
    idlePercent: round((100 * idle) / (busy + idle)),
    topFunctions: entries(fn, top),
    byArea: entries(area, 12),
    ownInclusive: entries(inclusive, top),
    ...(focus.length ? { focused: entries(focusedUs, focus.length) } : {}),
  };
}

function shortUrl(url: string, root: string): string {
  if (!url) return '';
  if (url.startsWith('file://')) return relative(root, new URL(url).pathname);
  return url;
}

/** A package, a directory of netpin's own code, a Node subsystem, or V8 itself. */
function areaOf(functionName: string, where: string): string {
  if (!where) return `V8/native ${functionName}`; // (garbage collector), (program), native builtins
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(where);
  if (nm) return `npm ${nm[1]}`;
  if (where.startsWith('node:')) {
    const parts = where.slice(5).split('/');
    return `node ${parts[0] === 'internal' ? parts.slice(0, 2).join('/') : parts[0]}`;
  }
  const own = /^dist\/(src\/[^/]+)/.exec(where);
  return own ? `netpin ${own[1]}` : where;
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
