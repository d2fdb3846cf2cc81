// The HTTPS load generator: closed loops over keep-alive connections, latency by process.hrtime.bigint().
//
// Why not autocannon: it records latency in whole milliseconds in its histogram, and the
// targets here (1.5 ms p99 service time) need a resolution well below that. undici's Client
// is the fastest HTTP/1.1 client for Node, so the runner, on the same two cores as the
// server, stays as far as it can from being the bottleneck.
import { Client } from 'undici';

export interface LoadOptions {
  /** https://127.0.0.1:PORT: load goes to loopback only. */
  origin: string;
  path: string;
  /** PEM of the CA that signed the server's certificate. */
  ca: string;
  /** Concurrent keep-alive connections, one request in flight on each. */
  connections: number;
  warmupMs: number;
  durationMs: number;
  /** Bound on the requests recorded; the loop stops sending when it is reached, and the window ends with its last answer. */
  maxRequests?: number;
  /** The request body; `seq` is unique within one run, for a fresh request uid. */
  body: (seq: number) => string;
}

export interface Latency {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export interface LoadResult {
  connections: number;
  /** Requests completed inside the measured window. */
  requests: number;
  /** Requests sent in all, warm-up included (the server's own counters must agree). */
  sent: number;
  errors: number;
  seconds: number;
  rps: number;
  /** Milliseconds, from before the request is written until its response body is read. */
  latencyMs: Latency;
  /** The first response body, for the caller to check that the server answered what it should. */
  sample: string;
  /** Every recorded latency (ms), so that rounds can be merged before taking percentiles. */
  samples: Float64Array;
}

const NS_PER_MS = 1e6;

/** Runs one warm-up then one measured window against a server, and reports throughput and latency. */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const max = o.maxRequests ?? 2_000_000;
  const latencies = new Float64Array(max);
  let recorded = 0;
  let completedInWindow = 0;
  let sent = 0;
  let errors = 0;
  let seq = 0;
  let sample: string | undefined;
  let lastEnd = 0n;

  const clients = Array.from(
    { length: o.connections },
    () =>
      new Client(o.origin, {
        connect: { ca: o.ca },
        pipelining: 1,
        // Longer than any pause in the run, so that no connection is re-established mid-measurement.
        keepAliveTimeout: 60_000,
      }),
  );

  const t0 = process.hrtime.bigint();
  const measureFrom = t0 + BigInt(o.warmupMs) * 1_000_000n;
  const measureTo = measureFrom + BigInt(o.durationMs) * 1_000_000n;

  const loop = async (client: Client): Promise<void> => {
    for (;;) {
      const body = o.body(seq++);
      const start = process.hrtime.bigint();
      if (start >= measureTo || recorded >= max) return;
      sent++;
      let ok: boolean;
      try {
        const res = await client.request({
          path: o.path,
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });
        const text = Buffer.from(await res.body.arrayBuffer());
        ok = res.statusCode === 200;
        sample ??= text.toString('utf8');
      } catch {
        ok = false;
      }
      const end = process.hrtime.bigint();
      if (!ok) {
        errors++;
        // A failing server must not turn this into a tight loop.
        if (errors > 1000) throw new Error(`more than 1000 failed requests to ${o.origin}${o.path}`);
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      if (start >= measureFrom && recorded < max) latencies[recorded++] = Number(end - start) / NS_PER_MS;
      if (end >= measureFrom && end < measureTo) {
        completedInWindow++;
        if (end > lastEnd) lastEnd = end;
      }
    }
  };

  try {
    await Promise.all(clients.map(loop));
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
  const seconds = recorded >= max ? Number(lastEnd - measureFrom) / 1e9 : o.durationMs / 1000;
  return {
    connections: o.connections,
    requests: completedInWindow,
    sent,
    errors,
    seconds,
    rps: completedInWindow / seconds,
    latencyMs: summarize(latencies.subarray(0, recorded)),
    sample: sample ?? '',
    samples: latencies.slice(0, recorded),
  };
}

/** Percentiles by sorting every sample: exact, and cheap at these counts. */
export function summarize(samples: Float64Array): Latency {
  if (samples.length === 0) return { p50: NaN, p90: NaN, p99: NaN, max: NaN, mean: NaN };
  const s = Float64Array.from(samples).sort();
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  let sum = 0;
  for (const v of s) sum += v;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: s[s.length - 1]!, mean: sum / s.length };
}
