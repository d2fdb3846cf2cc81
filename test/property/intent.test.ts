// The intent parser over random valid and invalid values of every key, in every combination.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KEYS, PREFIX } from '../../src/intent/keys.js';
import { parseIntent } from '../../src/intent/parse.js';
import type { Intent } from '../../src/intent/types.js';
import { annotations, VALUES } from './arbitraries.js';
import { runs } from './runs.js';

// The intent field each key fills when its value is understood.
const FIELD: Record<string, keyof Intent> = {
  [KEYS.ip]: 'ip',
  [KEYS.ips]: 'ips',
  [KEYS.pool]: 'pools',
  [KEYS.egressIp]: 'egress',
  [KEYS.ingressRate]: 'ingressRate',
  [KEYS.egressRate]: 'egressRate',
  [KEYS.latency]: 'latencyMs',
  [KEYS.jitter]: 'jitterMs',
  [KEYS.loss]: 'lossPercent',
  [KEYS.limit]: 'limitPackets',
};

describe('parseIntent, property-based', () => {
  it('never throws; every problem names a netpin.io/ key the annotations carry, with a message and a fix', () => {
    fc.assert(
      fc.property(annotations, (a) => {
        const { intent, problems } = parseIntent(a);
        for (const p of problems) {
          expect(p.key.startsWith(PREFIX)).toBe(true);
          expect(Object.keys(a)).toContain(p.key);
          expect(p.message.length).toBeGreaterThan(0);
          expect(p.fix.length).toBeGreaterThan(0);
        }
        // A key that draws no problem is understood.
        const faulted = new Set(problems.map((p) => p.key));
        for (const [key, field] of Object.entries(FIELD)) {
          if (a[key] !== undefined && !faulted.has(key))
            expect(intent[field], `${key}: ${JSON.stringify(a[key])}`).toBeDefined();
        }
      }),
      { numRuns: runs(1500) },
    );
  });

  it('understands only values it can keep exactly: numbers stay finite, rates within 1k..1P', () => {
    fc.assert(
      fc.property(annotations, (a) => {
        const { intent } = parseIntent(a);
        for (const n of [intent.latencyMs, intent.jitterMs, intent.lossPercent, intent.limitPackets]) {
          if (n !== undefined) expect(Number.isFinite(n)).toBe(true);
        }
        if (intent.limitPackets !== undefined) expect(Number.isSafeInteger(intent.limitPackets)).toBe(true);
        for (const r of [intent.ingressRate, intent.egressRate]) {
          if (r) expect(r.bitsPerSecond >= 1000n && r.bitsPerSecond <= 10n ** 15n).toBe(true);
        }
      }),
      { numRuns: runs(500) },
    );
  });

  it.each(Object.keys(VALUES))('%s alone: never throws, and its problems name it', (key) => {
    fc.assert(
      fc.property(VALUES[key]!, (v) => {
        const { problems } = parseIntent({ [key]: v });
        for (const p of problems) expect(p.key).toBe(key);
      }),
      { numRuns: runs(100) },
    );
  });
});
