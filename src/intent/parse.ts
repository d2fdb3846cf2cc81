import type { IPv4, IPv6 } from 'ipaddr.js';
import { familyOf, parseAddress, type DualAddress } from '../net/address.js';
import { shown } from '../net/shown.js';
import { isIntentKey, isRecordKey, KEYS, KNOWN_KEY_COUNT, nearestKey, PREFIX } from './keys.js';
import { isWhole, parseQuantity, wholeValue } from './quantity.js';
import { type Intent, type Problem, type Rate } from './types.js';

export interface ParsedIntent {
  intent: Intent;
  problems: Problem[];
}

// containerd refuses kubernetes.io/*-bandwidth outside 1k..1P bits/s
// (validateBandwidthIsReasonable, internal/cri/server/sandbox_run.go), and a rate
// outside it means nothing to the other CNIs either.
const MIN_RATE = 1000n;
const MAX_RATE = 10n ** 15n;
/** 1P written out in bits with a fraction of zeros is 30 characters; 64 leaves room for any sane spelling. */
const MAX_QUANTITY_CHARS = 64;
/** netpin.io/ips entries at most: the ordinals a StatefulSet may reserve (workloads.ts), and the pods preview lists. */
const MAX_LIST_ENTRIES = 10_000;
const POOL_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** Says what is wrong with one key: the annotation, why, and what to write instead. */
type Report = (key: string, message: string, fix: string) => void;
type Annotations = Record<string, string>;

/** Reads the netpin.io/ annotations of a pod or pod template. Syntax only: no CNI, no pool lookups. */
export function parseIntent(annotations: Record<string, string> | undefined): ParsedIntent {
  const intent: Intent = {};
  const problems: Problem[] = [];
  const a = annotations ?? {};
  const report: Report = (key, message, fix) => problems.push({ key, message, fix });
  if (!checkKeys(a, report)) return { intent, problems };
  readAddresses(a, intent, report);
  readEgress(a, intent, report);
  readShaping(a, intent, report);
  return { intent, problems };
}

/** Reports the netpin.io/ keys netpin does not have; false when there are too many to read on. */
function checkKeys(a: Annotations, report: Report): boolean {
  // One pass over the keys, whatever their number; past the keys netpin has, no key is read further.
  let prefixed = 0;
  const unknown: string[] = [];
  for (const key of Object.keys(a)) {
    if (!key.startsWith(PREFIX)) continue;
    prefixed++;
    if (!isIntentKey(key) && !isRecordKey(key) && unknown.length < KNOWN_KEY_COUNT) unknown.push(key);
  }
  if (prefixed > KNOWN_KEY_COUNT) {
    report(
      unknown[0]!,
      `is one of ${prefixed} netpin.io/ annotations, and netpin has only ${KNOWN_KEY_COUNT} keys; netpin read no further`,
      `remove the netpin.io/ annotations that are not netpin's. The keys are ${Object.values(KEYS).join(', ')}`,
    );
    return false;
  }
  for (const key of unknown) {
    report(
      key,
      `${shown(key)} is not a netpin key`,
      `did you mean "${nearestKey(key)}"? The keys are ${Object.values(KEYS).join(', ')}`,
    );
  }
  return true;
}

/** netpin.io/ip, netpin.io/ips and netpin.io/pool. */
function readAddresses(a: Annotations, intent: Intent, report: Report): void {
  const ip = a[KEYS.ip];
  if (ip !== undefined) {
    const r = parseDual(ip);
    if (typeof r === 'string')
      report(
        KEYS.ip,
        r,
        'write one address, or one IPv4 and one IPv6 address separated by a comma: 10.0.0.5 or 10.0.0.5,fd00::5',
      );
    else intent.ip = r;
  }

  const ips = a[KEYS.ips];
  if (ips !== undefined) {
    const r = parseList(ips);
    if (typeof r === 'string')
      report(
        KEYS.ips,
        r,
        'separate entries with ";" and the two families of one entry with ",": 10.0.0.5,fd00::5;10.0.0.6,fd00::6 (a single-family list may use commas)',
      );
    else intent.ips = r;
  }
  if (intent.ip && intent.ips) {
    report(
      KEYS.ips,
      'netpin.io/ip and netpin.io/ips are both set',
      'keep netpin.io/ip for one fixed address, or netpin.io/ips for a list',
    );
  }

  const pool = a[KEYS.pool];
  if (pool !== undefined) {
    const r = parsePoolNames(KEYS.pool, pool);
    if (typeof r === 'string')
      report(KEYS.pool, r, 'write an IPPool name, or one per family separated by a comma: web or web-v4,web-v6');
    else intent.pools = r;
  }
}

/** netpin.io/egress-ip, egress-pool and egress-mode. */
function readEgress(a: Annotations, intent: Intent, report: Report): void {
  const egress = a[KEYS.egressIp];
  const egressPool = a[KEYS.egressPool];
  const mode = a[KEYS.egressMode];
  if (mode !== undefined && mode !== 'snat' && mode !== 'eip') {
    report(
      KEYS.egressMode,
      `${shown(mode)} is not an egress mode`,
      'write snat (the default: pods share the egress IP) or eip (one pod, 1:1 NAT)',
    );
  } else if (mode !== undefined && egress === undefined && egressPool === undefined) {
    report(
      KEYS.egressMode,
      'netpin.io/egress-mode is set without netpin.io/egress-ip or netpin.io/egress-pool',
      'add netpin.io/egress-pool or netpin.io/egress-ip, or remove netpin.io/egress-mode',
    );
  }
  const egressMode = mode === 'eip' ? 'eip' : 'snat';
  if (egress !== undefined && egressPool !== undefined) {
    report(
      KEYS.egressPool,
      'netpin.io/egress-ip and netpin.io/egress-pool are both set',
      'keep netpin.io/egress-ip for a fixed egress address, or netpin.io/egress-pool to have one given',
    );
  } else if (egress !== undefined) {
    const r = parseDual(egress);
    if (typeof r === 'string')
      report(KEYS.egressIp, r, 'write one egress address per family: 203.0.113.10 or 203.0.113.10,2001:db8::10');
    else intent.egress = { ip: r, mode: egressMode };
  } else if (egressPool !== undefined) {
    const r = parsePoolNames(KEYS.egressPool, egressPool);
    if (typeof r === 'string')
      report(KEYS.egressPool, r, 'write the name of an egress IPPool, or one per family separated by a comma');
    else intent.egress = { pools: r, mode: egressMode };
  }
}

/** Rates, and netem's latency, jitter, loss and limit. */
function readShaping(a: Annotations, intent: Intent, report: Report): void {
  for (const [key, field] of [
    [KEYS.ingressRate, 'ingressRate'],
    [KEYS.egressRate, 'egressRate'],
  ] as const) {
    const v = a[key];
    if (v === undefined) continue;
    const r = parseRate(v);
    if (typeof r === 'string')
      report(
        key,
        r,
        'write bits per second as a Kubernetes quantity between 1k and 1P, such as 500k, 10M or 1G (no "bps", no spaces)',
      );
    else intent[field] = r;
  }

  for (const [key, field] of [
    [KEYS.latency, 'latencyMs'],
    [KEYS.jitter, 'jitterMs'],
  ] as const) {
    const v = a[key];
    if (v === undefined) continue;
    const n = parseNumber(v, 'ms');
    if (n === undefined) report(key, `${shown(v)} is not a duration in milliseconds`, 'write milliseconds: 3 or 3ms');
    else intent[field] = n;
  }

  const loss = a[KEYS.loss];
  if (loss !== undefined) {
    const n = parseNumber(loss, '%');
    if (n === undefined || n > 100)
      report(KEYS.loss, `${shown(loss)} is not a percentage from 0 to 100`, 'write a percentage: 20 or 20%');
    else intent.lossPercent = n;
  }

  const limit = a[KEYS.limit];
  if (limit !== undefined) {
    if (!/^\d+$/.test(limit.trim()) || Number(limit) < 1 || !Number.isSafeInteger(Number(limit)))
      report(
        KEYS.limit,
        `${shown(limit)} is not a whole number of packets`,
        'write the netem queue limit in packets: 1000',
      );
    else intent.limitPackets = Number(limit);
  }
}

/** One IPPool name, or one per family; a string says what is wrong. */
function parsePoolNames(key: string, text: string): string[] | string {
  const names = text.split(',').map((s) => s.trim());
  const bad = names.find((n) => !POOL_NAME.test(n));
  if (bad !== undefined) return `${shown(bad)} is not an IPPool name`;
  if (names.length > 2)
    return `${names.length} pools are named in ${key}; name one pool, or one per family (two at most)`;
  if (names.length === 2 && names[0] === names[1]) return `pool ${shown(names[0]!)} is named twice`;
  return names;
}

/** "10.0.0.5" or "10.0.0.5,fd00::5": at most one address per family. */
export function parseDual(text: string): DualAddress | string {
  const parts = text.split(',').map((s) => s.trim());
  if (parts.length > 2) return `${shown(text)} has ${parts.length} addresses; at most one per family is allowed`;
  const out: DualAddress = {};
  for (const p of parts) {
    const addr = parseAddress(p);
    if (!addr) return `${shown(p)} is not an IP address`;
    const family = familyOf(addr);
    if (out[family])
      return `${shown(text)} has two ${family === 'ipv4' ? 'IPv4' : 'IPv6'} addresses; at most one per family is allowed`;
    if (family === 'ipv4') out.ipv4 = addr as IPv4;
    else out.ipv6 = addr as IPv6;
  }
  return out;
}

function parseList(text: string): DualAddress[] | string {
  // A list longer than any workload could use is refused before it is read, address by address.
  const separator = text.includes(';') ? ';' : ',';
  if (text.split(separator, MAX_LIST_ENTRIES + 1).length > MAX_LIST_ENTRIES)
    return `more than ${MAX_LIST_ENTRIES} entries are listed, more than the replicas netpin pins`;
  let entries: DualAddress[];
  if (text.includes(';')) {
    entries = [];
    for (const part of text.split(';')) {
      if (part.trim() === '') return `${shown(text)} has an empty entry`;
      const r = parseDual(part);
      if (typeof r === 'string') return r;
      entries.push(r);
    }
  } else {
    const parts = text.split(',').map((s) => s.trim());
    const addrs = parts.map(parseAddress);
    const badIndex = addrs.findIndex((x) => x === undefined);
    if (badIndex >= 0) return `${shown(parts[badIndex]!)} is not an IP address`;
    const families = new Set(addrs.map((x) => familyOf(x!)));
    if (families.size === 1) {
      entries = addrs.map((x) => (familyOf(x!) === 'ipv4' ? { ipv4: x as IPv4 } : { ipv6: x as IPv6 }));
    } else if (parts.length === 2) {
      // Two addresses of different families are one dual-stack entry, as Kube-OVN reads them.
      const r = parseDual(text);
      if (typeof r === 'string') return r;
      entries = [r];
    } else {
      return `${shown(text)} mixes IPv4 and IPv6 without ";" between entries`;
    }
  }
  const shape = (e: DualAddress) => `${e.ipv4 ? 4 : ''}${e.ipv6 ? 6 : ''}`;
  if (entries.some((e) => shape(e) !== shape(entries[0]!))) return 'every entry must have the same families';
  const seen = new Set<string>();
  for (const e of entries) {
    for (const addr of [e.ipv4, e.ipv6]) {
      if (!addr) continue;
      const s = addr.toString();
      if (seen.has(s)) return `${s} is listed twice`;
      seen.add(s);
    }
  }
  return entries;
}

/**
 * A bit rate as a Kubernetes quantity within what containerd accepts; a string says what is wrong.
 * Read as containerd reads kubernetes.io/*-bandwidth (resource.ParseQuantity, untrimmed): " 10M" and
 * "10M\n" fail the pod sandbox, so they are refused here rather than trimmed.
 */
export function parseRate(text: string): Rate | string {
  // JSON's quotes show a space or a line break where plain ones would hide it.
  const quoted = shown(text);
  if (text !== text.trim()) return `${quoted} has white space around it, which a Kubernetes quantity may not have`;
  // Digits past what any rate needs would only cost time: a megabyte of them is seconds of BigInt arithmetic.
  if (text.length > MAX_QUANTITY_CHARS)
    return `${quoted} is longer than any rate netpin accepts (${MAX_QUANTITY_CHARS} characters at most)`;
  const q = parseQuantity(text);
  if (!q) return `${quoted} is not a Kubernetes quantity`;
  if (!isWhole(q)) return `${quoted} is not a whole number of bits per second`;
  const bits = wholeValue(q);
  if (bits < MIN_RATE || bits > MAX_RATE) {
    return `${quoted} (${bits} bit/s) is outside 1k..1P bits per second, the range containerd accepts`;
  }
  return { text, bitsPerSecond: bits };
}

function parseNumber(text: string, unit: string): number | undefined {
  const t = text.trim();
  const body = t.endsWith(unit) ? t.slice(0, -unit.length).trim() : t;
  if (!/^\d+(\.\d+)?$/.test(body)) return undefined;
  // Past 2^53 a number is no longer the one written (and 1e400 digits are Infinity): refused, not rounded.
  const n = Number(body);
  return n <= Number.MAX_SAFE_INTEGER ? n : undefined;
}
