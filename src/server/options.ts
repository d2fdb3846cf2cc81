import type { CniName } from '../cni/dialect.js';

/** What `netpin serve` is told (cli/args.ts parses it). */
export interface ServeOptions {
  cni: CniName;
  pools?: string;
  host: string;
  port: number;
  certDir: string;
  ledger: 'memory' | 'kube';
  kubeconfig?: string;
  /** Hostnames and IPs for a generated certificate. */
  hosts?: string[];
  /** For --ledger kube: seconds a claim may wait for its pod before the reconciler releases it. */
  claimGraceSeconds: number;
  /** For --ledger kube: seconds an egress address stays claimed after the last pod showing it is gone. */
  egressGraceSeconds: number;
  /** For --ledger kube: IPClaims per list call, when the ledger lists them at start and after a broken watch. */
  claimsPage: number;
  /** Where the reconciler's leader-election Lease lives. */
  leaseNamespace: string;
  logLevel: string;
  /** The cluster's own ranges, kept out of Cilium egress policies (destinations that skip the gateway). */
  egressExcludedCidrs: string[];
  /** --client-ca: the webhook listener requires a client certificate chaining to this PEM bundle. */
  clientCa?: string;
  /** --metrics-listen: /metrics (and the probes) on a listener of their own, and not on the webhook's. */
  metricsListen?: { host: string; port: number };
  /** --clusterset-kubeconfig: this cluster is a member of a ClusterSet, whose broker this kubeconfig reaches. */
  clusterSet?: {
    kubeconfig: string;
    /** --cluster-id: the id where the cluster has no ClusterProperty cluster.clusterset.k8s.io. */
    clusterId?: string;
    /** --clusterset-leave-grace: how long a departed member's claims stay before the others release them. */
    leaveGraceSeconds: number;
  };
}
