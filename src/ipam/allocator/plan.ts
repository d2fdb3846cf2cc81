import { KEYS } from '../../intent/keys.js';
import type { Intent, Problem } from '../../intent/types.js';
import { addressList, familyOf, type Address } from '../../net/address.js';
import type { ClaimIndex } from '../claim-index.js';
import { describePool, poolAdmitsNamespace, poolContains, type Pool } from '../pool.js';
import { allowedPools, familyName, roleOf, type Role } from './shared.js';
import type { FamilyPools, Plan } from './types.js';

/** The namespace a plan is made for, and the pools it may use of each role, for messages. */
interface Scope {
  index: ClaimIndex;
  namespace: string;
  labels: Record<string, string>;
  allowed(role: Role): string;
}

/** Named pools exist and select the namespace, families fit the pools, fixed addresses lie in usable pools. */
export function plan(index: ClaimIndex, intent: Intent, namespace: string, labels: Record<string, string>): Plan {
  const scope: Scope = {
    index,
    namespace,
    labels,
    // Only a refusal lists the pools: formatting every range is not worth doing per admitted pod.
    allowed(role) {
      const pools = allowedPools(index, labels).filter((p) => roleOf(p) === role);
      return pools.length ? pools.map(describePool).join('; ') : 'none';
    },
  };
  const problems: Problem[] = [];
  const named = resolve(scope, intent.pools ?? [], 'pod', KEYS.pool, problems);
  const egress = resolve(scope, intent.egress?.pools ?? [], 'egress', KEYS.egressPool, problems);
  const planned: Plan = {
    byFamily: named.byFamily,
    pools: named.pools,
    egressByFamily: egress.byFamily,
    egressPools: egress.pools,
    problems,
    unknown: named.unknown || egress.unknown,
  };
  if (problems.length) return planned;
  placeFixed(scope, intent, planned);
  placeFixedEgress(scope, intent, planned);
  return planned;
}

/** Pools named by `key`: they exist, have the role, select the namespace, and serve one family each. */
function resolve(scope: Scope, names: string[], role: Role, key: string, problems: Problem[]) {
  const { namespace } = scope;
  const byFamily: FamilyPools = {};
  const pools: Pool[] = [];
  let unknown = false;
  const refuse = (message: string, fix: string) => problems.push({ key, message, fix });
  for (const name of names) {
    const pool = scope.index.pool(name);
    if (!pool) {
      unknown = true;
      refuse(`IPPool ${name} does not exist`, `name a pool namespace ${namespace} may use: ${scope.allowed(role)}`);
      continue;
    }
    if (roleOf(pool) !== role) {
      if (role === 'pod')
        refuse(
          `IPPool ${name} is an egress pool (spec.egress): its addresses are never pod addresses`,
          `name a pod pool (${scope.allowed(role)}), or ask for an egress address with netpin.io/egress-pool: ${name}`,
        );
      else
        refuse(
          `IPPool ${name} is a pod pool: it has no spec.egress, and its addresses are never egress addresses`,
          `name an egress pool (${scope.allowed(role)}), or add spec.egress to a pool of its own`,
        );
      continue;
    }
    if (!poolAdmitsNamespace(pool, scope.labels)) {
      refuse(
        `IPPool ${name} does not select namespace ${namespace} (spec.namespaceSelector)`,
        `name a pool namespace ${namespace} may use (${scope.allowed(role)}), or widen the namespaceSelector of IPPool ${name}`,
      );
      continue;
    }
    for (const f of pool.families) {
      if (byFamily[f])
        refuse(
          `IPPools ${byFamily[f]!.name} and ${name} both serve ${familyName(f)}`,
          'name one pool, or one pool per family',
        );
      byFamily[f] = pool;
    }
    pools.push(pool);
  }
  return { byFamily, pools, unknown };
}

/** Fixed pod addresses: each in the pool named for its family, or in a pod pool the namespace may use. */
function placeFixed(scope: Scope, intent: Intent, planned: Plan): void {
  const fixed: Array<[string, Address]> = [];
  if (intent.ip) for (const a of addressList(intent.ip)) fixed.push([KEYS.ip, a]);
  for (const e of intent.ips ?? []) for (const a of addressList(e)) fixed.push([KEYS.ips, a]);
  for (const [key, addr] of fixed) {
    const family = familyOf(addr);
    const named = planned.byFamily[family];
    if (intent.pools && !named) {
      planned.problems.push({
        key,
        message: `asks for an ${familyName(family)} address, but IPPool ${intent.pools.join(', ')} has no ${familyName(family)} range`,
        fix: `name an ${familyName(family)} pool too (netpin.io/pool: ${intent.pools[0]},<${familyName(family)} pool>), or drop the ${familyName(family)} address`,
      });
    } else if (named && !poolContains(named, addr)) {
      planned.problems.push({
        key,
        message: `${addr.toString()} lies outside IPPool ${describePool(named)}`,
        fix: `choose an address inside IPPool ${named.name}, or name the pool that holds it`,
      });
    } else if (!named) placeInHome(scope, key, addr, planned);
  }
}

/** A fixed pod address no pool was named for: the pool that holds it must be a pod pool the namespace may use. */
function placeInHome(scope: Scope, key: string, addr: Address, planned: Plan): void {
  const { namespace } = scope;
  const home = scope.index.poolOf(addr);
  const refuse = (message: string, where = 'a pool') =>
    planned.problems.push({
      key,
      message,
      fix: `choose an address in ${where} namespace ${namespace} may use: ${scope.allowed('pod')}`,
    });
  if (!home) {
    planned.unknown = true;
    refuse(`${addr.toString()} lies outside every IPPool`);
  } else if (home.egress) {
    refuse(
      `${addr.toString()} lies in IPPool ${home.name}, an egress pool: an egress address is never a pod address`,
      'a pod pool',
    );
  } else if (!poolAdmitsNamespace(home, scope.labels)) {
    refuse(
      `${addr.toString()} lies in IPPool ${home.name}, which does not select namespace ${namespace} (spec.namespaceSelector)`,
    );
  } else if (!planned.pools.includes(home)) planned.pools.push(home);
}

/** A fixed egress address: where it lies in a pool, an egress pool the namespace may use. */
function placeFixedEgress(scope: Scope, intent: Intent, planned: Plan): void {
  const { namespace } = scope;
  for (const addr of intent.egress?.ip ? addressList(intent.egress.ip) : []) {
    // A fixed egress address in an egress pool is claimed like any other; outside every pool it is
    // the operator's to keep apart (the dialects say where that is not enough).
    const home = scope.index.poolOf(addr);
    if (!home) continue;
    if (!home.egress) {
      planned.problems.push({
        key: KEYS.egressIp,
        message: `${addr.toString()} lies in IPPool ${home.name}, a pod pool: an egress address is never a pod address`,
        fix: `choose an address of an egress pool (spec.egress) namespace ${namespace} may use: ${scope.allowed('egress')}`,
      });
    } else if (!poolAdmitsNamespace(home, scope.labels)) {
      planned.problems.push({
        key: KEYS.egressIp,
        message: `${addr.toString()} lies in egress IPPool ${home.name}, which does not select namespace ${namespace} (spec.namespaceSelector)`,
        fix: `choose an egress address namespace ${namespace} may use: ${scope.allowed('egress')}`,
      });
    } else if (!planned.egressPools.includes(home)) planned.egressPools.push(home);
  }
}
