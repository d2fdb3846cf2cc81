// Addresses: the vocabulary intent, the dialects and ipam share. A leaf: it imports only ipaddr.js and shown().
import ipaddr, { type IPv4, type IPv6 } from 'ipaddr.js';
import { shown } from './shown.js';

export type Family = 'ipv4' | 'ipv6';
export type Address = IPv4 | IPv6;

/** At most one address per family: the shape of one pod's IPs. */
export interface DualAddress {
  ipv4?: IPv4;
  ipv6?: IPv6;
}

/**
 * Addresses as unsigned integers, so that ranges, offsets and the free index
 * work the same for both families. Conversion goes through ipaddr.js byte arrays.
 */
export function toBigInt(addr: Address): bigint {
  let n = 0n;
  for (const byte of addr.toByteArray()) n = (n << 8n) | BigInt(byte);
  return n;
}

export function fromBigInt(n: bigint, family: Family): Address {
  const size = family === 'ipv4' ? 4 : 16;
  const bytes = new Array<number>(size);
  for (let i = size - 1; i >= 0; i--) {
    bytes[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return ipaddr.fromByteArray(bytes) as Address;
}

export function familyOf(addr: Address): Family {
  return addr.kind() === 'ipv4' ? 'ipv4' : 'ipv6';
}

/**
 * Parses one address; IPv4-mapped IPv6 and zone ids are refused rather than guessed at. IPv4 is dotted
 * decimal only, four parts without leading zeros, alone or as the tail of an IPv6 address: ipaddr.js
 * also reads inet_aton's forms ("169082889", "0xa0b0c0d", "10.1", "0x0a.1.2.3", "010.0.0.1"), which
 * Kubernetes and the CNIs refuse, and which would let one address be written many ways.
 */
export function parseAddress(text: string): Address | undefined {
  const trimmed = text.trim();
  if (!ipaddr.isValid(trimmed) || trimmed.includes('%')) return undefined;
  const colon = trimmed.lastIndexOf(':');
  if (colon < 0 && !ipaddr.IPv4.isValidFourPartDecimal(trimmed)) return undefined;
  const tail = trimmed.slice(colon + 1);
  if (colon >= 0 && tail.includes('.') && !ipaddr.IPv4.isValidFourPartDecimal(tail)) return undefined;
  const addr = ipaddr.parse(trimmed) as Address;
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) return undefined;
  // Rebuilt from its bytes, an IPv4 address's octets array has no spare room: 120 bytes instead of 224, and
  // the ledger keeps one per claim (tens of thousands).
  return addr.kind() === 'ipv4' ? (ipaddr.fromByteArray(addr.toByteArray()) as IPv4) : addr;
}

/** An inclusive range of one family. */
export interface AddressRange {
  family: Family;
  first: bigint;
  last: bigint;
}

/**
 * Parses `10.0.0.0/24`, `10.0.0.10-10.0.0.20` or a single address into a range.
 * `dropNetworkAndBroadcast` says whether the addresses of a CIDR that pods cannot use are dropped:
 * network and broadcast of IPv4 wider than /31, the subnet-router anycast of IPv6 wider than /127.
 */
export function parseRange(text: string, dropNetworkAndBroadcast: boolean): AddressRange | string {
  const t = text.trim();
  if (t.includes('/')) {
    let cidr: [Address, number];
    try {
      cidr = ipaddr.parseCIDR(t) as [Address, number];
    } catch {
      return `${shown(t)} is not a CIDR`;
    }
    const [addr, bits] = cidr;
    const family = familyOf(addr);
    if (parseAddress(t.slice(0, t.indexOf('/'))) === undefined) return `${shown(t)} is not a CIDR`;
    const width = family === 'ipv4' ? 32 : 128;
    const hostBits = BigInt(width - bits);
    const base = (toBigInt(addr) >> hostBits) << hostBits;
    if (base !== toBigInt(addr)) {
      return `${shown(t)} has host bits set; the network is ${fromBigInt(base, family).toString()}/${bits}`;
    }
    let first = base;
    let last = base + (1n << hostBits) - 1n;
    if (dropNetworkAndBroadcast && family === 'ipv4' && bits < 31) {
      first += 1n;
      last -= 1n;
    } else if (dropNetworkAndBroadcast && family === 'ipv6' && bits < 127) {
      // The all-zeros address of an IPv6 subnet is the subnet-router anycast address (RFC 4291 2.6.1).
      first += 1n;
    }
    return { family, first, last };
  }
  const dash = t.indexOf('-');
  if (dash >= 0) {
    const a = parseAddress(t.slice(0, dash));
    const b = parseAddress(t.slice(dash + 1));
    if (!a || !b) return `${shown(t)} is not a range of two addresses`;
    if (familyOf(a) !== familyOf(b)) return `${shown(t)} mixes IPv4 and IPv6`;
    const first = toBigInt(a);
    const last = toBigInt(b);
    if (first > last) return `${shown(t)} ends before it starts`;
    return { family: familyOf(a), first, last };
  }
  const single = parseAddress(t);
  if (!single) return `${shown(t)} is not an address, a range or a CIDR`;
  const n = toBigInt(single);
  return { family: familyOf(single), first: n, last: n };
}

/** Whether every address of `inner` lies in `outer`: how a CNI's own pool or subnet backs a netpin range. */
export function rangeWithin(inner: AddressRange, outer: AddressRange): boolean {
  return inner.family === outer.family && outer.first <= inner.first && inner.last <= outer.last;
}

/** The addresses two ranges share, if any. */
export function rangeOverlap(x: AddressRange, y: AddressRange): AddressRange | undefined {
  if (x.family !== y.family) return undefined;
  const first = x.first > y.first ? x.first : y.first;
  const last = x.last < y.last ? x.last : y.last;
  return first <= last ? { family: x.family, first, last } : undefined;
}

export function formatRange(r: AddressRange): string {
  const a = fromBigInt(r.first, r.family).toString();
  return r.first === r.last ? a : `${a}-${fromBigInt(r.last, r.family).toString()}`;
}

export function familiesOf(addr: DualAddress): Family[] {
  const out: Family[] = [];
  if (addr.ipv4) out.push('ipv4');
  if (addr.ipv6) out.push('ipv6');
  return out;
}

/** Renders `10.0.0.5,fd00::5` in the order CNIs expect: IPv4 first. */
export function formatDual(addr: DualAddress): string {
  return addressList(addr)
    .map((a) => a.toString())
    .join(',');
}

export function addressList(addr: DualAddress): Address[] {
  const out: Address[] = [];
  if (addr.ipv4) out.push(addr.ipv4);
  if (addr.ipv6) out.push(addr.ipv6);
  return out;
}
