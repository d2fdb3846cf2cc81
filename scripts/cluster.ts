// npm run cluster [-- --cni <calico|kube-ovn|antrea|cilium|netpin-ipam>]: a local cluster to try netpin by
// hand, like kind: the test control plane and the test node (harness/), netpin installed
// by helm from its own image, an opted-in namespace and an example IPPool. It prints the exports
// that make `kubectl` talk to it, stays in the foreground, and on SIGINT/SIGTERM stops everything
// and undoes every change to the host. See docs/local-cluster.md.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { clients, createNamespace, createPool } from '../harness/cluster.js';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.js';
import { installNetpin, netpinImage, removeNetpinImage, type Installed } from '../harness/install.js';
import { APP_IMAGE, nodeControlPlaneOptions, POOL_SUBNETS, startNode, type Node } from '../harness/node.js';

const CNIS = ['netpin-ipam', 'calico', 'kube-ovn', 'antrea', 'cilium'] as const;
type Cni = (typeof CNIS)[number];
const USAGE = `usage: npm run cluster [-- --cni <${CNIS.join('|')}>]`;
const NAMESPACE = 'demo';
const POOL = 'demo';
/** In the node bridge's subnet, so that with netpin-ipam (the default) pods run with netpin's addresses. */
const POOL_CIDR = '10.244.60.0/24';
/** Set for the worker process, which runs the cluster; the process a user starts only supervises it. */
const WORKER_ENV = 'NETPIN_CLUSTER_WORKER';
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

class Interrupted extends Error {}

function say(line: string): void {
  process.stderr.write(`cluster: ${line}\n`);
}

function parseArgs(argv: string[]): Cni {
  // The node's own CNI chain reads netpin's addresses: `kubectl get pod -o wide` shows them. With another
  // --cni, netpin writes that CNI's annotations, which no plugin on this node reads.
  let cni: string = 'netpin-ipam';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-h' || a === '--help') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    if (a === '--cni' && i + 1 < argv.length) cni = argv[++i]!;
    else if (a.startsWith('--cni=')) cni = a.slice('--cni='.length);
    else usage(`unexpected argument "${a}"`);
  }
  if (!(CNIS as readonly string[]).includes(cni)) usage(`unknown CNI "${cni}"`);
  return cni as Cni;
}

/**
 * One line for an error whose message may run on: its first line, unless that only introduces
 * what follows (helm's "helm install ... failed (1):", execFile's "Command failed: ..."), then
 * the first line of what follows.
 */
function reason(err: unknown): string {
  const lines = (err instanceof Error ? err.message : String(err))
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  const first = lines[0] ?? 'unknown error';
  // Node's execFile puts the command first and what it wrote to stderr after.
  const header = first.endsWith(':') || first.startsWith('Command failed:');
  return header && lines[1] !== undefined ? lines[1] : first;
}

function usage(why: string): never {
  process.stderr.write(`cluster: ${why}\n${USAGE}\n`);
  process.exit(2);
}

/**
 * The process a user starts. The cluster runs in a worker in its own session, so that a
 * terminal's Ctrl-C (sent to the whole foreground process group) reaches only this process and
 * not etcd, kubelet or containerd, which must stay up until the worker stops them in order:
 * kubelet tears the pods down, then the node, then the control plane.
 */
function supervise(): void {
  const child = spawn(
    process.execPath,
    [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    {
      detached: true,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, [WORKER_ENV]: '1' },
    },
  );
  for (const sig of STOP_SIGNALS) process.on(sig, () => child.kill(sig));
  // `npm run cluster` runs this under `sh -c`: a SIGTERM to npm ends npm and sh but never
  // reaches us. Orphaned, nobody is left to stop the cluster, so stop it now.
  const parent = process.ppid;
  const orphaned = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(orphaned);
    say('the command that started this one is gone');
    child.kill('SIGTERM');
  }, 1_000);
  orphaned.unref();
  child.on('error', (err) => {
    say(`could not start: ${err.message}`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    if (signal) {
      // Killed outright, the worker could not stop its daemons: they are in its process group.
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // none left
      }
      say(
        `the cluster process was killed by ${signal}; the next start of a test node undoes the host changes it recorded in /run/netpin-node`,
      );
    }
    process.exit(code ?? 1);
  });
}

/** A stop asked for by a signal or by the supervisor's going; the steps check it between them. */
class StopRequest {
  reason: string | undefined;
  private wake: () => void = () => undefined;
  readonly requested = new Promise<void>((r) => (this.wake = r));

  constructor() {
    for (const sig of STOP_SIGNALS) process.on(sig, () => this.request(sig));
    // The supervisor gone (killed outright) leaves nobody to stop us: stop now.
    process.on('disconnect', () => this.request('supervisor gone'));
  }

  private request(why: string): void {
    if (this.reason !== undefined) {
      say(`${why} again: still stopping, please wait (nothing may be left behind)`);
      return;
    }
    this.reason = why;
    say(`${why}: stopping everything`);
    this.wake();
  }

  check(): void {
    if (this.reason !== undefined) throw new Interrupted();
  }
}

/** What has been started so far, and what is being started now. */
interface Cluster {
  cp?: ControlPlane;
  node?: Node;
  netpin?: Installed;
  step: string;
  took(): string;
}

/** Starts the control plane, the node, netpin and the demo objects, one step at a time. */
async function bringUp(cni: Cni, stop: StopRequest, k: Cluster): Promise<void> {
  k.step = 'starting the control plane';
  say(`${k.step} (the first run builds it from Go modules, for several minutes)`);
  const cp = (k.cp = await startControlPlane(nodeControlPlaneOptions()));
  stop.check();
  k.step = 'starting the node';
  say(`control plane up at ${cp.url} (${k.took()}); ${k.step} (the first run builds it too)`);
  // netpin-ipam fails a pod that another dialect addressed (no netpin.io/ipam): host-local alone then.
  const node = (k.node = await startNode(cp, { ipam: cni === 'netpin-ipam' ? 'netpin-ipam' : 'host-local' }));
  stop.check();
  k.step = "building netpin's image (npm run image)";
  say(`node ${node.name} Ready (${k.took()}); ${k.step}`);
  await netpinImage(); // installNetpin() below imports this same archive
  stop.check();
  k.step = `installing netpin with --cni ${cni}`;
  say(`image built (${k.took()}); ${k.step} by helm`);
  k.netpin = await installNetpin(cp, node, { cni });
  stop.check();
  k.step = `creating namespace ${NAMESPACE} and IPPool ${POOL}`;
  const c = clients(cp.kubeconfigPath);
  await createNamespace(c, NAMESPACE, { 'netpin.io/enabled': 'true' });
  // Every dialect's name for the pool (Kube-OVN and Antrea refuse a pool that names none), and the
  // bridge's subnet and gateway for netpin-ipam.
  await createPool(c, POOL, {
    cidr: POOL_CIDR,
    subnets: POOL_SUBNETS,
    cni: { kubeOvn: { subnet: POOL }, antrea: { pool: POOL }, cilium: { pool: POOL } },
  });
  stop.check();
  say(`netpin Ready (${k.took()})`);
}

function printExports(cni: Cni, cp: ControlPlane, node: Node): void {
  process.stdout.write(
    [
      `# netpin (--cni ${cni}) on a local node; namespace ${NAMESPACE} is opted in, IPPool ${POOL} is ${POOL_CIDR}. In another shell:`,
      `export KUBECONFIG=${cp.kubeconfigPath}`,
      `export PATH=${node.binDir}:$PATH`,
      '# then try a pod that asks netpin for an address from the pool and a 10 Mbit/s egress rate:',
      `kubectl -n ${NAMESPACE} run web --image=${APP_IMAGE} --image-pull-policy=Never --annotations=netpin.io/pool=${POOL} --annotations=netpin.io/egress-rate=10M`,
      `kubectl -n ${NAMESPACE} get pod web -o wide   # with netpin-ipam, the IP is netpin.io/allocated`,
      `kubectl -n ${NAMESPACE} get pod web -o jsonpath='{.metadata.annotations}{"\\n"}'`,
      '# Ctrl-C here stops the cluster and undoes every change to this machine.',
      '',
    ].join('\n'),
  );
}

/** Whatever started is stopped, in reverse order; each step runs even if one before failed. Returns what was left. */
async function tearDown(k: Cluster): Promise<string[]> {
  const left: string[] = [];
  const undo = async (what: string, fn: () => Promise<void> | void): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      left.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  const { cp, node, netpin } = k;
  // No helm uninstall: the release goes with the control plane's etcd, and uninstalling would
  // only wait for netpin's pods to terminate.
  if (netpin) await undo('helm', () => netpin.discard());
  if (node) await undo('node', () => node.stop());
  if (cp) await undo('control plane', () => cp.stop());
  await undo('image', () => removeNetpinImage());
  return left;
}

async function work(cni: Cni): Promise<number> {
  const stop = new StopRequest();
  const t0 = Date.now();
  const k: Cluster = { step: '', took: () => `${((Date.now() - t0) / 1000).toFixed(1)} s` };
  let failure: string | undefined;
  let ready = false;
  try {
    await bringUp(cni, stop, k);
    printExports(cni, k.cp!, k.node!);
    ready = true;
    await stop.requested;
  } catch (err) {
    if (!(err instanceof Interrupted) && stop.reason === undefined) {
      failure = `${k.step} failed: ${reason(err)}`;
      // The whole story (log tails, helm's output) on request; the last line stays the one that says what failed.
      if (process.env.NETPIN_CLUSTER_DEBUG)
        process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    }
  }

  const left = await tearDown(k);
  if (left.length > 0) {
    process.stderr.write(`${left.join('\n')}\n`);
    say(`stopping left something behind (see above)${failure ? `; before that, ${failure}` : ''}`);
    return 1;
  }
  if (failure !== undefined) {
    say(failure);
    return 1;
  }
  if (!ready) {
    // Stopped before the cluster was up: not a success, but nothing is left behind.
    say(`stopped while ${k.step}; nothing is left behind`);
    return 130;
  }
  say(`stopped; nothing is left behind (${k.took()} in all)`);
  return 0;
}

if (process.env[WORKER_ENV] === '1') {
  const cni = parseArgs(process.argv.slice(2));
  work(cni).then(
    (code) => process.exit(code),
    (err: unknown) => {
      say(`unexpected: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
} else {
  parseArgs(process.argv.slice(2));
  supervise();
}
