// Issue 20, attack 2: the work and memory of a review follow netpin's rules, not the request. Each
// hostile request here is refused quickly, with a short message, and what netpin keeps of it is bounded.
import { describe, expect, it } from 'vitest';
import { Admission, REPLAY_CACHE_BYTES, replayBytes, type Outcome } from '../../src/admission/handler.js';
import { denied, errored, allowed, MESSAGE_CHARS } from '../../src/admission/respond.js';
import { deployment, harness, podCreate, statefulSet } from '../../harness/reviews.js';

const MiB = 1 << 20;
const unknownKeys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`netpin.io/x-${i}`, 'v']));
const addresses = (n: number) =>
  Array.from({ length: n }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`).join(';');

describe('a hostile review', () => {
  const cases: Array<[string, Record<string, string>, string]> = [
    ['a 1 MiB netpin.io/ip', { 'netpin.io/ip': 'x'.repeat(MiB) }, 'netpin.io/ip'],
    ['a 1 MiB key', { [`netpin.io/${'x'.repeat(MiB)}`]: 'v' }, '"netpin.io/xxx'],
    ['200 000 unknown netpin.io/ keys', unknownKeys(200_000), 'netpin.io/x-0'],
    ['200 000 addresses in netpin.io/ips', { 'netpin.io/ips': addresses(200_000) }, 'netpin.io/ips'],
    ['10 000 addresses outside every pool', { 'netpin.io/ips': addresses(10_000) }, 'netpin.io/ips'],
    ['a 1 MiB rate', { 'netpin.io/egress-rate': '9'.repeat(MiB) }, 'netpin.io/egress-rate'],
    ['a one-number IPv4 address', { 'netpin.io/ip': '169082889' }, 'netpin.io/ip'],
  ];

  it.each(cases)('is refused on /mutate and /validate, with a short message: %s', async (_, annotations, first) => {
    const h = await harness();
    for (const post of [h.mutate, h.validate]) {
      const answer = await post(podCreate({ name: 'a', annotations }));
      expect(answer.status).toBe(200);
      // 403, not the 500 of an overflowed stack.
      expect(answer.response.status?.code).toBe(403);
      const message = answer.response.status!.message;
      expect(message.startsWith(`${first}`)).toBe(true);
      expect(message).toContain('(CNI Calico)');
      expect(message.length).toBeLessThan(2048);
    }
    expect(h.held()).toEqual({});
  });

  it.each([
    ['Deployment', deployment],
    ['StatefulSet', statefulSet],
  ])('is refused as a %s template too', async (_, make) => {
    const h = await harness();
    for (const annotations of [unknownKeys(200_000), { 'netpin.io/ip': 'x'.repeat(MiB) }]) {
      const answer = await h.mutate(make('CREATE', { name: 'w', annotations }));
      expect(answer.response.status?.code).toBe(403);
      expect(answer.response.status!.message.length).toBeLessThan(2048);
    }
  });

  it('refuses the one-number IPv4 form that names a pool address, and claims nothing', async () => {
    const h = await harness();
    // 169082889 is 10.20.0.9, an address of pool web.
    const answer = await h.mutate(podCreate({ name: 'a', annotations: { 'netpin.io/ip': '169082889' } }));
    expect(answer.response.status?.message).toBe(
      'netpin.io/ip (CNI Calico): "169082889" is not an IP address. Fix: write one address, or one IPv4 and one IPv6 address separated by a comma: 10.0.0.5 or 10.0.0.5,fd00::5',
    );
    expect(h.held()).toEqual({});
  });
});

describe('an answer', () => {
  it(`carries a message of ${MESSAGE_CHARS} characters at most, refusal or error`, () => {
    expect(denied('x'.repeat(MiB)).status!.message).toHaveLength(MESSAGE_CHARS);
    expect(errored('x'.repeat(MiB)).status!.message).toHaveLength(MESSAGE_CHARS);
    expect(denied('short').status!.message).toBe('short');
  });

  it('carries 16 warnings at most, of 1024 characters at most', () => {
    const warnings = allowed(Array.from({ length: 100 }, () => 'w'.repeat(MiB))).warnings!;
    expect(warnings).toHaveLength(16);
    for (const w of warnings) expect(w.length).toBeLessThanOrEqual(1024);
    expect(denied('no', ['one']).warnings).toEqual(['one']);
  });
});

describe('the replay cache', () => {
  it('weighs an answer by its strings', () => {
    expect(replayBytes({ allowed: false, status: { code: 403, message: 'm'.repeat(1000) } }, 'k')).toBe(2 * 1001 + 512);
    expect(replayBytes({ allowed: true, patch: 'p'.repeat(100), warnings: ['w', 'ww'] }, 'k')).toBe(2 * 104 + 512);
  });

  it('has room for its 10 000 ordinary answers: the entry count binds first', async () => {
    const h = await harness({ cni: 'antrea' });
    const body = podCreate({
      name: 'a',
      annotations: { 'netpin.io/pool': 'web', 'netpin.io/egress-rate': '10M', 'netpin.io/ingress-rate': '10M' },
    });
    const { uid, ...verdict } = (await h.mutate(body)).response;
    expect(verdict.patch).toBeDefined();
    expect(10_000 * replayBytes(verdict, `mutate/${uid}`)).toBeLessThan(REPLAY_CACHE_BYTES);
  });

  it(`forgets the least recent answers past ${REPLAY_CACHE_BYTES / MiB} MiB of them`, async () => {
    const outcomes: Outcome['result'][] = [];
    const admission = new Admission((await harness()).deps, { onOutcome: (o) => outcomes.push(o.result) });
    // Refusals for reviews with 64 KiB uids (a direct POST may send any): 128 KiB each as counted.
    const body = (i: number) =>
      podCreate({ name: 'a', uid: `${i}-${'u'.repeat(1 << 16)}`, annotations: { 'netpin.io/pool': 'nope' } });
    const count = Math.ceil(REPLAY_CACHE_BYTES / (1 << 17)) + 10;
    for (let i = 0; i < count; i++) await admission.review('mutate', body(i));
    await admission.review('mutate', body(count - 1));
    await admission.review('mutate', body(0));
    expect(outcomes.slice(-2)).toEqual(['replayed', 'denied']);
  });

  it('takes a smaller byte limit', async () => {
    const outcomes: Outcome['result'][] = [];
    const admission = new Admission((await harness()).deps, {
      replayCacheBytes: 64 * 1024,
      onOutcome: (o) => outcomes.push(o.result),
    });
    const body = (i: number) =>
      podCreate({ name: 'a', uid: `u-${i}`, annotations: { 'netpin.io/pool': `nope-${i}-${'x'.repeat(200)}` } });
    for (let i = 0; i < 100; i++) await admission.review('mutate', body(i));
    await admission.review('mutate', body(99));
    await admission.review('mutate', body(0));
    expect(outcomes.slice(-2)).toEqual(['replayed', 'denied']);
  });
});
