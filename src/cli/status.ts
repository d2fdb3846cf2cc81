// `netpin status`: each pool's use, each namespace's use of each pool, and who holds each address of one pool. Read-only.
import type { V1MutatingWebhookConfiguration, V1Namespace } from '@kubernetes/client-node';
import { CNI_NAMES } from '../cni/dialect.js';
import { dialectFor } from '../cni/index.js';
import { inUse, type PodRecord } from '../cluster/pod-tracker.js';
import { namespaceDefaults, type NamespaceDefaults } from '../intent/defaults.js';
import type { Claim, Owner } from '../ipam/claim.js';
import { ClaimIndex } from '../ipam/claim-index.js';
import { poolAdmitsNamespace, poolContains, describeRanges, type Pool } from '../ipam/pool.js';
import { matchesSelector, type LabelSelector } from '../ipam/selector.js';
import {
  familyOf,
  formatRange,
  parseAddress,
  toBigInt,
  type Address,
  type AddressRange,
  type Family,
} from '../net/address.js';
import { parseFlags } from './args.js';
import { defaultsTable } from './status-defaults.js';
import {
  clusterClients,
  operatorKubeConfig,
  podRecords,
  readClaims,
  readPods,
  readPools,
  readWebhooks,
  reading,
} from './cluster-read.js';

export interface NamespaceInfo {
  name: string;
  labels: Record<string, string>;
  /** Its default pools (netpin.io/pool, netpin.io/egress-pool on the Namespace). */
  defaults?: NamespaceDefaults;
}

/** What status reports on, as read from the cluster. */
export interface StatusInput {
  pools: Pool[];
  claims: Claim[];
  pods: PodRecord[];
  namespaces: NamespaceInfo[];
  /** The namespaces netpin's webhooks admit: the webhook's namespaceSelector. */
  optIn: LabelSelector;
}

/** The mutating webhook's name in the chart; its namespaceSelector says which namespaces opted in. */
const MUTATING_WEBHOOK = 'mutate.netpin.io';
/** The chart's default webhook.optInLabel. */
const DEFAULT_OPT_IN: LabelSelector = { matchLabels: { 'netpin.io/enabled': 'true' } };
/** Namespaces named in a table cell before the rest are counted. */
const NAMESPACES_SHOWN = 4;
// Pods may carry any CNI's address annotations; the cluster runs one CNI, so reading them all costs nothing.
const ADDRESS_KEYS = [...new Set(CNI_NAMES.flatMap((name) => dialectFor(name).addressKeys))];

/** Pools, claims and the addresses pods use, in one index: held and free as netpin counts them. */
function indexOf(input: StatusInput): ClaimIndex {
  const index = new ClaimIndex();
  for (const pool of input.pools) index.setPool(pool);
  for (const claim of input.claims) index.add(claim);
  for (const pod of input.pods)
    index.observe(
      `${pod.namespace}/${pod.name}`,
      inUse(pod).flatMap((a) => parseAddress(a) ?? []),
    );
  return index;
}

/** Opted-in namespaces that the pool's namespaceSelector admits, by name. */
export function servedNamespaces(input: StatusInput, pool: Pool): string[] {
  return input.namespaces
    .filter((ns) => matchesSelector(input.optIn, ns.labels) && poolAdmitsNamespace(pool, ns.labels))
    .map((ns) => ns.name)
    .sort();
}

/** Whether a pool's namespaceSelector admits every namespace (absent or empty). */
function selectsAll(selector: LabelSelector | undefined): boolean {
  return (
    !selector ||
    (Object.keys(selector.matchLabels ?? {}).length === 0 && (selector.matchExpressions ?? []).length === 0)
  );
}

function describeNamespaces(input: StatusInput, pool: Pool, limit = Infinity): string {
  const names = servedNamespaces(input, pool);
  const shown = names.length > limit ? [...names.slice(0, limit), `+${names.length - limit} more`] : names;
  if (selectsAll(pool.namespaceSelector)) {
    // The table only counts them; the pool's own view lists them.
    return `all opted-in (${names.length})${limit === Infinity && names.length > 0 ? `: ${shown.join(', ')}` : ''}`;
  }
  return names.length === 0 ? 'none' : shown.join(', ');
}

const familyName = (f: Family) => (f === 'ipv4' ? 'IPv4' : 'IPv6');

function describeLargest(r: AddressRange | undefined): string {
  return r ? `${formatRange(r)} (${r.last - r.first + 1n})` : 'none';
}

/** One row per pool and family: size, held, free, largest free range, namespaces served. */
export function poolTable(input: StatusInput): string {
  const index = indexOf(input);
  const rows = input.pools.flatMap((pool) =>
    index
      .usage(pool.name)
      .map((u) => [
        pool.name,
        pool.egress ? 'egress' : 'pods',
        familyName(u.family),
        String(u.capacity),
        String(u.allocated),
        String(u.capacity - u.allocated),
        describeLargest(index.largestFree(pool.name, u.family)),
        describeNamespaces(input, pool, NAMESPACES_SHOWN),
      ]),
  );
  if (rows.length === 0) return 'No IPPool exists.';
  return table(['POOL', 'USE', 'FAMILY', 'SIZE', 'HELD', 'FREE', 'LARGEST FREE RANGE', 'NAMESPACES'], rows);
}

/**
 * What each namespace holds of each pool and family, against the pool's spec.namespaceLimit; of it,
 * WITHOUT POD counts the StatefulSet reservations whose pod does not exist (scaled down, or not yet
 * created). Busiest first, against their limit where there is one.
 */
export function namespaceTable(input: StatusInput, only?: Pool): string {
  const index = indexOf(input);
  const pods = new Set(input.pods.map((p) => `${p.namespace}/${p.name}`));
  const idle = new Map<string, number>();
  for (const c of input.claims) {
    const o = c.owner;
    if (o.kind !== 'StatefulSet' || pods.has(`${o.namespace}/${o.name}-${o.ordinal}`)) continue;
    const key = `${c.pool}/${o.namespace}/${familyOf(c.ip)}`;
    idle.set(key, (idle.get(key) ?? 0) + 1);
  }
  const pools = new Map(input.pools.map((p) => [p.name, p]));
  const rows: Array<{ cells: string[]; share: number; held: number }> = [];
  for (const u of index.namespaceUsage()) {
    if (only && u.pool !== only.name) continue;
    const limit = pools.get(u.pool)?.namespaceLimit;
    for (const family of ['ipv4', 'ipv6'] as const) {
      const held = u[family];
      if (held === 0) continue;
      const share = limit === undefined ? -1 : limit === 0 ? Infinity : held / limit;
      rows.push({
        held,
        share,
        cells: [
          u.namespace,
          u.pool,
          familyName(family),
          String(held),
          String(idle.get(`${u.pool}/${u.namespace}/${family}`) ?? 0),
          limit === undefined ? '-' : String(limit),
          limit === undefined ? '-' : limit === 0 ? 'over' : `${Math.round(100 * (held / limit))}%`,
        ],
      });
    }
  }
  if (rows.length === 0) return 'No namespace holds an address.';
  rows.sort((a, b) => b.share - a.share || b.held - a.held || a.cells.join().localeCompare(b.cells.join()));
  return table(
    ['NAMESPACE', 'POOL', 'FAMILY', 'HELD', 'WITHOUT POD', 'LIMIT', 'USE'],
    rows.map((r) => r.cells),
  );
}

/** A pool's header and one row per held address: who holds it, since when, and whether its pod exists. */
export function poolDetail(input: StatusInput, pool: Pool, now: number): string {
  const index = indexOf(input);
  const lines = [
    `IPPool ${pool.name} (${pool.egress ? 'egress addresses' : 'pod addresses'}): ${describeRanges(pool)}`,
    `Namespaces: ${describeNamespaces(input, pool)}`,
    ...(pool.namespaceLimit === undefined
      ? []
      : [`Per namespace: at most ${pool.namespaceLimit} addresses of each family (spec.namespaceLimit)`]),
    ...index
      .usage(pool.name)
      .map(
        (u) =>
          `${familyName(u.family)}: ${u.capacity} addresses, ${u.allocated} held, ${u.capacity - u.allocated} free; ` +
          `largest free range ${describeLargest(index.largestFree(pool.name, u.family))}`,
      ),
    '',
  ];
  const rows = holders(input, pool)
    .sort((a, b) =>
      a.ip.family !== b.ip.family ? (a.ip.family === 'ipv4' ? -1 : 1) : a.ip.n < b.ip.n ? -1 : a.ip.n > b.ip.n ? 1 : 0,
    )
    .map((h) => [h.ip.text, h.owner, h.ordinal, h.since === undefined ? '-' : formatAge(now - h.since), h.pod]);
  lines.push(rows.length === 0 ? 'No address is held.' : table(['ADDRESS', 'OWNER', 'ORDINAL', 'AGE', 'POD'], rows));
  if (rows.length) lines.push('', namespaceTable(input, pool));
  return lines.join('\n');
}

interface Holder {
  ip: { text: string; family: Family; n: bigint };
  owner: string;
  ordinal: string;
  /** When claimed (or handed out again to the same owner); undefined for a pod without a claim. */
  since?: number;
  /** Whether its pod exists: `finished` for a Succeeded or Failed one, which holds nothing by itself. */
  pod: 'yes' | 'no' | 'finished';
}

/** The pool's claims, and the addresses of it that pods use without a claim. */
function holders(input: StatusInput, pool: Pool): Holder[] {
  const pods = new Map(input.pods.map((p) => [`${p.namespace}/${p.name}`, p]));
  const inNamespace = (ns: string, uses: (p: PodRecord) => boolean) =>
    input.pods.some((p) => p.namespace === ns && uses(p));
  const claimed = new Set<string>();
  const out: Holder[] = [];
  for (const c of input.claims.filter((x) => x.pool === pool.name)) {
    const ip = c.ip.toString();
    claimed.add(ip);
    const o = c.owner;
    const named = (name: string) => {
      const p = pods.get(`${o.namespace}/${name}`);
      return p ? (p.finished ? 'finished' : 'yes') : 'no';
    };
    const shows = (uses: (p: PodRecord) => boolean) => (inNamespace(o.namespace, uses) ? 'yes' : 'no');
    // A claim made before its pod had a name: the pod shows the address.
    const pod =
      o.kind === 'StatefulSet'
        ? named(`${o.name}-${o.ordinal}`)
        : o.kind === 'Egress' || o.kind === 'DaemonSet'
          ? shows((p) => (o.kind === 'Egress' ? p.egress : p.addresses).includes(ip))
          : o.name === ''
            ? shows((p) => p.addresses.includes(ip))
            : named(o.name);
    out.push({ ip: addressKey(c.ip), owner: describeHolder(o), ordinal: ordinalOf(o), since: c.createdAt, pod });
  }
  for (const pod of input.pods) {
    for (const text of inUse(pod)) {
      const ip = parseAddress(text);
      if (!ip || claimed.has(ip.toString()) || !poolContains(pool, ip)) continue;
      out.push({
        ip: addressKey(ip),
        owner: `Pod/${pod.namespace}/${pod.name} (no claim)`,
        ordinal: '-',
        pod: 'yes',
      });
    }
  }
  return out;
}

function addressKey(ip: Address): Holder['ip'] {
  return { text: ip.toString(), family: familyOf(ip), n: toBigInt(ip) };
}

/** kind/namespace/name, as kubectl names objects. */
function describeHolder(o: Owner): string {
  if (o.kind === 'Egress') return `${o.workload}/${o.namespace}/${o.name} (egress)`;
  return `${o.kind}/${o.namespace}/${o.name || '(not yet named)'}`;
}

function ordinalOf(o: Owner): string {
  if (o.kind === 'DaemonSet') return `node ${o.node}`;
  return o.kind === 'StatefulSet' || (o.kind === 'Egress' && o.ordinal !== undefined) ? String(o.ordinal) : '-';
}

/** kubectl's style: 45s, 12m, 5h, 3d. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 120 * 60) return `${Math.floor(s / 60)}m`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** Columns padded to their widest cell, two spaces apart. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows]
    .map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '))
    .join('\n');
}

/**
 * The namespaceSelector of netpin's mutating webhook, which decides what opted in; the chart's
 * default label when the webhook configuration cannot be read, with a note that says so.
 */
function optInSelector(webhooks: V1MutatingWebhookConfiguration[] | string): {
  selector: LabelSelector;
  note?: string;
} {
  const hook =
    typeof webhooks === 'string'
      ? undefined
      : webhooks.flatMap((x) => x.webhooks ?? []).find((w) => w.name === MUTATING_WEBHOOK);
  if (hook) return { selector: (hook.namespaceSelector ?? {}) as LabelSelector };
  const why =
    typeof webhooks === 'string' ? webhooks : `no MutatingWebhookConfiguration has the webhook ${MUTATING_WEBHOOK}`;
  return {
    selector: DEFAULT_OPT_IN,
    note: `Opted-in namespaces are taken to be those labelled netpin.io/enabled=true (${why}).`,
  };
}

function namespaceInfo(ns: V1Namespace): NamespaceInfo {
  const annotations = ns.metadata?.annotations;
  return { name: ns.metadata?.name ?? '', labels: ns.metadata?.labels ?? {}, defaults: namespaceDefaults(annotations) };
}

const FLAGS = ['kubeconfig', 'pool'] as const;

export async function runStatus(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, FLAGS);
  const c = clusterClients(operatorKubeConfig(flags.get('kubeconfig')));
  const [pools, claims, pods, namespaces, webhooks] = await Promise.all([
    readPools(c.custom),
    readClaims(c.custom),
    readPods(c.core),
    reading('namespaces', () => c.core.listNamespace()),
    readWebhooks(c),
  ]);
  const optIn = optInSelector(webhooks);
  const input: StatusInput = {
    pools: pools.pools,
    claims,
    pods: podRecords(pods, namespaces.items, webhooks, ADDRESS_KEYS),
    namespaces: namespaces.items.map(namespaceInfo),
    optIn: optIn.selector,
  };
  const name = flags.get('pool');
  if (name !== undefined) {
    const pool = input.pools.find((p) => p.name === name);
    if (!pool)
      throw new Error(
        `no IPPool named "${name}"; the IPPools are: ${input.pools.map((p) => p.name).join(', ') || 'none'}`,
      );
    console.log(poolDetail(input, pool, Date.now()));
  } else {
    console.log(poolTable(input));
    console.log(`\n${namespaceTable(input)}`);
    console.log(`\n${defaultsTable(input, table)}`);
  }
  for (const note of [...pools.malformed, ...(optIn.note ? [optIn.note] : [])]) console.log(`\n${note}`);
  return 0;
}
