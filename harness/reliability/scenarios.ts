// The reliability scenarios of issue 10 on a real etcd, kube-apiserver and kube-controller-manager,
// written once and run at two sizes: light in the test command (test/e2e/reliability.test.ts) and
// full in `npm run chaos` (bench/chaos.ts), which writes docs/reliability.md from their reports.
//
// The webhooks are registered once, at a loopback stand-in for the chart's Service (service.ts),
// which spreads the API server's connections over the scenario's replicas. So pods created through
// the API server (bare pods by a client here, Deployments' and StatefulSets' by the controllers)
// are admitted by all replicas; some reviews are also posted straight to one replica, where a
// scenario needs a given replica to answer (a claim whose pod is never created, steady load).
// No kubelet runs: pods stay Pending unless a scenario writes their status as a kubelet would.
//
// Every loop here ends by count or by time. Nothing is asserted with vitest: each scenario returns
// what held and what was lost (the target: nothing), which the test file asserts and chaos reports.
// Each scenario is a module of its own; this one is what the test file and chaos import.
export { CHART_MEMORY_LIMIT, FULL, LIGHT, setUp, tearDown, type Env, type Report } from './env.js';
export { replicasKilled } from './replicas-killed.js';
export { statefulSetChurn } from './statefulset-churn.js';
export { leaderFailover } from './leader-failover.js';
export { certificateRotation } from './certificate-rotation.js';
