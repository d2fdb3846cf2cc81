// `npm run bench`: runs the parts in turn and writes bench/results/<timestamp>.json and .md, and
// the same as bench/results/latest.json and .md. Every request goes to 127.0.0.1, and every loop
// ends by count or time. Flags (after `npm run bench --`):
//   --parts admission,ledger,cluster,scale,node   which parts (default: all)
//   --duration 4 --warmup 5            seconds per admission run, measured and warm-up
//   --rounds 3                         admission rounds, every server once per size per round
//   --cluster-rounds 2                 control-plane rounds of each mode per scenario
//   --kcm-qps 1000 | default           kube-controller-manager --kube-api-qps (burst twice that)
//   --scale-claims 50000 --scale-pods 20000   the ledger of the scale part: IPClaims, pinned pods among their owners
//   --scale-requests 3000              allocating reviews per ledger in the scale part
//   --node-pods 200 --node-rounds 1    the node part: N, and rounds of the three ways per case
//   --node-cases deployment,deployments,statefulset   its cases
//   --no-profile                       skip the profiled runs
//   --render FILE.json                 only write FILE.md again from FILE.json (after a change of the report)
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { benchAdmission } from './admission.js';
import { benchCluster } from './cluster.js';
import { benchLedger } from './ledger.js';
import { benchNode, NODE_CASES, type NodeCase } from './node.js';
import { summarizeNode } from './node/summary.js';
import { repoPath } from '../harness/controlplane.js';
import { gitIn, runEnvironment } from './proc.js';
import { evaluateTargets, toMarkdown, type BenchResult } from './report.js';
import { benchScale } from './scale.js';

const PARTS = ['admission', 'ledger', 'cluster', 'scale', 'node'] as const;

const { values } = parseArgs({
  options: {
    parts: { type: 'string', default: PARTS.join(',') },
    // Two review sizes double the admission runs: 4 s measured (6 before) keeps the part near six minutes.
    duration: { type: 'string', default: '4' },
    warmup: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    'cluster-rounds': { type: 'string', default: '2' },
    'kcm-qps': { type: 'string', default: '1000' },
    'scale-claims': { type: 'string', default: '50000' },
    'scale-pods': { type: 'string', default: '20000' },
    'scale-requests': { type: 'string', default: '3000' },
    'node-pods': { type: 'string', default: '200' },
    'node-rounds': { type: 'string', default: '1' },
    'node-cases': { type: 'string', default: NODE_CASES.join(',') },
    'node-claim-grace': { type: 'string', default: '15' },
    'no-profile': { type: 'boolean', default: false },
    render: { type: 'string' },
  },
});

if (values.render) {
  const saved = JSON.parse(readFileSync(values.render, 'utf8')) as BenchResult;
  // The node part's summary is derived from its runs: derived again, as the report now reads it.
  if (saved.node) {
    saved.node.summary = summarizeNode(saved.node.runs);
    saved.targets = evaluateTargets(saved);
  }
  writeFileSync(values.render.replace(/\.json$/, '.md'), `${toMarkdown(saved)}\n`);
  process.exit(0);
}

const parts = values.parts.split(',').map((p) => p.trim());
for (const p of parts)
  if (!(PARTS as readonly string[]).includes(p)) throw new Error(`unknown part ${p}; choose from ${PARTS.join(', ')}`);
const profile = !values['no-profile'];
const root = repoPath();
const log = (line: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${line}`);

const git = (...args: string[]) => gitIn(root, ...args);

/**
 * The compiled code the children run (dist/src), as names, sizes and times: in a shared work tree another
 * build may replace it mid-run, and then the figures would mix two versions of netpin.
 */
function distFingerprint(): string {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.js')) {
        const st = statSync(p);
        out.push(`${p}:${st.size}:${st.mtimeMs}`);
      }
    }
  };
  walk(join(root, 'dist/src'));
  return createHash('sha256').update(out.sort().join('\n')).digest('hex').slice(0, 12);
}

const started = performance.now();
const distAtStart = distFingerprint();
const result: BenchResult = {
  startedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
  wallSeconds: 0,
  environment: runEnvironment(root),
  partSeconds: {},
  targets: [],
  errors: [],
};

async function part(name: string, run: () => Promise<void>): Promise<void> {
  if (!parts.includes(name)) return;
  const t0 = performance.now();
  log(`${name}: start`);
  try {
    await run();
  } catch (e) {
    // One failed part must not lose the others' figures: recorded, and the exit code says so.
    result.errors.push(`${name}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    log(`${name}: FAILED: ${e instanceof Error ? e.message : String(e)}`);
  }
  result.partSeconds[name] = Math.round((performance.now() - t0) / 1000);
  log(`${name}: done in ${result.partSeconds[name]} s`);
}

await part('admission', async () => {
  result.admission = await benchAdmission({
    root,
    connections: [1, 16, 64],
    warmupMs: Number(values.warmup) * 1000,
    durationMs: Number(values.duration) * 1000,
    rounds: Number(values.rounds),
    profileMs: profile ? 4000 : 0,
    log,
  });
});

await part('ledger', async () => {
  result.ledger = await benchLedger();
});

await part('cluster', async () => {
  const qps = values['kcm-qps'];
  result.cluster = await benchCluster({
    root,
    rounds: Number(values['cluster-rounds']),
    deployments: 100,
    replicas: 10,
    pools: 10,
    statefulSetReplicas: 300,
    controllerQps: qps === 'default' ? undefined : { qps: Number(qps), burst: 2 * Number(qps) },
    profile,
    log,
  });
});

await part('scale', async () => {
  result.scale = await benchScale({
    root,
    claims: Number(values['scale-claims']),
    pods: Number(values['scale-pods']),
    requests: Number(values['scale-requests']),
    connections: 16,
    fillConcurrency: 48,
    log,
  });
});

await part('node', async () => {
  const qps = values['kcm-qps'];
  const cases = values['node-cases'].split(',').map((x) => x.trim());
  for (const x of cases)
    if (!(NODE_CASES as readonly string[]).includes(x))
      throw new Error(`unknown node case ${x}; choose from ${NODE_CASES.join(', ')}`);
  result.node = await benchNode({
    root,
    pods: Number(values['node-pods']),
    rounds: Number(values['node-rounds']),
    cases: cases as NodeCase[],
    controllerQps: qps === 'default' ? undefined : { qps: Number(qps), burst: 2 * Number(qps) },
    claimGraceSeconds: Number(values['node-claim-grace']),
    log,
  });
  if (result.node.stoppedEarly) throw new Error(`node part stopped early: ${result.node.stoppedEarly}`);
});

result.wallSeconds = Math.round((performance.now() - started) / 1000);
const commitAtEnd = git('rev-parse', '--short', 'HEAD') || 'unknown';
if (distFingerprint() !== distAtStart || commitAtEnd !== result.environment.commit) {
  result.errors.push(
    `netpin changed during the run (commit ${result.environment.commit} → ${commitAtEnd}, or dist/src rebuilt): the figures mix two versions; run again`,
  );
}
result.environment.loadAverage.end = loadavg();
result.targets = evaluateTargets(result);

const dir = join(root, 'bench/results');
mkdirSync(dir, { recursive: true });
const stamp = result.startedAt.replace(/:/g, '-');
// The latency samples stay out of the file: the summaries are what is kept.
const json = JSON.stringify(
  result,
  (key, value: unknown) => (key === 'samples' || key === 'sample' ? undefined : value),
  2,
);
writeFileSync(join(dir, `${stamp}.json`), `${json}\n`);
writeFileSync(join(dir, `${stamp}.md`), `${toMarkdown(result)}\n`);
copyFileSync(join(dir, `${stamp}.json`), join(dir, 'latest.json'));
copyFileSync(join(dir, `${stamp}.md`), join(dir, 'latest.md'));

for (const t of result.targets)
  log(`${t.met ? 'met    ' : 'MISSED '} ${t.part}: ${t.name}: ${t.value.toFixed(2)} (limit ${t.limit})`);
log(`wrote bench/results/${stamp}.json and .md (and latest.*) in ${(result.wallSeconds / 60).toFixed(1)} min`);
// Explicit: keep-alive agents of the Kubernetes client would hold the process open.
process.exit(result.errors.length ? 1 : 0);
