// Issue 10's reliability scenarios at their light size, in the test command; `npm run chaos` runs the
// same scenarios (harness/reliability/) at full size and writes docs/reliability.md.
// Scenario 4 (the API server goes away) is test/e2e/outage.test.ts; scenario 6 is test/property/.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  certificateRotation,
  leaderFailover,
  LIGHT,
  replicasKilled,
  setUp,
  statefulSetChurn,
  tearDown,
  type Env,
  type Report,
} from '../../harness/reliability/scenarios.js';

let env: Env | undefined;
const log = (line: string) => console.log(`[reliability] ${line}`);

function expectNothingLost(r: Report): void {
  log(`${r.id}. ${r.title} (${r.seconds} s): ${JSON.stringify(r.figures)}`);
  for (const n of r.notes) log(`   note: ${n}`);
  expect(r.lost, `${r.title}: what was lost`).toEqual([]);
}

beforeAll(async () => {
  env = await setUp(log);
});

afterAll(async () => {
  await tearDown(env);
});

describe('reliability, light', () => {
  it('1 and 7: 200 pods across three replicas, one killed and restarted: no address twice, claims equal pods, every pod its address; memory within the chart limit', async () => {
    expectNothingLost(await replicasKilled(env!, LIGHT, { memoryLimit: true }));
  }, 240_000);

  it("2: a StatefulSet through deletes, 5 → 1 → 5 and rolling updates keeps every ordinal's address", async () => {
    expectNothingLost(await statefulSetChurn(env!, LIGHT));
  }, 120_000);

  it('3: the leader killed: the Lease is taken within its duration, a leak is released within 60 s, no live claim is released', async () => {
    expectNothingLost(await leaderFailover(env!, LIGHT));
  }, 150_000);

  it('5: serving certificates replaced under steady admissions: none fails, the new one is served without a restart', async () => {
    expectNothingLost(await certificateRotation(env!, LIGHT));
  }, 90_000);
});
