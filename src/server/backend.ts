import type { Logger } from 'pino';
import type { AdmissionDeps } from '../admission/context.js';
import { dialectFor } from '../cni/index.js';
import type { ApiServerLiveness } from '../cluster/deadline.js';
import { StaticClusterView } from '../cluster/view.js';
import { loadPoolsFile } from '../config/pools-file.js';
import { Allocator } from '../ipam/allocator.js';
import type { Ledger } from '../ipam/ledger.js';
import { MemoryLedger } from '../ipam/memory-ledger.js';
import { Metrics } from '../transport/metrics.js';
import type { ServeOptions } from './options.js';

/**
 * Where admission finds its ledger and cluster, built with everything that reports to its metrics:
 * in memory, or in the API server (kube-backend.ts).
 */
export interface Backend {
  deps: AdmissionDeps;
  ledger: Ledger;
  metrics: Metrics;
  /** Whether the API server answers, for admission deadlines; none without a cluster. */
  apiServer?: ApiServerLiveness;
  /** Why the backend is not ready; empty when it is. */
  readiness: () => string[];
  stop(): Promise<void>;
}

/** `--ledger memory`: pools and namespaces from a file; claims last as long as the process. */
export async function memoryBackend(opts: ServeOptions, log: Logger): Promise<Backend> {
  const file = await loadPoolsFile(opts.pools!);
  const ledger = new MemoryLedger(file.pools);
  const cluster = new StaticClusterView();
  for (const [name, labels] of file.namespaces) cluster.setNamespace(name, labels, file.defaults.get(name));
  log.info(
    { pools: file.pools.map((p) => p.name), namespaces: [...file.namespaces.keys()] },
    'in-memory ledger: claims last as long as this process',
  );
  const deps: AdmissionDeps = {
    dialect: dialectFor(opts.cni),
    allocator: new Allocator(ledger),
    cluster,
    releaseOnDelete: true,
    log,
  };
  return { deps, ledger, metrics: new Metrics(ledger.index), readiness: () => [], stop: async () => {} };
}
