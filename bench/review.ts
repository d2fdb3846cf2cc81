// The AdmissionReviews the admission benchmark posts: Pods as a ReplicaSet creates them, after the
// API server's defaulting, so that body parsing and the JSONPatch diff cost what they cost in a
// cluster (a few KB), not what a three-line example costs. Two sizes: a one-container pod
// (2.5 KB review) and a pod with an init container, a sidecar, env and probes (7.3 KB).

export const NAMESPACE = 'shop';
export const POOL = 'bench';

/** The pools file of `netpin serve --ledger memory`: a /8, so that no run exhausts it. */
export const POOLS_YAML = `apiVersion: netpin.io/v1alpha1
kind: IPPool
metadata: { name: ${POOL} }
spec:
  cidr: 10.0.0.0/8
  namespaceSelector: { matchLabels: { team: web } }
  cni:
    calico: { pool: bench-pool }
---
apiVersion: v1
kind: Namespace
metadata:
  name: ${NAMESPACE}
  labels: { team: web, netpin.io/enabled: "true" }
`;

type Obj = Record<string, unknown>;
type Labels = Record<string, string>;

const TOKEN_VOLUME = 'kube-api-access-x7k2p';

/** The service-account token volume the API server adds to every pod. */
const tokenVolume: Obj = {
  name: TOKEN_VOLUME,
  projected: {
    defaultMode: 420,
    sources: [
      { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
      { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
      {
        downwardAPI: {
          items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }],
        },
      },
    ],
  },
};
const tokenMount: Obj = {
  name: TOKEN_VOLUME,
  mountPath: '/var/run/secrets/kubernetes.io/serviceaccount',
  readOnly: true,
};

/** Fields the API server defaults on every container. */
const containerDefaults: Obj = {
  terminationMessagePath: '/dev/termination-log',
  terminationMessagePolicy: 'File',
  imagePullPolicy: 'IfNotPresent',
};

/** Fields the API server defaults on every pod spec, and the tolerations its admission adds. */
const podDefaults: Obj = {
  restartPolicy: 'Always',
  terminationGracePeriodSeconds: 30,
  dnsPolicy: 'ClusterFirst',
  schedulerName: 'default-scheduler',
  tolerations: [
    { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
    { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
  ],
  priority: 0,
  enableServiceLinks: true,
  preemptionPolicy: 'PreemptLowerPriority',
};

/** Metadata of a pod of Deployment `app`'s ReplicaSet, unnamed (generateName): each review is a new pod. */
function replicaSetPodMeta(app: string, hash: string, namespace: string, labels: Labels, annotations: Labels): Obj {
  return {
    generateName: `${app}-${hash}-`,
    namespace,
    labels: { app, ...labels, 'pod-template-hash': hash },
    annotations,
    ownerReferences: [
      {
        apiVersion: 'apps/v1',
        kind: 'ReplicaSet',
        name: `${app}-${hash}`,
        uid: '5b0c7a3e-3f0e-4c5e-9a7a-2f1d3c4b5a69',
        controller: true,
        blockOwnerDeletion: true,
      },
    ],
  };
}

function env(n: number): Obj[] {
  const out: Obj[] = [
    { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
    { name: 'POD_IP', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'status.podIP' } } },
    { name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'checkout-db', key: 'password' } } },
  ];
  for (let i = 0; i < n; i++) out.push({ name: `CHECKOUT_SETTING_${i}`, value: `value-${i}-${'x'.repeat(12)}` });
  return out;
}

function probe(path: string, port: number, initialDelaySeconds: number): Obj {
  return {
    httpGet: { path, port, scheme: 'HTTP' },
    initialDelaySeconds,
    timeoutSeconds: 1,
    periodSeconds: 10,
    successThreshold: 1,
    failureThreshold: 3,
  };
}

/** The large pod's init container: the database migration. */
function checkoutMigrate(): Obj {
  return {
    name: 'migrate',
    image: 'registry.example/shop/checkout-migrate:2.14.1',
    command: ['/bin/migrate', '--wait-for-db', '--timeout=120s'],
    env: env(4),
    resources: { limits: { cpu: '200m', memory: '128Mi' }, requests: { cpu: '50m', memory: '64Mi' } },
    volumeMounts: [{ name: 'config', mountPath: '/etc/checkout', readOnly: true }, tokenMount],
    ...containerDefaults,
  };
}

/** The large pod's application container. */
function checkoutApp(): Obj {
  return {
    name: 'app',
    image: 'registry.example/shop/checkout:2.14.1',
    args: ['--config=/etc/checkout/config.yaml', '--listen=:8080', '--metrics=:9090'],
    ports: [
      { name: 'http', containerPort: 8080, protocol: 'TCP' },
      { name: 'metrics', containerPort: 9090, protocol: 'TCP' },
    ],
    env: env(14),
    envFrom: [{ configMapRef: { name: 'checkout-env' } }],
    resources: { limits: { cpu: '2', memory: '1Gi' }, requests: { cpu: '500m', memory: '512Mi' } },
    volumeMounts: [
      { name: 'config', mountPath: '/etc/checkout', readOnly: true },
      { name: 'tls', mountPath: '/etc/tls', readOnly: true },
      { name: 'cache', mountPath: '/var/cache/checkout' },
      tokenMount,
    ],
    livenessProbe: probe('/healthz', 8080, 10),
    readinessProbe: probe('/readyz', 8080, 5),
    startupProbe: { ...probe('/healthz', 8080, 0), failureThreshold: 30 },
    lifecycle: { preStop: { exec: { command: ['/bin/sh', '-c', 'sleep 5'] } } },
    ...containerDefaults,
    securityContext: {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      runAsUser: 10001,
      capabilities: { drop: ['ALL'] },
    },
  };
}

/** The large pod's mesh sidecar. */
function envoySidecar(): Obj {
  return {
    name: 'envoy',
    image: 'registry.example/mesh/envoy:1.31.2',
    args: ['-c', '/etc/envoy/envoy.yaml', '--drain-time-s', '20'],
    ports: [{ name: 'envoy-admin', containerPort: 15000, protocol: 'TCP' }],
    resources: { limits: { cpu: '500m', memory: '256Mi' }, requests: { cpu: '100m', memory: '128Mi' } },
    volumeMounts: [{ name: 'tls', mountPath: '/etc/tls', readOnly: true }, tokenMount],
    readinessProbe: probe('/ready', 15000, 1),
    ...containerDefaults,
  };
}

/** Where the large pod's replicas go: apart by host, spread by zone. */
function checkoutPlacement(): Obj {
  return {
    affinity: {
      podAntiAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [
          {
            weight: 100,
            podAffinityTerm: {
              labelSelector: { matchLabels: { app: 'checkout' } },
              topologyKey: 'kubernetes.io/hostname',
            },
          },
        ],
      },
    },
    topologySpreadConstraints: [
      {
        maxSkew: 1,
        topologyKey: 'topology.kubernetes.io/zone',
        whenUnsatisfiable: 'ScheduleAnyway',
        labelSelector: { matchLabels: { app: 'checkout' } },
      },
    ],
  };
}

/** The large pod: Deployment checkout, with an init container, a sidecar, env, probes, affinity. */
export function deploymentPod(annotations: Labels, namespace = NAMESPACE): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: replicaSetPodMeta(
      'checkout',
      '7d4b9c8f6d',
      namespace,
      {
        'app.kubernetes.io/name': 'checkout',
        'app.kubernetes.io/part-of': 'shop',
        tier: 'backend',
      },
      {
        'kubectl.kubernetes.io/restartedAt': '2026-10-30T09:12:44Z',
        'prometheus.io/scrape': 'true',
        'prometheus.io/port': '9090',
        ...annotations,
      },
    ),
    spec: {
      volumes: [
        { name: 'config', configMap: { name: 'checkout-config', defaultMode: 420 } },
        { name: 'tls', secret: { secretName: 'checkout-tls', defaultMode: 420 } },
        { name: 'cache', emptyDir: { sizeLimit: '512Mi' } },
        tokenVolume,
      ],
      initContainers: [checkoutMigrate()],
      containers: [checkoutApp(), envoySidecar()],
      ...podDefaults,
      serviceAccountName: 'checkout',
      serviceAccount: 'checkout',
      securityContext: { fsGroup: 10001, seccompProfile: { type: 'RuntimeDefault' } },
      ...checkoutPlacement(),
    },
    status: { phase: 'Pending', qosClass: 'Burstable' },
  };
}

/** The small pod: Deployment web, one container with resources and a port, and the defaults. */
export function replicaSetPod(annotations: Labels, namespace = NAMESPACE): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: replicaSetPodMeta('web', '5d8f7c9b4', namespace, {}, annotations),
    spec: {
      volumes: [tokenVolume],
      containers: [
        {
          name: 'web',
          image: 'registry.example/shop/web:1.8.3',
          ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
          resources: { limits: { cpu: '500m', memory: '256Mi' }, requests: { cpu: '100m', memory: '128Mi' } },
          volumeMounts: [tokenMount],
          ...containerDefaults,
        },
      ],
      ...podDefaults,
      serviceAccountName: 'default',
      serviceAccount: 'default',
      securityContext: {},
    },
    status: { phase: 'Pending', qosClass: 'Burstable' },
  };
}

const UID_MARK = '@@UID@@';

/**
 * The review of a pod's CREATE as text, with a fresh request uid per call. A fresh uid on every
 * request, because netpin answers a repeated uid from its replay cache and would then measure nothing.
 */
export function reviewBody(pod: Obj): (seq: number) => string {
  const namespace = (pod.metadata as { namespace: string }).namespace;
  const text = JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: UID_MARK,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      namespace,
      operation: 'CREATE',
      userInfo: {
        username: 'system:serviceaccount:kube-system:replicaset-controller',
        uid: 'a3d1b0c2-8b7e-4f7a-9a51-0c0f1e2d3c4b',
        groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'],
      },
      object: pod,
      oldObject: null,
      dryRun: false,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
    },
  });
  const [head, tail] = text.split(UID_MARK) as [string, string];
  // Random per run: two runs against one server never share a uid.
  const run = Math.floor(Math.random() * 0xffffffff)
    .toString(16)
    .padStart(8, '0');
  return (seq) => `${head}${run}-0000-4000-8000-${seq.toString(16).padStart(12, '0')}${tail}`;
}
