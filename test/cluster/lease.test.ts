import { describe, expect, it } from 'vitest';
import { nextAttemptIn } from '../../src/cluster/lease.js';

describe('when a lease candidate tries again', () => {
  const renewMs = 5_000;
  const now = 1_000_000;

  it('renews every renewMs as leader, and tries every renewMs while the lease is free or unknown', () => {
    expect(nextAttemptIn(true, 0, renewMs, now)).toBe(renewMs);
    expect(nextAttemptIn(false, 0, renewMs, now)).toBe(renewMs);
  });

  it("tries just after the holder's lease runs out when that comes before the next tick, so a dead leader is replaced within the lease duration", () => {
    // Found by the leader-failover scenario: on fixed 5 s ticks the Lease of a killed leader was taken up to 20 s after its last renewal.
    expect(nextAttemptIn(false, now + 1_200, renewMs, now)).toBe(1_225);
    expect(nextAttemptIn(false, now + 12_000, renewMs, now)).toBe(renewMs);
  });

  it('never waits less than 10 ms, even for a lease that ran out already', () => {
    expect(nextAttemptIn(false, now - 500, renewMs, now)).toBe(10);
  });
});
