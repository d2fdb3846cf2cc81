// netpin attacked as a tenant would attack it: someone who may create Pods, Deployments and
// StatefulSets in one opted-in namespace and reach any Service from a pod. One scenario per attack
// of docs/security.md, each on the real API server; each fails without the rule it names.
import { afterAll, beforeAll, describe } from 'vitest';
import { boundedWork } from './hostile/bounded.js';
import { HostileEnv } from './hostile/env.js';
import { forgedReviews } from './hostile/forged.js';
import { hoarding } from './hostile/hoarding.js';
import { kubeOvnGaps } from './hostile/kube-ovn.js';
import { slowClients } from './hostile/slow-clients.js';
import { smallerPoints } from './hostile/smaller.js';
import { squatting } from './hostile/squatting.js';

const env = new HostileEnv();

beforeAll(() => env.start());
afterAll(() => env.stop());

describe('1. forged reviews', () => forgedReviews(env));
describe('2. work and memory per request', () => boundedWork(env));
describe('3. squatting from namespaces that did not opt in', () => squatting(env));
describe('4. Kube-OVN', () => kubeOvnGaps(env));
describe('5. hoarding with no pods', () => hoarding(env));
describe('6. slow clients', () => slowClients(env));
describe('7. smaller points', () => smallerPoints(env));
