// `npm run chaos`: issue 10's reliability scenarios at full size, and docs/reliability.md from them.
// Scenarios 1, 2, 3, 5 (and 7, measured in 1) are harness/reliability/, which the test
// command runs at its light size; 4 is test/e2e/outage.test.ts and 6 is test/property/, run by vitest.
// Flags (after `npm run chaos --`):
//   --parts 1,2,3,4,5,6     which scenarios (default: all)
//   --size full|light       scenario sizes (default full)
//   --property-scale 23     property cases as a multiple of the test command's (4 420 × 23 ≥ 100 000)
//   --no-doc                write bench/results/chaos-*.json only, not docs/reliability.md
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, stripVTControlCharacters } from 'node:util';
import { createMemoryCgroup } from '../harness/memory.js';
import {
  CHART_MEMORY_LIMIT,
  certificateRotation,
  FULL,
  leaderFailover,
  LIGHT,
  replicasKilled,
  setUp,
  statefulSetChurn,
  tearDown,
  type Env,
  type Report,
} from '../harness/reliability/scenarios.js';
import { toMarkdown, type ChaosResult } from './chaos-report.js';
import { repoPath } from '../harness/controlplane.js';
import { runEnvironment } from './proc.js';

const PARTS = ['1', '2', '3', '4', '5', '6'] as const;
const { values } = parseArgs({
  options: {
    parts: { type: 'string', default: PARTS.join(',') },
    size: { type: 'string', default: 'full' },
    'property-scale': { type: 'string', default: '23' },
    'no-doc': { type: 'boolean', default: false },
  },
});
const parts = values.parts.split(',').map((p) => p.trim());
for (const p of parts)
  if (!(PARTS as readonly string[]).includes(p)) throw new Error(`unknown part ${p}; choose from ${PARTS.join(', ')}`);
if (values.size !== 'full' && values.size !== 'light') throw new Error('--size is full or light');
const size = values.size === 'full' ? FULL : LIGHT;
const root = repoPath();
const log = (line: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${line}`);

const started = performance.now();
const result: ChaosResult = {
  startedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  command: `npm run chaos${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
  size: size.name,
  wallSeconds: 0,
  environment: runEnvironment(root),
  reports: [],
  heap: [],
  errors: [],
};

/** A part that throws is recorded as a report that lost its run, so the other parts' figures are kept. */
async function part(id: string, title: string, run: () => Promise<Report>): Promise<void> {
  if (!parts.includes(id)) return;
  const t0 = performance.now();
  log(`${id}. ${title}: start`);
  try {
    const r = await run();
    result.reports.push(r);
    log(`${id}. ${title}: ${r.lost.length === 0 ? 'nothing lost' : `${r.lost.length} LOST`} in ${r.seconds} s`);
    for (const l of r.lost.slice(0, 10)) log(`   lost: ${l}`);
  } catch (e) {
    const message = e instanceof Error ? (e.stack ?? e.message) : String(e);
    result.errors.push(`${id}. ${title}: ${message}`);
    result.reports.push({
      id,
      title,
      size: size.name,
      seconds: Math.round((performance.now() - t0) / 1000),
      held: [],
      lost: [`the scenario failed: ${message.split('\n')[0]}`],
      figures: {},
      notes: [],
    });
    log(`${id}. ${title}: FAILED: ${message}`);
  }
}

/** Runs vitest on some files; resolves with its exit code and output. */
function vitest(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(join(root, 'node_modules/.bin/vitest'), ['run', ...args], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (d: Buffer) => {
      output += d.toString('utf8');
      if (output.length > 4_000_000) output = output.slice(-2_000_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('close', (code) => resolve({ code: code ?? 1, output }));
  });
}

const lastLines = (s: string, n: number) => stripVTControlCharacters(s).trim().split('\n').slice(-n).join('\n');

// Node's heap under memory limits, for scenario 7.
for (const [label, bytes] of [
  ['256 MiB', 256 * 2 ** 20],
  ["512 MiB (the chart's default)", CHART_MEMORY_LIMIT],
  ['1 GiB', 2 ** 30],
  ['2 GiB', 2 ** 31],
] as const) {
  const cg = createMemoryCgroup(bytes);
  if (typeof cg === 'string') {
    result.heapNote = `Not measured: ${cg}.`;
    break;
  }
  try {
    const v = await cg.nodeView();
    result.heap.push({
      limit: label,
      heapSizeLimitMiB: Math.round(v.heapSizeLimitBytes / 2 ** 20),
      constrainedMemoryMiB: Math.round(v.constrainedMemoryBytes / 2 ** 20),
    });
  } finally {
    await cg.remove();
  }
}
result.heapNote ??=
  `Node ${process.version} sizes its heap from a cgroup v1 memory limit (libuv's uv_get_constrained_memory, which reads cgroup v2's memory.max the same way): ` +
  "about half the limit, so the container's 512 MiB leaves room for buffers and native memory without --max-old-space-size. " +
  'The image runs Node 24 from gcr.io/distroless/nodejs24-debian12, the same major version and code path. This machine mounts the memory controller as cgroup v1 only, so cgroup v2 was not measured here.';

let env: Env | undefined;
const needsCluster = parts.some((p) => ['1', '2', '3', '5'].includes(p));
try {
  if (needsCluster) env = await setUp(log);
  await part('1', 'Replicas killed mid-run', () => replicasKilled(env!, size, { memoryLimit: true }));
  await part('2', 'StatefulSet churn', () => statefulSetChurn(env!, size));
  await part('3', 'Leader failover', () => leaderFailover(env!, size));
  await part('5', 'Certificate rotation under load', () => certificateRotation(env!, size));
} catch (e) {
  result.errors.push(`control plane: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
} finally {
  await tearDown(env).catch((e: unknown) => result.errors.push(`teardown: ${String(e)}`));
}

await part('4', 'The API server goes away', async () => {
  const t0 = performance.now();
  // Full size: each outage lasts 20 s, admissions going on throughout.
  const outageSeconds = size.name === 'full' ? 20 : 0;
  const { code, output } = await vitest(['--project', 'e2e', 'test/e2e/outage.test.ts'], {
    NETPIN_OUTAGE_SECONDS: String(outageSeconds),
  });
  const figures = [...stripVTControlCharacters(output).matchAll(/netpin, API server (frozen|stopped): (.*)$/gm)];
  return {
    id: '4',
    title: 'The API server goes away',
    size: size.name,
    seconds: Math.round((performance.now() - t0) / 1000),
    held:
      code === 0
        ? [
            'Allocating admissions answered in band within 2 s while kube-apiserver was frozen (SIGSTOP) and while it was stopped; /readyz turned false and came back; claims equal the pods after each outage, and a claim whose pod the API server never created was released after the grace period.',
            ...figures.map((m) => `API server ${m[1]}: ${m[2]}.`),
          ]
        : [],
    lost: code === 0 ? [] : [`test/e2e/outage.test.ts failed:\n${lastLines(output, 30)}`],
    figures: Object.fromEntries(figures.map((m) => [`API server ${m[1]}`, m[2]!])),
    notes: [
      outageSeconds
        ? `Scenario 4 is test/e2e/outage.test.ts with NETPIN_OUTAGE_SECONDS=${outageSeconds}: each outage lasts at least ${outageSeconds} s, with a wave of 4 allocating admissions every half second or so throughout.`
        : 'Scenario 4 is test/e2e/outage.test.ts as the test command runs it: each outage lasts as long as its few waves of admissions take (a few seconds).',
    ],
  };
});

await part('6', 'Hostile input (property-based)', async () => {
  const t0 = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'netpin-chaos-'));
  const tally = join(dir, 'tally');
  try {
    // The test command's per-test timeout is for its own counts; at this scale a property runs for minutes.
    const { code, output } = await vitest(
      ['--project', 'unit', 'test/property', '--testTimeout', String(60 * 60_000)],
      {
        NETPIN_PROPERTY_SCALE: values['property-scale'],
        NETPIN_PROPERTY_TALLY: tally,
      },
    );
    const counts = readFileSync(tally, 'utf8').trim().split('\n').map(Number);
    const cases = counts.reduce((a, b) => a + b, 0);
    const seconds = Math.round((performance.now() - t0) / 1000);
    return {
      id: '6',
      title: 'Hostile input (property-based)',
      size: size.name,
      seconds,
      held:
        code === 0
          ? [
              `${cases} cases over ${counts.length} properties (fast-check), all passed: intent parsers, the review decoder, and the whole admission path over every CNI.`,
            ]
          : [],
      lost: code === 0 ? [] : [`test/property failed:\n${lastLines(output, 40)}`],
      figures: {
        properties: counts.length,
        cases,
        'scale over the test command': Number(values['property-scale']),
        seconds,
      },
      notes: [
        'A case of the admission-path properties is a sequence of up to 12 reviews (pods, workloads, updates, deletes, scale) against one app, checked after every step.',
      ],
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

result.wallSeconds = Math.round((performance.now() - started) / 1000);
result.environment.loadAverage.end = loadavg();
const dir = join(root, 'bench/results');
mkdirSync(dir, { recursive: true });
const stamp = result.startedAt.replace(/:/g, '-');
writeFileSync(join(dir, `chaos-${stamp}.json`), `${JSON.stringify(result, null, 2)}\n`);
if (!values['no-doc']) writeFileSync(join(root, 'docs/reliability.md'), `${toMarkdown(result)}\n`);
const lost = result.reports.reduce((n, r) => n + r.lost.length, 0);
log(
  `wrote bench/results/chaos-${stamp}.json${values['no-doc'] ? '' : ' and docs/reliability.md'} in ${(result.wallSeconds / 60).toFixed(1)} min; ${lost === 0 ? 'nothing lost' : `${lost} LOST`}`,
);
// Explicit: keep-alive agents of the Kubernetes client would hold the process open.
process.exit(lost || result.errors.length ? 1 : 0);
