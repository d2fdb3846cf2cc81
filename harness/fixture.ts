// The setup most end-to-end files share: a control plane with netpin's CRDs, the namespaces and
// IPPools a file names, and one netpin process behind the chart's webhooks. A file states what it
// needs; the order (CRDs, namespaces, pools, what exists before netpin, netpin, webhooks) is here.
import { applyCrds, clients, createNamespace, createPool, registerWebhooks, type Clients } from './cluster.js';
import { startControlPlane, type ControlPlane, type StartOptions } from './controlplane.js';
import { startNetpin, type Netpin, type NetpinOptions } from './netpin.js';

export interface FixtureOptions {
  controlPlane?: StartOptions;
  /** Namespace name -> its labels. */
  namespaces?: Record<string, Record<string, string>>;
  /** IPPool name -> its spec, created in this order. */
  pools?: Record<string, Record<string, unknown>>;
  /** What exists before netpin starts (other CRDs and their objects, pods from before netpin). */
  beforeNetpin?: (c: Clients, cp: ControlPlane) => Promise<void>;
  /** netpin's options beyond the kubeconfig. */
  netpin?: Omit<NetpinOptions, 'kubeconfig'>;
}

export interface Fixture {
  cp: ControlPlane;
  c: Clients;
  /** The netpin serving now. */
  netpin: Netpin;
  /** Another netpin in place of the running one, with these options, behind webhooks registered anew. */
  restartNetpin(o?: Omit<NetpinOptions, 'kubeconfig'>): Promise<Netpin>;
  /** Stops netpin and the control plane. */
  stop(): Promise<void>;
}

/** Starts it all; on a failure, stops what it started before throwing. */
export async function startFixture(o: FixtureOptions = {}): Promise<Fixture> {
  const cp = await startControlPlane(o.controlPlane);
  let netpin: Netpin | undefined;
  const stop = async () => {
    await netpin?.stop();
    await cp.stop();
  };
  try {
    const c = clients(cp.kubeconfigPath);
    await applyCrds(c);
    for (const [name, labels] of Object.entries(o.namespaces ?? {})) await createNamespace(c, name, labels);
    for (const [name, spec] of Object.entries(o.pools ?? {})) await createPool(c, name, spec);
    await o.beforeNetpin?.(c, cp);
    netpin = await startNetpin({ kubeconfig: cp.kubeconfigPath, ...o.netpin });
    await registerWebhooks(c, netpin, cp.binDir);
    const fixture: Fixture = {
      cp,
      c,
      netpin,
      async restartNetpin(options = {}) {
        await netpin?.stop();
        netpin = await startNetpin({ kubeconfig: cp.kubeconfigPath, ...options });
        fixture.netpin = netpin;
        await c.admission.deleteMutatingWebhookConfiguration({ name: 'netpin' });
        await c.admission.deleteValidatingWebhookConfiguration({ name: 'netpin' });
        await registerWebhooks(c, netpin, cp.binDir);
        return netpin;
      },
      stop,
    };
    return fixture;
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}
