// The chart's monitoring objects, rendered offline: the ServiceMonitor, the Grafana dashboard and the
// PrometheusRule. Every PromQL expression they hold must name metrics that netpin exports, as read
// from a real app's /metrics after admissions and ledger writes, so that no panel or alert stays empty
// because of a renamed metric.
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/transport/app.js';
import { compilePool } from '../../src/ipam/pool.js';
import { Metrics } from '../../src/transport/metrics.js';
import { harness, ippoolReview, podCreate, post } from '../../harness/reviews.js';
import { binaries } from '../../harness/controlplane.js';
import { Helm, only, type Manifest } from '../../harness/helm.js';

const NS = 'netpin-system';
const GENERATE = fileURLToPath(new URL('../../certs/generate.sh', import.meta.url));
const SCRAPED = { cni: 'calico', 'monitoring.serviceMonitor.enabled': true };
const ALL_ON = {
  cni: 'calico',
  'monitoring.serviceMonitor.enabled': true,
  'monitoring.dashboard.enabled': true,
  'monitoring.prometheusRule.enabled': true,
};

interface Rule {
  alert: string;
  expr: string;
  for: string;
  labels: Record<string, string>;
  annotations: { summary: string; description: string };
}

const rulesOf = (objs: Manifest[]): Rule[] =>
  only(objs, 'PrometheusRule').spec.groups.flatMap((g: { rules: Rule[] }) => g.rules);
const dashboardMap = (objs: Manifest[]): Manifest => {
  const maps = objs.filter((o) => o.kind === 'ConfigMap' && o.metadata.name.endsWith('-dashboard'));
  expect(maps).toHaveLength(1);
  return maps[0]!;
};

/** Every PromQL expression of a dashboard: its panels' targets and its template variables' queries. */
function dashboardExpressions(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) for (const x of node) dashboardExpressions(x, out);
  else if (node && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if ((key === 'expr' || key === 'definition') && typeof value === 'string') out.push(value);
      else dashboardExpressions(value, out);
    }
  }
  return out;
}

const metricNames = (expr: string): string[] => expr.match(/netpin_[a-z0-9_]+/g) ?? [];

/** The metric names of every sample a real app exports, once each kind of event has happened. */
async function exportedNames(): Promise<Set<string>> {
  const h = await harness();
  const metrics = new Metrics(h.ledger.index);
  const app = await buildApp({ deps: h.deps, metrics });
  await post(app, 'mutate', podCreate({ name: 'a', annotations: { 'netpin.io/pool': 'web' } }));
  await post(app, 'mutate', podCreate({ name: 'b', annotations: { 'netpin.io/pool': 'nope' } }));
  await post(app, 'validate', ippoolReview('CREATE', 'overlap', { cidr: '10.20.0.0/25' }));
  // The limit's series exists only for a pool with a cap.
  h.ledger.index.setPool(
    compilePool({ metadata: { name: 'capped' }, spec: { cidr: '10.40.0.0/30', namespaceLimit: 2 } }),
  );
  // What the kube ledger and the reconciler report, which the memory ledger has no part in.
  const claim = [...h.ledger.index.allClaims()][0]!;
  metrics.ledger.write('create', 'conflict');
  metrics.reconciler.released(claim);
  metrics.reconciler.overdue([claim], 0);
  const text = (await app.inject({ url: '/metrics' })).body;
  const names = text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(l)![0]);
  return new Set(names);
}

describe('helm chart monitoring, rendered offline', () => {
  let helm: Helm;
  let work: string;
  let exported: Set<string>;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'netpin-monitoring-'));
    helm = new Helm(await binaries(), join(work, 'helm'));
    exported = await exportedNames();
  });
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('renders none of it by default', async () => {
    const objs = await helm.template({ cni: 'calico' });
    expect(objs.filter((o) => o.apiVersion.startsWith('monitoring.coreos.com/'))).toEqual([]);
    expect(objs.filter((o) => o.kind === 'ConfigMap')).toEqual([]);
  });

  describe('the ServiceMonitor', () => {
    it("scrapes the webhook Service's HTTPS port, checked against the CA of the self-signed Secret", async () => {
      const objs = await helm.template({ ...SCRAPED, 'monitoring.serviceMonitor.labels.release': 'kps' });
      const sm = only(objs, 'ServiceMonitor');
      const service = only(objs, 'Service');
      expect(sm.metadata).toMatchObject({ name: 'netpin', namespace: NS, labels: { release: 'kps' } });
      expect(sm.spec.namespaceSelector).toEqual({ matchNames: [NS] });
      expect(service.metadata.labels).toMatchObject(sm.spec.selector.matchLabels);
      expect(Object.keys(sm.spec.selector.matchLabels).length).toBeGreaterThan(0);
      expect(sm.spec.endpoints).toHaveLength(1);
      const endpoint = sm.spec.endpoints[0];
      expect(service.spec.ports.map((p: { name: string }) => p.name)).toContain(endpoint.port);
      expect(endpoint).toMatchObject({ path: '/metrics', scheme: 'https', interval: '30s', scrapeTimeout: '10s' });
      expect(endpoint.tlsConfig).toEqual({
        serverName: `netpin.${NS}.svc`,
        ca: { secret: { name: 'netpin-tls', key: 'ca.crt' } },
      });

      // That CA signed the certificate the pods serve /metrics with, for the name Prometheus asks for.
      const secret = only(objs, 'Secret', 'netpin-tls');
      const ca = new X509Certificate(Buffer.from(secret.data['ca.crt'], 'base64'));
      const cert = new X509Certificate(Buffer.from(secret.data['tls.crt'], 'base64'));
      expect(cert.verify(ca.publicKey)).toBe(true);
      expect(cert.subjectAltName).toContain(`DNS:${endpoint.tlsConfig.serverName}`);
    });

    it('uses the Secret cert-manager issues, which holds its CA', async () => {
      const objs = await helm.template({ ...SCRAPED, 'certificates.mode': 'cert-manager' });
      const tls = only(objs, 'ServiceMonitor').spec.endpoints[0].tlsConfig;
      expect(tls.ca).toEqual({ secret: { name: only(objs, 'Certificate', 'netpin').spec.secretName, key: 'ca.crt' } });
    });

    it('in secret mode, takes the CA from certificates.secret.caBundle, PEM or base64', async () => {
      const certs = join(work, 'certs');
      await promisify(execFile)('bash', [GENERATE, certs]);
      const pem = await readFile(join(certs, 'ca.crt'), 'utf8');
      for (const caBundle of [pem, Buffer.from(pem).toString('base64')]) {
        const secret = {
          'certificates.mode': 'secret',
          'certificates.secret.name': 'my-tls',
          'certificates.secret.caBundle': caBundle,
        };
        const objs = await helm.template({ ...SCRAPED, ...secret });
        const tls = only(objs, 'ServiceMonitor').spec.endpoints[0].tlsConfig;
        expect(tls.ca).toEqual({ configMap: { name: 'netpin-metrics-ca', key: 'ca.crt' } });
        expect(only(objs, 'ConfigMap', 'netpin-metrics-ca').data['ca.crt'].trim()).toBe(pem.trim());
      }
    });

    it('skips the certificate check only when asked to', async () => {
      const objs = await helm.template({ ...SCRAPED, 'monitoring.serviceMonitor.insecureSkipVerify': true });
      const tls = only(objs, 'ServiceMonitor').spec.endpoints[0].tlsConfig;
      expect(tls).toEqual({ serverName: `netpin.${NS}.svc`, insecureSkipVerify: true });
    });
  });

  it("renders the dashboard as a ConfigMap for Grafana's sidecar, its label and namespace configurable", async () => {
    const map = dashboardMap(await helm.template(ALL_ON));
    expect(map.metadata).toMatchObject({ namespace: NS, labels: { grafana_dashboard: '1' } });
    const dashboard = JSON.parse(map.data['netpin.json']);
    expect(dashboard).toMatchObject({ uid: 'netpin', title: 'netpin' });
    expect(dashboard.panels.filter((p: { type: string }) => p.type !== 'row').length).toBeGreaterThanOrEqual(8);

    const moved = dashboardMap(
      await helm.template({
        ...ALL_ON,
        'monitoring.dashboard.namespace': 'grafana',
        'monitoring.dashboard.labels.grafana_dashboard': 1,
        'monitoring.dashboard.annotations.grafana_folder': 'netpin',
      }),
    );
    expect(moved.metadata).toMatchObject({ namespace: 'grafana', labels: { grafana_dashboard: '1' } });
    expect(moved.metadata.annotations).toEqual({ grafana_folder: 'netpin' });
  });

  it('renders alerts on full pools, webhook errors and overdue claims, each with a summary and a description', async () => {
    const rules = rulesOf(
      await helm.template({
        ...ALL_ON,
        'monitoring.prometheusRule.poolUsagePercent': 80,
        'monitoring.prometheusRule.namespaceUsagePercent': 70,
        'monitoring.prometheusRule.claimOverdueSeconds': 600,
        'monitoring.prometheusRule.alertLabels.team': 'network',
      }),
    );
    expect(rules.map((r) => r.alert)).toEqual([
      'NetpinPoolNearlyFull',
      'NetpinNamespaceNearLimit',
      'NetpinWebhookErrors',
      'NetpinClaimsOverdue',
    ]);
    for (const r of rules) {
      expect(r.for).toMatch(/^\d+m$/);
      expect(r.labels.team).toBe('network');
      expect(r.labels.severity).toMatch(/^(warning|critical)$/);
      expect(r.annotations.summary.length).toBeGreaterThan(10);
      expect(r.annotations.description.length).toBeGreaterThan(100);
    }
    const [pool, namespace, errors, overdue] = rules as [Rule, Rule, Rule, Rule];
    expect(pool.expr).toMatch(/^100 \* [^]*>= 80$/);
    expect(namespace.expr).toMatch(/^100 \* [^]*>= 70$/);
    expect(metricNames(errors.expr)).toEqual(['netpin_webhook_errors_total']);
    expect(overdue.expr).toMatch(/> 600$/);
    // Left for Prometheus to expand, not eaten by Helm.
    expect(pool.annotations.summary).toContain('{{ $labels.pool }}');
  });

  it('names in every PromQL expression only metrics netpin exports', async () => {
    const objs = await helm.template(ALL_ON);
    const expressions = [
      ...dashboardExpressions(JSON.parse(dashboardMap(objs).data['netpin.json'])),
      ...rulesOf(objs).map((r) => r.expr),
    ];
    expect(expressions.length).toBeGreaterThanOrEqual(15);
    const named = expressions.flatMap(metricNames);
    expect(expressions.filter((e) => metricNames(e).length === 0)).toEqual([]);
    expect(named.filter((n) => !exported.has(n))).toEqual([]);
    for (const family of ['netpin_pool_', 'netpin_admission', 'netpin_claim']) {
      expect(
        named.some((n) => n.startsWith(family)),
        family,
      ).toBe(true);
    }
    // The exported names were read from samples, histogram suffixes included.
    expect(exported).toContain('netpin_admission_duration_seconds_bucket');
    expect(exported).toContain('netpin_claim_releases_total');
  });
});
