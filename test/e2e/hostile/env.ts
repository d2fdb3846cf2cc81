// What the hostile suite's scenarios share: one real control plane, its clients, and the netpin
// behind its webhooks, which a scenario may replace with one of another CNI or other flags.
import { startControlPlane, DEFAULT_CONTROLLERS, type ControlPlane } from '../../../harness/controlplane.js';
import { applyCrds, clients, createNamespace, registerWebhooks, type Clients } from '../../../harness/cluster.js';
import { startNetpin, type Netpin, type NetpinOptions } from '../../../harness/netpin.js';

/** The opt-in label of the chart's webhooks. */
export const OPT_IN = { 'netpin.io/enabled': 'true' };

export type NetpinChoice = Omit<NetpinOptions, 'kubeconfig'>;

export class HostileEnv {
  cp!: ControlPlane;
  c!: Clients;
  private current: Netpin | undefined;
  private choice: NetpinChoice | undefined;

  /** The netpin behind the webhooks now. */
  get netpin(): Netpin {
    if (!this.current) throw new Error('no netpin is running: call use() first');
    return this.current;
  }

  async start(): Promise<void> {
    // The quota controller computes a ResourceQuota's status, which its admission needs.
    this.cp = await startControlPlane({ controllers: [...DEFAULT_CONTROLLERS, 'resourcequota-controller'] });
    this.c = clients(this.cp.kubeconfigPath);
    await applyCrds(this.c);
  }

  /**
   * A netpin with these options behind the webhooks; the running one when it has them already.
   * The ledger is in the API server, so what earlier scenarios claimed stays claimed.
   */
  async use(choice: NetpinChoice = {}): Promise<Netpin> {
    if (this.current && JSON.stringify(choice) === JSON.stringify(this.choice)) return this.current;
    if (this.current) {
      await this.current.stop();
      await this.c.admission.deleteMutatingWebhookConfiguration({ name: 'netpin' });
      await this.c.admission.deleteValidatingWebhookConfiguration({ name: 'netpin' });
    }
    // As docs/security.md asks: reviews only from the API server's client certificate, metrics apart.
    this.current = await startNetpin({
      kubeconfig: this.cp.kubeconfigPath,
      clientAuth: this.cp.webhookClient,
      metricsListen: true,
      ...choice,
    });
    this.choice = choice;
    await registerWebhooks(this.c, this.current, this.cp.binDir);
    return this.current;
  }

  /** A namespace of its own for a scenario, opted in unless told otherwise. */
  async namespace(name: string, labels: Record<string, string> = OPT_IN): Promise<string> {
    await createNamespace(this.c, name, labels);
    return name;
  }

  async stop(): Promise<void> {
    await this.current?.stop();
    await this.cp?.stop();
  }
}
