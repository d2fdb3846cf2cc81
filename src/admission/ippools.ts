import { formatRange } from '../net/address.js';
import { describeOwner } from '../ipam/claim.js';
import { compilePool, poolContains, poolOverlap, PoolSpecError, type IPPoolObject } from '../ipam/pool.js';
import type { Admit } from './context.js';
import { allowed, refused, type Verdict } from './respond.js';
import type { AdmissionRequest } from './review.js';

/**
 * IPPool CREATE, UPDATE and DELETE: a pool must parse, must not share an address
 * with another pool (the ledger keys claims by address), and must not lose an
 * address that is held.
 */
export async function validatePool(req: AdmissionRequest, admit: Admit): Promise<Verdict> {
  const { index } = admit;
  const name = req.name ?? req.object?.metadata?.name ?? req.oldObject?.metadata?.name ?? '';
  if (index.pool(name)?.shared && req.operation !== 'DELETE') return sharedName(name);
  const held = [...index.allClaims()].filter((c) => c.pool === name);
  const heldText = (n: number) =>
    held
      .slice(0, n)
      .map((c) => `${c.ip.toString()} (${describeOwner(c.owner)})`)
      .join(', ');
  // The pool's own problems: each message names the pool, and no CNI is part of them.
  const whole = (key: string, message: string, fix: string) => refused([{ key, message, fix }], [], { keyless: true });

  if (req.operation === 'DELETE') {
    if (held.length === 0) return allowed();
    return whole(
      'metadata.name',
      `IPPool ${name} still has ${heldCount(held.length)}: ${heldText(3)}`,
      'delete the workloads that hold them first; netpin releases their addresses when they are gone',
    );
  }
  if (req.operation !== 'CREATE' && req.operation !== 'UPDATE') return allowed();

  let pool;
  try {
    pool = compilePool(req.object as unknown as IPPoolObject);
  } catch (e) {
    if (!(e instanceof PoolSpecError)) throw e;
    return whole(
      'spec',
      e.message,
      'write spec.cidr as a network (10.0.0.0/24), spec.ranges as addresses, networks or first-last ranges (10.0.0.10-10.0.0.20)',
    );
  }
  if (pool.families.every((f) => pool.capacity[f] === 0n)) {
    return whole(
      'spec.exclude',
      `IPPool ${name} has no usable address once spec.exclude is applied`,
      'widen spec.cidr or spec.ranges, or exclude less',
    );
  }
  for (const other of index.allPools()) {
    if (other.name === name) continue;
    const shared = poolOverlap(pool, other);
    if (shared) {
      return whole(
        'spec.cidr/ranges',
        `IPPool ${name} overlaps ${other.shared ? "the ClusterSet's shared " : ''}IPPool ${other.name} at ${formatRange(shared)}`,
        'pools must not share addresses: move the range, or add it to spec.exclude of one of them',
      );
    }
  }
  const lost = held.filter((c) => !poolContains(pool, c.ip));
  if (lost.length > 0) {
    const first = lost[0]!;
    return whole(
      'spec.cidr',
      `IPPool ${name}: the change would drop ${heldCount(lost.length)}, among them ${first.ip.toString()} (${describeOwner(first.owner)})`,
      'keep those addresses in spec.cidr/spec.ranges and out of spec.exclude until their workloads are gone',
    );
  }
  // The CNI hands out addresses too: a pinned address it may give to another pod, or refuses, is no promise.
  const { dialect } = admit;
  const native = dialect.nativePools && (await admit.cluster.nativeObjects(dialect.nativePools));
  const backing = dialect.checkPool(pool, native);
  if (backing.problems.length) return refused(backing.problems, [], { of: `IPPool ${name}` });
  return allowed(backing.warnings.map((w) => `netpin: ${w}`));
}

/** This cluster's IPPool under a ClusterSet pool's name would be a second ledger for one name. */
function sharedName(name: string): Verdict {
  return refused(
    [
      {
        key: 'metadata.name',
        message: `IPPool ${name} is a pool the ClusterSet shares, kept in its broker`,
        fix: "give this cluster's IPPool another name; change the shared pool in the broker",
      },
    ],
    [],
    { keyless: true },
  );
}

function heldCount(n: number): string {
  return n === 1 ? '1 held address' : `${n} held addresses`;
}
