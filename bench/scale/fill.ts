// The loaded ledger, made straight through the API in the form netpin leaves it: pinned pods with
// its annotations and label, claims naming them as owners, and StatefulSet reservations.
import type { IPv4 } from 'ipaddr.js';
import { dialectFor } from '../../src/cni/index.js';
import { toObject } from '../../src/cluster/kube-ledger.js';
import { GROUP, VERSION } from '../../src/cluster/kube.js';
import type { Owner } from '../../src/ipam/claim.js';
import { ALLOCATED_KEY, KEYS, PINNED_LABEL } from '../../src/intent/keys.js';
import { parseIntent } from '../../src/intent/parse.js';
import { formatDual, fromBigInt, parseAddress, toBigInt, type Address } from '../../src/net/address.js';
import { kube, type Client } from '../../harness/rest.js';
import { inParallel } from '../proc.js';
import { replicaSetPod } from '../review.js';

export const CLAIMS_PATH = `/apis/${GROUP}/${VERSION}/ipclaims`;
const NAMESPACE_PREFIX = 'scale';
const POOL_PREFIX = 'scale';
const PODS_PER_NAMESPACE = 200;
const ORDINALS_PER_STATEFULSET = 100;
/** Claims per /16 pool, about 40 % of it: room for the reviews, and firstFree works past a long held stretch. */
const CLAIMS_PER_POOL = 25_000;
const POD_SHAPE = { kind: 'Pod', replicas: 1, statefulSet: false } as const;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Where every object goes: claim j is in pool j mod P at offset j div P + 1, pod j holds claim j. */
export class Layout {
  readonly pools: number;
  readonly namespaces: number;
  readonly statefulSets: number;
  private readonly base = toBigInt(parseAddress('10.64.0.0')!);

  constructor(
    readonly claims: number,
    readonly pods: number,
  ) {
    if (pods > claims)
      throw new Error(`--scale-pods ${pods} is more than --scale-claims ${claims}: each pinned pod holds one claim`);
    this.pools = Math.max(1, Math.ceil(claims / CLAIMS_PER_POOL));
    this.namespaces = Math.max(1, Math.ceil(pods / PODS_PER_NAMESPACE));
    this.statefulSets = Math.ceil((claims - pods) / ORDINALS_PER_STATEFULSET);
  }

  pool(i: number): string {
    return `${POOL_PREFIX}-${i}`;
  }

  cidr(i: number): string {
    return `${fromBigInt(this.base + (BigInt(i) << 16n), 'ipv4').toString()}/16`;
  }

  namespace(i: number): string {
    return `${NAMESPACE_PREFIX}-${i % this.namespaces}`;
  }

  claim(j: number): { pool: string; ip: Address } {
    const p = j % this.pools;
    return {
      pool: this.pool(p),
      ip: fromBigInt(this.base + (BigInt(p) << 16n) + BigInt(Math.floor(j / this.pools) + 1), 'ipv4'),
    };
  }
}

const calico = dialectFor('calico');

/** The small benchmark pod, named, as netpin's mutating webhook leaves it when it pins `ip` from `pool`. */
function pinnedPod(name: string, namespace: string, pool: string, ip: IPv4): Record<string, unknown> {
  const intent = { [KEYS.pool]: pool };
  const pod = replicaSetPod(intent, namespace) as {
    metadata: { generateName: string; labels: Record<string, string> };
    spec: unknown;
  };
  const { generateName: _, ...metadata } = pod.metadata;
  const addresses = { ipv4: ip };
  const rendering = calico.render(parseIntent(intent).intent, POD_SHAPE, { pools: [], addresses });
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...metadata,
      name,
      annotations: { ...intent, ...rendering.annotations, [ALLOCATED_KEY]: formatDual(addresses) },
      labels: { ...metadata.labels, ...rendering.labels, [PINNED_LABEL]: 'true' },
    },
    spec: pod.spec,
  };
}

interface Named {
  metadata?: { name?: string };
}

/** A POST that survives a slow API server: retried on no answer, 429 and 5xx; a create that landed on an earlier try is read back. */
async function create<T extends Named>(rest: Client, path: string, body: T): Promise<{ metadata: { uid: string } }> {
  const name = body.metadata?.name ?? '';
  for (let attempt = 1; ; attempt++) {
    const r = await kube(rest, 'POST', path, body).catch((e: unknown) => ({ status: 0, json: String(e) }));
    if (r.status === 201) return r.json;
    if (r.status === 409 && attempt > 1) return (await kube(rest, 'GET', `${path}/${name}`)).json;
    const retry = r.status === 0 || r.status === 429 || r.status >= 500;
    if (!retry || attempt === 5) {
      throw new Error(
        `POST ${path} ${name}: ${r.status ? `HTTP ${r.status}` : 'no answer'}: ${JSON.stringify(r.json).slice(0, 300)}`,
      );
    }
    await sleep(250 * attempt);
  }
}

/** Creates the pinned pods with their claims, the StatefulSets (no replicas) and their reservations; returns the objects made. */
export async function fillLedger(
  rest: Client,
  layout: Layout,
  concurrency: number,
  log: (line: string) => void,
): Promise<number> {
  const podTemplate = replicaSetPod({}).spec;
  let made = 0;
  const progress = () => {
    if (++made % 5_000 === 0) log(`scale: ${made} objects created`);
  };
  const statefulSets = Array.from({ length: layout.statefulSets }, (_, s) => ({
    name: `db-${s}`,
    namespace: layout.namespace(s),
  }));
  await inParallel(statefulSets, concurrency, async ({ name, namespace }) => {
    await create(rest, `/apis/apps/v1/namespaces/${namespace}/statefulsets`, {
      metadata: { name },
      spec: {
        replicas: 0,
        serviceName: name,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name }, annotations: { [KEYS.pool]: layout.pool(0) } },
          spec: podTemplate,
        },
      },
    });
    progress();
  });
  await inParallel(
    Array.from({ length: layout.claims }, (_, j) => j),
    concurrency,
    async (j) => {
      const { pool, ip } = layout.claim(j);
      let owner: Owner;
      if (j < layout.pods) {
        // The pod first: its claim names it by uid, as netpin's reconciler binds a claim once its pod shows the address.
        const namespace = layout.namespace(j);
        const name = `web-5d8f7c9b4-${j.toString(36).padStart(5, '0')}`;
        const pod = await create(
          rest,
          `/api/v1/namespaces/${namespace}/pods`,
          pinnedPod(name, namespace, pool, ip as IPv4),
        );
        progress();
        owner = { kind: 'Pod', namespace, name, uid: pod.metadata.uid };
      } else {
        const r = j - layout.pods;
        const sts = statefulSets[Math.floor(r / ORDINALS_PER_STATEFULSET)]!;
        owner = {
          kind: 'StatefulSet',
          namespace: sts.namespace,
          name: sts.name,
          ordinal: r % ORDINALS_PER_STATEFULSET,
        };
      }
      const claim = toObject({ pool, ip, owner, createdAt: Date.now() });
      await create(rest, CLAIMS_PATH, claim);
      progress();
    },
  );
  return made;
}

// A pool no IPPool names, far from the scale pools: the API server's own creates, apart from netpin's.
