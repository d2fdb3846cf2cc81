import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Outcome } from '../admission/handler.js';
import type { ClaimIndex } from '../ipam/claim-index.js';

/** Prometheus metrics of one app instance: a registry of its own, so that apps in one process do not collide. */
export class Metrics {
  readonly registry = new Registry();
  private readonly admissions: Counter;
  private readonly latency: Histogram;

  constructor(index: ClaimIndex) {
    collectDefaultMetrics({ register: this.registry, prefix: 'netpin_process_' });
    this.admissions = new Counter({
      name: 'netpin_admissions_total',
      help: 'Admission reviews answered, by endpoint, kind, operation and result',
      labelNames: ['endpoint', 'kind', 'operation', 'result'],
      registers: [this.registry],
    });
    this.latency = new Histogram({
      name: 'netpin_admission_duration_seconds',
      help: 'Time from decoding a review to its answer',
      labelNames: ['endpoint', 'kind'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5],
      registers: [this.registry],
    });
    const usage = (name: string, help: string, pick: 'capacity' | 'allocated') =>
      new Gauge({
        name,
        help,
        labelNames: ['pool', 'family'],
        registers: [this.registry],
        collect() {
          // Read at scrape time from the index: no bookkeeping in the admission path.
          this.reset();
          for (const pool of index.allPools()) {
            for (const u of index.usage(pool.name)) this.set({ pool: pool.name, family: u.family }, Number(u[pick]));
          }
        },
      });
    usage('netpin_pool_capacity_addresses', 'Usable addresses of each IPPool', 'capacity');
    usage('netpin_pool_allocated_addresses', 'Claimed addresses of each IPPool', 'allocated');
  }

  observe(o: Outcome): void {
    this.admissions.inc({ endpoint: o.endpoint, kind: o.kind, operation: o.operation, result: o.result });
    this.latency.observe({ endpoint: o.endpoint, kind: o.kind }, o.seconds);
  }
}
