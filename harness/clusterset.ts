// A netpin ClusterSet on real control planes, for the end-to-end tests and `npm run clusterset`: a
// broker (an API server with netpin's CRDs, the namespace netpin-clusterset and the shared IPPool) and
// members, each a control plane of its own with netpin's CRDs, an opted-in namespace and its own
// `netpin serve --ledger kube` joined to the broker, registered as the member's webhooks. There is no
// node: pods stay Pending, and what netpin admitted shows in their annotations.
import { join } from 'node:path';
import { CoordinationV1Api } from '@kubernetes/client-node';
import { MEMBERS_NAMESPACE } from '../src/cluster/clusterset/membership.js';
import { applyCrds, clients, createNamespace, createPool, registerWebhooks, waitFor, type Clients } from './cluster.js';
import { startControlPlane, type ControlPlane } from './controlplane.js';
import { startNetpin, type Netpin } from './netpin.js';

interface ClusterSetBroker {
  cp: ControlPlane;
  c: Clients;
  /** The broker's admin kubeconfig: the members' netpins use it too. */
  kubeconfigPath: string;
}

export interface ClusterSetMember<Id extends string = string> {
  id: Id;
  cp: ControlPlane;
  c: Clients;
  /** The member's admin kubeconfig. */
  kubeconfigPath: string;
  /** The member's netpin, joined to the broker under `id`. */
  netpin: Netpin;
  /** Stops its netpin, then its control plane. */
  stop(): Promise<void>;
}

export interface ClusterSet<Id extends string = string> {
  broker: ClusterSetBroker;
  members: Record<Id, ClusterSetMember<Id>>;
  /** The flags that make a `netpin serve` the member `id` of this set (with this set's leave grace). */
  joinArgs(id: string): string[];
  /** Stops every netpin, then every member's control plane, then the broker; each step runs even if one before failed. */
  stop(): Promise<void>;
}

export interface ClusterSetOptions<Id extends string> {
  /** The members' cluster ids (DNS labels). */
  members: readonly Id[];
  /** The broker's IPPool that the members share (default `shared`). */
  sharedPool?: string;
  sharedCidr: string;
  /** Created in each member, labelled netpin.io/enabled=true. */
  namespace: string;
  /** Each netpin's --claim-grace (default: startNetpin's). */
  claimGraceSeconds?: number;
  /** Each netpin's --clusterset-leave-grace (default: netpin's own). */
  leaveGraceSeconds?: number;
  /** More for each member before its netpin starts (its control plane has the CRDs and the namespace by then). */
  prepareMember?(m: { id: Id; index: number; cp: ControlPlane; c: Clients }): Promise<void>;
  /** Told of each step, for a human watching (`npm run clusterset`). */
  progress?(line: string): void;
  /** Checked between steps: once aborted, what started is stopped and startClusterSet rejects. */
  signal?: AbortSignal;
}

/**
 * Starts the broker and the members' control planes at once, then a netpin per member joined to the
 * broker, and resolves when every member's Lease is in the broker. On a failure, or once `signal` is
 * aborted, whatever started is stopped before it rejects.
 */
export async function startClusterSet<Id extends string>(opts: ClusterSetOptions<Id>): Promise<ClusterSet<Id>> {
  const say = opts.progress ?? (() => undefined);
  const check = () => opts.signal?.throwIfAborted();
  const sharedPool = opts.sharedPool ?? 'shared';
  // Recorded as soon as each starts, so that a failure anywhere stops them all.
  let broker: ClusterSetBroker | undefined;
  const cps = new Map<Id, ControlPlane>();
  const cs = new Map<Id, Clients>();
  const netpins = new Map<Id, Netpin>();
  const joinArgs = (id: string): string[] => [
    '--clusterset-kubeconfig',
    broker!.kubeconfigPath,
    '--cluster-id',
    id,
    ...(opts.leaveGraceSeconds === undefined ? [] : ['--clusterset-leave-grace', String(opts.leaveGraceSeconds)]),
  ];

  const stopMember = async (id: Id): Promise<void> => {
    try {
      await netpins.get(id)?.stop();
    } finally {
      await cps.get(id)?.stop();
    }
  };
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      const results = await Promise.allSettled(opts.members.map(stopMember));
      results.push(...(await Promise.allSettled([broker?.cp.stop()])));
      const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
      if (errors.length > 0) throw new AggregateError(errors, `stopping the ClusterSet: ${String(errors[0])}`);
    })());

  /** Rejects with the first failure once every step has settled: none is left running unrecorded. */
  const allOf = async (steps: Array<Promise<void>>): Promise<void> => {
    const failed = (await Promise.allSettled(steps)).find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  };
  const startBroker = async (): Promise<void> => {
    // The broker needs only its API server: its claims are judged by the members, never by controllers.
    const cp = await startControlPlane({ controllers: ['namespace-controller'], webhookClientCert: false });
    broker = { cp, c: clients(cp.kubeconfigPath), kubeconfigPath: cp.kubeconfigPath };
  };
  const startMemberControlPlane = async (id: Id, index: number): Promise<void> => {
    const cp = await startControlPlane();
    cps.set(id, cp);
    check();
    const c = clients(cp.kubeconfigPath);
    cs.set(id, c);
    await applyCrds(c);
    await createNamespace(c, opts.namespace, { 'netpin.io/enabled': 'true' });
    await opts.prepareMember?.({ id, index, cp, c });
  };
  const startMemberNetpin = async (id: Id): Promise<void> => {
    const cp = cps.get(id)!;
    const netpin = await startNetpin({
      kubeconfig: cp.kubeconfigPath,
      // In the control plane's directory, so that they go with it.
      certDir: join(cp.dir, 'netpin-certs'),
      ...(opts.claimGraceSeconds === undefined ? {} : { claimGraceSeconds: opts.claimGraceSeconds }),
      extraArgs: joinArgs(id),
    });
    netpins.set(id, netpin);
    await registerWebhooks(cs.get(id)!, netpin, cp.binDir);
  };

  try {
    const started = performance.now();
    say(`starting the broker and the control planes of ${opts.members.join(', ')}`);
    await allOf([startBroker(), ...opts.members.map(startMemberControlPlane)]);
    check();
    const b = broker!;
    await applyCrds(b.c);
    await createNamespace(b.c, MEMBERS_NAMESPACE);
    await createPool(b.c, sharedPool, { cidr: opts.sharedCidr });
    say(
      `control planes up in ${seconds(started)}: broker at ${b.cp.url} (IPPool ${sharedPool}, ${opts.sharedCidr}), ` +
        opts.members.map((id) => `${id} at ${cps.get(id)!.url}`).join(', '),
    );
    check();

    await allOf(opts.members.map(startMemberNetpin));
    check();
    // Joined: a Lease per member in the broker.
    const leases = b.c.kc.makeApiClient(CoordinationV1Api);
    await waitFor(`the Leases of ${opts.members.join(', ')} in the broker`, async () => {
      const names = new Set(
        (await leases.listNamespacedLease({ namespace: MEMBERS_NAMESPACE })).items.map((l) => l.metadata?.name),
      );
      return opts.members.every((id) => names.has(id));
    });
    check();
    say(`netpins of ${opts.members.join(', ')} joined the broker (${seconds(started)} in all)`);

    const members = {} as Record<Id, ClusterSetMember<Id>>;
    for (const id of opts.members) {
      const cp = cps.get(id)!;
      members[id] = {
        id,
        cp,
        c: cs.get(id)!,
        kubeconfigPath: cp.kubeconfigPath,
        netpin: netpins.get(id)!,
        stop: () => stopMember(id),
      };
    }
    return { broker: b, members, joinArgs, stop };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}

function seconds(since: number): string {
  return `${((performance.now() - since) / 1000).toFixed(1)} s`;
}
