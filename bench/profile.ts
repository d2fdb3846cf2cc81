// Summaries of V8 CPU profiles (node --cpu-prof): where a server's busy time goes, by function
// and by package, so that a missed target comes with its cause and not a guess.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number; children?: number[] }>;
  samples: number[];
  timeDeltas: number[];
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
}

/** Reads the one .cpuprofile in `dir` (a process writes one at exit) and summarizes it. */
export function summarizeProfileDir(dir: string, root: string, top = 15): ProfileSummary {
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no .cpuprofile in ${dir}`);
  return summarizeProfile(JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile, root, top);
}

export function summarizeProfile(p: CpuProfile, root: string, top = 15): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  // timeDeltas[i] is the time before sample i; attribute it to that sample's node.
  for (let i = 0; i < p.samples.length; i++) selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));

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
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const inclusive = new Map<string, number>();
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
  }

  const entries = (m: Map<string, number>, n: number): ProfileEntry[] =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([name, us]) => ({ name, ms: round(us / 1000), percent: round((100 * us) / busy) }));
  return {
    busyMs: round(busy / 1000),
    idlePercent: round((100 * idle) / (busy + idle)),
    topFunctions: entries(fn, top),
    byArea: entries(area, 12),
    ownInclusive: entries(inclusive, top),
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
