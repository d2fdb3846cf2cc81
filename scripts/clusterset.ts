// npm run clusterset [-- --members a,b,c]: a netpin ClusterSet on this machine, to try by hand: a broker
// and two member clusters (control planes of the harness, without a node), each member with its own
// netpin joined to the broker, IPPool `shared` kept in the broker, namespace `demo` opted in on each
// member. It prints the exports and the commands to try, stays in the foreground, and on
// SIGINT/SIGTERM stops everything and removes the clusters' directories. See docs/clusterset.md.
import * as path from 'node:path';
import { startClusterSet, type ClusterSet } from '../harness/clusterset.js';
import { repoPath } from '../harness/controlplane.js';
import { APP_IMAGE, kubectlBinDir } from '../harness/node.js';

const USAGE = 'usage: npm run clusterset [-- --members <id>,<id>[,<id>...]]';
const NAMESPACE = 'demo';
const POOL = 'shared';
const POOL_CIDR = '10.99.0.0/24';
/** The address the printed commands ask for in two clusters. */
const FIXED_IP = '10.99.0.5';
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
const NUMBERS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];

function say(line: string): void {
  process.stderr.write(`clusterset: ${line}\n`);
}

function usage(why: string): never {
  process.stderr.write(`clusterset: ${why}\n${USAGE}\n`);
  process.exit(2);
}

function parseArgs(argv: string[]): string[] {
  let members = 'a,b';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-h' || a === '--help') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    if (a === '--members' && i + 1 < argv.length) members = argv[++i]!;
    else if (a.startsWith('--members=')) members = a.slice('--members='.length);
    else usage(`unexpected argument "${a}"`);
  }
  const ids = members.split(',').map((id) => id.trim());
  // A cluster id is a DNS label; short ones make short shell variables (KA, KB, ...).
  for (const id of ids) {
    if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(id)) usage(`"${id}" is not a cluster id (a DNS label)`);
    if (id === 'broker') usage('"broker" names the broker (KBROKER); give the member another id');
  }
  if (ids.length < 2) usage('a ClusterSet to try needs at least two members');
  if (new Set(ids).size !== ids.length) usage(`--members names a cluster twice: ${members}`);
  return ids;
}

/** The shell variable that holds a member's kubeconfig: KA for a, KEU_WEST for eu-west. */
const kvar = (id: string) => `K${id.toUpperCase().replaceAll('-', '_')}`;

/** One line for an error whose message may run on (a process's output follows its first line). */
function reason(err: unknown): string {
  const first = (err instanceof Error ? err.message : String(err)).split('\n').find((l) => l.trim().length > 0);
  return first?.trim() ?? 'unknown error';
}

function printExports(set: ClusterSet, kubectlDir: string): void {
  const ids = Object.keys(set.members);
  const [first, second] = ids as [string, string];
  const names = `${ids.slice(0, -1).join(', ')} and ${ids.at(-1)}`;
  const kubeconfigs = ids.map((id) => `${kvar(id)}=${set.members[id]!.kubeconfigPath}`);
  const cli = repoPath('dist/src/cli/main.js');
  const run = (id: string, name: string, annotation: string) =>
    `kubectl --kubeconfig $${kvar(id)} -n ${NAMESPACE} run ${name} --image=${APP_IMAGE} --annotations=${annotation}`;
  process.stdout.write(
    [
      `# a ClusterSet of ${NUMBERS[ids.length] ?? ids.length} clusters, ${names}, sharing IPPool ${POOL} (${POOL_CIDR}) through a broker;`,
      `# namespace ${NAMESPACE} is opted in on each. There is no node: pods stay Pending, netpin's annotations show their addresses. In another shell:`,
      `export ${kubeconfigs.join(' ')} KBROKER=${set.broker.kubeconfigPath}`,
      // kubectl of the clusters' version, and the Node that runs netpin's CLI (npm run puts it first on PATH).
      `export PATH=${kubectlDir}:${path.dirname(process.execPath)}:$PATH`,
      `${run(first, 'web', `netpin.io/ip=${FIXED_IP}`)}`,
      `${run(second, 'web', `netpin.io/ip=${FIXED_IP}`)}   # refused: held in cluster ${first}`,
      `${run(second, 'api', `netpin.io/pool=${POOL}`)}    # a free address of the shared pool`,
      `kubectl --kubeconfig $${kvar(second)} -n ${NAMESPACE} get pod api -o jsonpath='{.metadata.annotations.netpin\\.io/allocated}{"\\n"}'`,
      `kubectl --kubeconfig $KBROKER get ipclaims -o wide   # the shared pool's claims, each naming its cluster`,
      `node ${cli} clusterset status --broker-kubeconfig $KBROKER`,
      '# Ctrl-C here stops the clusters and their netpins, and removes their directories.',
      '',
    ].join('\n'),
  );
}

/** Resolves with why the ClusterSet must stop: a signal, the parent gone, or a member's netpin gone. */
function stopWhen(stop: AbortController): Promise<string> {
  return new Promise((resolve) => {
    const request = (why: string) => {
      if (stop.signal.aborted) {
        say(`${why} again: still stopping, please wait (nothing may be left behind)`);
        return;
      }
      say(`${why}: stopping everything`);
      stop.abort(new Error(why));
      resolve(why);
    };
    for (const sig of STOP_SIGNALS) process.on(sig, () => request(sig));
    // `npm run clusterset` runs this under `sh -c`: a SIGTERM to npm ends npm and sh but never reaches
    // us. Orphaned, nobody is left to stop the clusters, so stop them now.
    const parent = process.ppid;
    const orphaned = setInterval(() => {
      if (process.ppid === parent) return;
      clearInterval(orphaned);
      request('the command that started this one is gone');
    }, 1_000);
    orphaned.unref();
    stop.signal.addEventListener('abort', () => clearInterval(orphaned));
  });
}

async function main(members: string[]): Promise<number> {
  const stop = new AbortController();
  const stopped = stopWhen(stop);
  const t0 = Date.now();
  const took = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
  let step = 'building kubectl';
  let set: ClusterSet | undefined;
  let failure: string | undefined;
  try {
    say(`${step} (the first run builds it from Go modules, for several minutes)`);
    const kubectlDir = await kubectlBinDir();
    stop.signal.throwIfAborted();
    step = 'starting the ClusterSet';
    say(`${step} (the first run builds the control plane from Go modules, for several minutes)`);
    set = await startClusterSet({
      members,
      sharedPool: POOL,
      sharedCidr: POOL_CIDR,
      namespace: NAMESPACE,
      progress: say,
      signal: stop.signal,
    });
    // A member's netpin gone is a ClusterSet that no longer works as printed: stop it all, saying why.
    const netpinGone = new Promise<string>((resolve) => {
      for (const m of Object.values(set!.members)) {
        m.netpin.child.once('exit', (code, signal) => {
          if (stop.signal.aborted) return;
          const tail = m.netpin.output().trimEnd().split('\n').slice(-5).join('\n');
          resolve(`the netpin of cluster ${m.id} exited (${code ?? signal}):\n${tail}`);
        });
      }
    });
    say(`ready (${took()})`);
    printExports(set, kubectlDir);
    step = 'running';
    const why = await Promise.race([stopped.then(() => undefined), netpinGone]);
    if (why !== undefined) {
      failure = why;
      stop.abort(new Error(why));
    }
  } catch (err) {
    if (!stop.signal.aborted) {
      failure = `${step} failed: ${reason(err)}`;
      if (process.env.NETPIN_CLUSTER_DEBUG)
        process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    }
  }

  // startClusterSet stops what it started when it fails; once up, the set is stopped here.
  let left: string | undefined;
  try {
    await set?.stop();
  } catch (err) {
    left = err instanceof AggregateError ? err.errors.map(reason).join('\n') : reason(err);
  }
  if (left !== undefined) {
    process.stderr.write(`${left}\n`);
    say(`stopping left something behind (see above)${failure ? `; before that, ${failure}` : ''}`);
    return 1;
  }
  if (failure !== undefined) {
    say(failure);
    return 1;
  }
  if (step !== 'running') {
    say(`stopped while ${step}; nothing is left behind`);
    return 130;
  }
  say(`stopped; nothing is left behind (${took()} in all)`);
  return 0;
}

main(parseArgs(process.argv.slice(2))).then(
  (code) => process.exit(code),
  (err: unknown) => {
    say(`unexpected: ${reason(err)}`);
    process.exit(1);
  },
);
