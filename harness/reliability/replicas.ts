// netpin replicas behind the loopback Service, and the reconciler's Lease they compete for.
import * as os from 'node:os';
import * as path from 'node:path';
import { waitFor, type Clients } from '../cluster.js';
import { sleep } from '../controlplane.js';
import { startNetpin, type Netpin } from '../netpin.js';
import { GRACE_SECONDS, LEASE, type Env } from './env.js';
import { writePlainFiles } from './pki.js';
import { allocate, podReview } from './reviews.js';

interface ReplicaOptions {
  count: number;
  grace?: number;
  /** Cert dir of replica i; default: a dir of plain files with env.serving. */
  certDir?: (i: number) => string;
  launcher?: (i: number) => string[] | undefined;
}

/** netpin replicas behind the Service, each restarted on its own port and cert dir. */
export class Replicas {
  readonly list: Netpin[] = [];
  private readonly dirs: string[] = [];
  constructor(
    private readonly env: Env,
    private readonly tag: string,
    private readonly o: ReplicaOptions,
  ) {}

  /** Starts the replicas; `leader` first, alone, until it holds the reconciler's Lease. */
  async start(leader?: number): Promise<void> {
    for (let i = 0; i < this.o.count; i++) {
      let dir = this.o.certDir?.(i);
      if (!dir) {
        dir = path.join(this.env.dir, `${this.tag}-${i}`);
        await writePlainFiles(dir, this.env.serving, this.env.pki.caPem);
      }
      this.dirs.push(dir);
    }
    if (leader !== undefined) {
      const first = await this.launch(leader, 0, this.dirs[leader]!);
      const identity = `${os.hostname()}-${first.child.pid}`;
      await waitFor(
        `replica ${leader + 1} to hold the Lease`,
        async () => (await readLease(this.env.c)).holder === identity,
        (LEASE.durationSeconds + 2 * LEASE.renewSeconds) * 1000,
        200,
      );
      const rest = await Promise.all(
        this.dirs.map((certDir, i) => (i === leader ? first : this.launch(i, 0, certDir))),
      );
      this.list.push(...rest);
    } else {
      this.list.push(...(await Promise.all(this.dirs.map((certDir, i) => this.launch(i, 0, certDir)))));
    }
    this.env.service.setBackends(this.list.map((n) => n.port));
  }

  private launch(i: number, port: number, certDir: string): Promise<Netpin> {
    return startNetpin({
      kubeconfig: this.env.cp.kubeconfigPath,
      port,
      certDir,
      claimGraceSeconds: this.o.grace ?? GRACE_SECONDS,
      leaseNamespace: LEASE.namespace,
      launcher: this.o.launcher?.(i),
    });
  }

  identity(i: number): string {
    return `${os.hostname()}-${this.list[i]!.child.pid}`;
  }

  /** SIGKILL; the Service stops sending it connections a second later, as the endpoints controller would. */
  async kill(i: number): Promise<void> {
    await this.list[i]!.kill();
    await sleep(1_000);
    this.env.service.setBackends(this.list.filter((_, j) => j !== i).map((n) => n.port));
  }

  async restart(i: number): Promise<void> {
    const old = this.list[i]!;
    this.list[i] = await this.launch(i, old.port, this.dirs[i]!);
    this.env.service.setBackends(this.list.map((n) => n.port));
  }

  /** Waits until every replica's watch has the IPPool: a dry-run review is allowed on each. */
  async poolReady(namespace: string, pool: string): Promise<void> {
    await Promise.all(
      this.list.map((n, i) =>
        waitFor(
          `replica ${i + 1} to know IPPool ${pool}`,
          async () => {
            const body = podReview(namespace, pool, 'probe', `probe-${i}-${Date.now()}`);
            (body.request as { dryRun?: boolean }).dryRun = true;
            return (await allocate(n, body)).ip !== undefined;
          },
          30_000,
          100,
        ),
      ),
    );
  }

  async stop(): Promise<void> {
    this.env.service.setBackends([]);
    await Promise.all(this.list.map((n) => n.stop()));
  }
}

interface LeaseView {
  holder?: string;
  renewedAt: number;
}

export async function readLease(c: Clients): Promise<LeaseView> {
  const l = (await c.custom.getNamespacedCustomObject({
    group: 'coordination.k8s.io',
    version: 'v1',
    plural: 'leases',
    namespace: LEASE.namespace,
    name: LEASE.name,
  })) as { spec?: { holderIdentity?: string; renewTime?: string } };
  return { holder: l.spec?.holderIdentity, renewedAt: l.spec?.renewTime ? new Date(l.spec.renewTime).getTime() : 0 };
}
