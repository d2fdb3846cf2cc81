import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import type { Outcome } from '../admission/handler.js';
import type { ClaimWrite, LedgerMetrics, WriteOutcome } from '../cluster/kube-ledger.js';
import type { ReconcilerMetrics } from '../cluster/reconciler.js';
import type { Claim } from '../ipam/claim.js';
import type { ClaimIndex, PoolUsage } from '../ipam/claim-index.js';

/** A label of the admission metrics: its name, and its value for an outcome. */
interface Label {
  name: string;
  of(o: Outcome): string;
}

// The kinds the chart's webhooks send. Anyone who can reach the webhook can post a review of any
// kind: the rest count as `other`, so that no caller can add series without bound.
const KINDS: ReadonlySet<string> = new Set(['Pod', 'Deployment', 'StatefulSet', 'Scale', 'IPPool']);
const ENDPOINT: Label = { name: 'endpoint', of: (o) => o.endpoint };
const KIND: Label = { name: 'kind', of: (o) => (KINDS.has(o.kind) ? o.kind : 'other') };
// decodeReview admits the four operations only.
const OPERATION: Label = { name: 'operation', of: (o) => o.operation };
const RESULT: Label = { name: 'result', of: (o) => o.result };
// The handler names only netpin.io keys it knows, or `other`.
const REASON: Label = { name: 'reason', of: (o) => o.reason ?? 'other' };

const WRITES: readonly ClaimWrite[] = ['create', 'patch', 'delete'];
const WRITE_OUTCOMES: readonly WriteOutcome[] = ['ok', 'conflict', 'gone', 'error'];
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5];

type Labels = Record<string, string>;

/** One line of the exposition: the metric name with its suffix, if any, the labels and the value. */
interface Sample {
  metricName: string;
  labels: Record<string, string | number>;
  value: number;
}

/** A counter's series. */
export class Tally {
  value = 0;

  constructor(readonly labels: Labels) {}

  samples(name: string): Sample[] {
    return [{ metricName: name, labels: this.labels, value: this.value }];
  }
}

/** A histogram's series: a count per bucket (the last one above every bound), their sum and count. */
class Timing {
  private readonly counts: number[];
  private sum = 0;

  constructor(
    readonly labels: Labels,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  observe(seconds: number): void {
    let i = 0;
    while (i < this.bounds.length && seconds > this.bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += seconds;
  }

  samples(name: string): Sample[] {
    let below = 0;
    const bucket = `${name}_bucket`;
    const buckets = this.bounds.map((le, i) => {
      below += this.counts[i]!;
      return { metricName: bucket, labels: { le, ...this.labels }, value: below };
    });
    const count = below + this.counts[this.bounds.length]!;
    return [
      ...buckets,
      { metricName: bucket, labels: { le: '+Inf', ...this.labels }, value: count },
      { metricName: `${name}_sum`, labels: this.labels, value: this.sum },
      { metricName: `${name}_count`, labels: this.labels, value: count },
    ];
  }
}

/**
 * A metric of the admission path, by labels of the outcome. prom-client checks and hashes the label
 * values of every observation, through a labelled child too (some 0.7 µs and a few allocations each,
 * measured): here each combination of values gets its series once, found again through a tree of
 * Maps, and observing allocates nothing. The registry reads the numbers at scrape time (get()).
 */
export class OutcomeMetric<S extends { labels: Labels; samples(name: string): Sample[] }> {
  readonly aggregator = 'sum';
  private readonly tree = new Map<string, unknown>();
  private readonly series: S[] = [];

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'histogram',
    private readonly labels: readonly Label[],
    private readonly make: (labels: Labels) => S,
  ) {}

  of(o: Outcome): S {
    let node = this.tree;
    const last = this.labels.length - 1;
    for (let i = 0; i < last; i++) {
      const value = this.labels[i]!.of(o);
      let next = node.get(value) as Map<string, unknown> | undefined;
      if (!next) node.set(value, (next = new Map()));
      node = next;
    }
    const value = this.labels[last]!.of(o);
    return (node.get(value) as S | undefined) ?? this.add(node, value, o);
  }

  // Apart from of(): a closure over `o` there would cost a context allocation on every call.
  private add(node: Map<string, unknown>, value: string, o: Outcome): S {
    const series = this.make(Object.fromEntries(this.labels.map((l) => [l.name, l.of(o)])));
    node.set(value, series);
    this.series.push(series);
    return series;
  }

  async get() {
    const values = this.series.flatMap((s) => s.samples(this.name));
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** The registry reads any object with a name and get(); its type names prom-client's own classes only. */
  registerIn(registry: Registry): this {
    registry.registerMetric(this as unknown as Metric);
    return this;
  }
}

/**
 * Prometheus metrics of one app instance: a registry of its own, so that apps in one process do not
 * collide. Admission outcomes come through observe(); the kube ledger and the reconciler report
 * through `ledger` and `reconciler`; pool usage is read from the index at scrape time.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly ledger: LedgerMetrics;
  readonly reconciler: ReconcilerMetrics;
  private readonly admissions: OutcomeMetric<Tally>;
  private readonly latency: OutcomeMetric<Timing>;
  private readonly denials: OutcomeMetric<Tally>;
  private readonly inBandErrors: Counter.Internal;
  private readonly httpErrors: Counter.Internal;

  constructor(index: ClaimIndex) {
    collectDefaultMetrics({ register: this.registry, prefix: 'netpin_process_' });
    const tally = (labels: Labels) => new Tally(labels);
    this.admissions = new OutcomeMetric(
      'netpin_admissions_total',
      'Admission reviews answered, by endpoint, kind, operation and result',
      'counter',
      [ENDPOINT, KIND, OPERATION, RESULT],
      tally,
    ).registerIn(this.registry);
    this.latency = new OutcomeMetric(
      'netpin_admission_duration_seconds',
      'Time from decoding a review to its answer',
      'histogram',
      [ENDPOINT, KIND],
      (labels) => new Timing(labels, LATENCY_BUCKETS),
    ).registerIn(this.registry);
    this.denials = new OutcomeMetric(
      'netpin_admission_denials_total',
      'Reviews refused (replays aside), by endpoint, kind and reason: the netpin.io key the refusal names first, or other',
      'counter',
      [ENDPOINT, KIND, REASON],
      tally,
    ).registerIn(this.registry);
    const errors = new Counter({
      name: 'netpin_webhook_errors_total',
      help: 'Reviews netpin could not decide: in-band answers with code 500 (type in_band), HTTP 5xx answers (type http)',
      labelNames: ['type'],
      registers: [this.registry],
    });
    this.inBandErrors = atZero(errors, 'in_band');
    this.httpErrors = atZero(errors, 'http');

    poolGauges(this.registry, index);
    this.ledger = ledgerMetrics(this.registry);
    this.reconciler = reconcilerMetrics(this.registry, index);
  }

  observe(o: Outcome): void {
    this.admissions.of(o).value++;
    this.latency.of(o).observe(o.seconds);
    if (o.result === 'denied') this.denials.of(o).value++;
    else if (o.result === 'error') this.inBandErrors.inc();
  }

  /** A request answered with HTTP 5xx: netpin failed before it could answer in band. */
  httpError(): void {
    this.httpErrors.inc();
  }
}

/** A counter's child, exported at 0 from now on: a rate over a series that appears at its first increment misses that increment. */
function atZero(counter: Counter, ...values: string[]): Counter.Internal {
  const child = counter.labels(...values);
  child.inc(0);
  return child;
}

/** Size, held and free addresses of each pool and family, read at scrape time: no bookkeeping in the admission path. */
function poolGauges(registry: Registry, index: ClaimIndex): void {
  const gauge = (name: string, help: string, pick: (u: PoolUsage) => bigint) =>
    new Gauge({
      name,
      help,
      labelNames: ['pool', 'family'],
      registers: [registry],
      collect() {
        this.reset();
        for (const pool of index.allPools()) {
          for (const u of index.usage(pool.name)) this.set({ pool: pool.name, family: u.family }, Number(pick(u)));
        }
      },
    });
  gauge('netpin_pool_capacity_addresses', 'Usable addresses of each IPPool', (u) => u.capacity);
  gauge(
    'netpin_pool_allocated_addresses',
    'Held addresses of each IPPool: claimed, or seen in use by a pod',
    (u) => u.allocated,
  );
  gauge(
    'netpin_pool_free_addresses',
    'Addresses of each IPPool that netpin may still give',
    (u) => u.capacity - u.allocated,
  );
  // One series per pool, namespace and family that holds an address: bounded by the namespaces the
  // pools select times the pools (claims are made only in opted-in namespaces), and gone with the last claim.
  // The label is claim_namespace, not namespace: Prometheus sets `namespace` to netpin's own on every
  // target, and would rename a scraped one to exported_namespace (the chart's ServiceMonitor honors no labels).
  new Gauge({
    name: 'netpin_namespace_allocated_addresses',
    help: "Addresses each namespace (claim_namespace) holds of each IPPool, by family: its pods' claims, its StatefulSets' reservations and its egress addresses",
    labelNames: ['pool', 'claim_namespace', 'family'],
    registers: [registry],
    collect() {
      this.reset();
      for (const u of index.namespaceUsage()) {
        if (u.ipv4) this.set({ pool: u.pool, claim_namespace: u.namespace, family: 'ipv4' }, u.ipv4);
        if (u.ipv6) this.set({ pool: u.pool, claim_namespace: u.namespace, family: 'ipv6' }, u.ipv6);
      }
    },
  });
  new Gauge({
    name: 'netpin_pool_namespace_limit_addresses',
    help: 'spec.namespaceLimit of each IPPool that sets one: the most addresses of each family one namespace may hold of it',
    labelNames: ['pool'],
    registers: [registry],
    collect() {
      this.reset();
      for (const pool of index.allPools())
        if (pool.namespaceLimit !== undefined) this.set({ pool: pool.name }, pool.namespaceLimit);
    },
  });
}

function ledgerMetrics(registry: Registry): LedgerMetrics {
  const writes = new Counter({
    name: 'netpin_claim_writes_total',
    help: 'IPClaim writes to the API server, by op and outcome (conflict: 409, the address held by another writer; gone: 404 or 422)',
    labelNames: ['op', 'outcome'],
    registers: [registry],
  });
  // Writes are API calls: a key string each costs nothing next to them.
  const pairs = WRITES.flatMap((op) =>
    WRITE_OUTCOMES.map((outcome) => [`${op}/${outcome}`, atZero(writes, op, outcome)] as const),
  );
  const children = new Map(pairs);
  return { write: (op, outcome) => children.get(`${op}/${outcome}`)?.inc() };
}

function reconcilerMetrics(registry: Registry, index: ClaimIndex): ReconcilerMetrics {
  const releases = new Counter({
    name: 'netpin_claim_releases_total',
    help: 'Claims the reconciler released because no pod held them past the grace period, by pool',
    labelNames: ['pool'],
    registers: [registry],
  });
  // What the last sweep found overdue. A claim released or renewed since, by this replica or another
  // (then the watch brings it here), is no longer the index's claim or no longer past its grace: so a
  // replica that lost the lease does not report the claims its successor released.
  let found: readonly Claim[] = [];
  let graceMs = 0;
  const overdue = (now: number) => found.filter((c) => index.holderOf(c.ip) === c && now - c.createdAt >= graceMs);
  new Gauge({
    name: 'netpin_claims_overdue',
    help: 'Claims past their grace period that no pod holds and the reconciler has not released yet, as of its last sweep',
    registers: [registry],
    collect() {
      this.set(overdue(Date.now()).length);
    },
  });
  new Gauge({
    name: 'netpin_claims_overdue_seconds',
    help: 'How long the oldest overdue claim has been past its grace period; 0 when none is',
    registers: [registry],
    collect() {
      const now = Date.now();
      this.set(overdue(now).reduce((oldest, c) => Math.max(oldest, (now - c.createdAt - graceMs) / 1000), 0));
    },
  });
  return {
    released: (claim) => releases.inc({ pool: claim.pool }),
    overdue: (claims, grace) => {
      found = claims;
      graceMs = grace;
    },
  };
}
