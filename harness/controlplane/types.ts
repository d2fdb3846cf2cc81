// The control plane's shape and options, apart from the code that starts it, so that its steps
// (controlplane/) and its users can name them.
export interface ControlPlane {
  /** https://127.0.0.1:PORT of kube-apiserver */
  url: string;
  /** admin kubeconfig (client cert, group system:masters) */
  kubeconfigPath: string;
  /** PEM of the test CA: signs the apiserver serving cert and the admin client cert */
  caPem: string;
  /** per-run temp dir: certs (ca.crt, ca.key, …), logs (*.log), etcd data */
  dir: string;
  binDir: string;
  stop(): Promise<void>;
  /** Sends kube-apiserver a signal: SIGSTOP freezes it as an overload or a partition would, SIGCONT thaws it. */
  signalApiserver(signal: NodeJS.Signals): void;
  /** Stops kube-apiserver (SIGTERM, then SIGKILL after 5 s); etcd and its data stay. */
  stopApiserver(): Promise<void>;
  /** Starts kube-apiserver again, with the same flags and port, and waits until it is ready. */
  startApiserver(): Promise<void>;
  /**
   * The client certificate kube-apiserver presents to admission webhooks that ask for one, and the CA
   * of its own that signs it (pass caPath to netpin as --client-ca); undefined when turned off.
   */
  webhookClient?: WebhookClient;
}

export interface WebhookClient {
  /** PEM bundle of the CA that signs the API server's webhook client certificate (and nothing else). */
  caPath: string;
  caPem: string;
  certPem: string;
  keyPem: string;
}

export interface StartOptions {
  /** kube-controller-manager --controllers (default: statefulset, replicaset, deployment, GC, namespace) */
  controllers?: string[];
  /** per-component start timeout in ms (default 120 s; env NETPIN_CONTROLPLANE_START_TIMEOUT_MS) */
  startTimeoutMs?: number;
  /** extra kube-controller-manager flags, appended last (the benchmarks raise --kube-api-qps/--kube-api-burst) */
  controllerManagerArgs?: string[];
  /** kube-apiserver --authorization-mode (default RBAC; a kubelet needs Node,RBAC) */
  authorizationMode?: string;
  /** extra kube-apiserver flags, appended last (e.g. --enable-aggregator-routing=true) */
  apiserverArgs?: string[];
  /**
   * Issue an apiserver-to-kubelet client certificate (O=system:masters) signed by the test CA
   * and pass it as --kubelet-client-certificate/--kubelet-client-key, so that logs, exec and
   * the kubelet proxy work against a test node (default false).
   */
  kubeletClientCert?: boolean;
  /** More IP addresses the apiserver's serving certificate is valid for (pods on a test node dial it through one). */
  apiserverIPs?: string[];
  /**
   * Give pods service account tokens, as a real cluster does: the ServiceAccount admission
   * plugin, and the controllers that create default service accounts and publish the CA
   * (default false: the tests without a node need neither).
   */
  serviceAccounts?: boolean;
  /**
   * kube-apiserver presents a client certificate to admission webhooks (default true): an
   * AdmissionConfiguration gives the ValidatingAdmissionWebhook and MutatingAdmissionWebhook plugins a
   * kubeConfigFile whose user `*` (any webhook host) has a certificate from a CA of its own. A webhook
   * that asks for no client certificate is not affected.
   */
  webhookClientCert?: boolean;
}
