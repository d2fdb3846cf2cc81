// The Reflector against a real kube-apiserver, on IPClaims: a paged list, then the watch; a list
// again after the watch's ERROR; a quiet watch kept.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Watch } from '@kubernetes/client-node';
import { pino } from 'pino';
import { startControlPlane, sleep, type ControlPlane } from '../../harness/controlplane.js';
import { applyCrds, clients, waitFor, type Clients } from '../../harness/cluster.js';
import { loadKubeConfig } from '../../src/cluster/kube.js';
import { toObject, type IPClaimObject } from '../../src/cluster/kube-ledger.js';
import { Reflector, type PagedList } from '../../src/cluster/reflector.js';
import { parseAddress } from '../../src/net/address.js';

const CLAIMS = { group: 'netpin.io', version: 'v1alpha1', plural: 'ipclaims' };
const PATH = '/apis/netpin.io/v1alpha1/ipclaims';

let cp: ControlPlane;
let c: Clients;

beforeAll(async () => {
  cp = await startControlPlane({ controllers: ['namespace-controller'] });
  c = clients(cp.kubeconfigPath);
  await applyCrds(c);
});

afterAll(async () => {
  await cp?.stop();
});

afterEach(async () => {
  await c.custom.deleteCollectionClusterCustomObject(CLAIMS);
});

/** Stores a claim on 10.0.0.<n>; its object is named `p.10-0-0-<n>`. */
async function createClaim(n: number): Promise<string> {
  const body = toObject({
    pool: 'p',
    ip: parseAddress(`10.0.0.${n}`)!,
    owner: { kind: 'Pod', namespace: 'ns', name: `pod-${n}` },
    createdAt: 0,
  });
  await c.custom.createClusterCustomObject({ ...CLAIMS, body });
  return body.metadata!.name!;
}

function listPage(limit: number): PagedList<IPClaimObject> {
  return async (next) => {
    const list = (await c.custom.listClusterCustomObject({ ...CLAIMS, limit, _continue: next })) as {
      items: IPClaimObject[];
      metadata: { continue?: string; resourceVersion: string };
    };
    return { items: list.items, continue: list.metadata.continue, resourceVersion: list.metadata.resourceVersion };
  };
}

interface Reflected {
  reflector: Reflector<IPClaimObject>;
  /** "<how> <name>", for every object seen or deleted, in order. */
  events: string[];
  /** The keys of each complete list. */
  lists: string[][];
  pages: number;
  warnings: Array<{ watch?: string; err?: string }>;
}

/** A Reflector of IPClaims, keyed by name, that records what it is told. */
function reflect(list: PagedList<IPClaimObject>): Reflected {
  const name = (obj: IPClaimObject) => obj.metadata?.name ?? '';
  const log = pino({ level: 'warn' }, { write: (line: string) => void r.warnings.push(JSON.parse(line)) });
  const r: Reflected = {
    reflector: new Reflector<IPClaimObject>(
      loadKubeConfig(cp.kubeconfigPath),
      {
        what: 'ipclaims',
        path: PATH,
        list: (next) => {
          r.pages++;
          return list(next);
        },
        key: name,
        seen: (obj, how) => r.events.push(`${how} ${name(obj)}`),
        deleted: (obj) => r.events.push(`DELETED ${name(obj)}`),
        listed: (keys) => r.lists.push([...keys].sort()),
      },
      log,
      100,
    ),
    events: [],
    lists: [],
    pages: 0,
    warnings: [],
  };
  return r;
}

/**
 * Until the API server's watch cache of IPClaims is up, a watch from a resourceVersion it no longer
 * has is refused with 429 rather than answered with the ERROR event (410 Gone) a test wants.
 */
async function watchCacheReady(): Promise<void> {
  await waitFor('a watch of IPClaims from resourceVersion 1 to end in 410 Gone', async () => {
    let first!: (code: number | undefined) => void;
    const code = new Promise<number | undefined>((resolve) => (first = resolve));
    const request = await new Watch(loadKubeConfig(cp.kubeconfigPath)).watch(
      PATH,
      { resourceVersion: '1' },
      (type: string, obj: { code?: number }) => first(type === 'ERROR' ? obj.code : undefined),
      () => first(undefined),
    );
    const answer = await code;
    request.abort();
    return answer === 410;
  });
}

describe('a Reflector', () => {
  it('lists a page at a time before start resolves, then tells of every change the watch brings', async () => {
    const names = [];
    for (let n = 1; n <= 5; n++) names.push(await createClaim(n));
    const r = reflect(listPage(2));
    await r.reflector.start();
    try {
      expect(r.pages).toBe(3);
      expect(r.events.sort()).toEqual(names.map((n) => `LISTED ${n}`).sort());
      expect(r.lists).toEqual([names.sort()]);

      r.events.length = 0;
      const added = await createClaim(6);
      await c.custom.patchClusterCustomObject({
        ...CLAIMS,
        name: added,
        body: [
          { op: 'add', path: '/metadata/annotations', value: { 'netpin.io/admitted-at': new Date().toISOString() } },
        ],
      });
      await c.custom.deleteClusterCustomObject({ ...CLAIMS, name: added });
      await waitFor('the watch to bring the delete', async () => r.events.length === 3);
      expect(r.events).toEqual([`ADDED ${added}`, `MODIFIED ${added}`, `DELETED ${added}`]);
      expect(r.warnings).toEqual([]);
    } finally {
      await r.reflector.stop();
    }
  });

  it('lists again after an ERROR from the watch (410 Gone), and then names only what is still there', async () => {
    const [kept, gone] = [await createClaim(1), await createClaim(2)];
    await watchCacheReady();
    const real = listPage(500);
    let lists = 0;
    const r = reflect(async (next) => {
      // Deleted after the first list and before the second, while nothing watched.
      if (next === undefined && ++lists === 2) await c.custom.deleteClusterCustomObject({ ...CLAIMS, name: gone });
      const page = await real(next);
      // The first list says resourceVersion 1, long compacted away, as if its watch had fallen that far behind.
      return lists === 1 ? { ...page, resourceVersion: '1' } : page;
    });
    await r.reflector.start();
    try {
      await waitFor('a second list', async () => r.lists.length === 2);
      expect(r.lists).toEqual([[kept, gone].sort(), [kept]]);
      expect(r.warnings).toHaveLength(1);
      expect(r.warnings[0]).toMatchObject({ watch: 'ipclaims', err: expect.stringContaining('"code":410') });
      // No watch saw the delete: the list alone tells the owner, which forgets what it did not name.
      expect(r.events).toEqual([`LISTED ${kept}`, `LISTED ${gone}`, `LISTED ${kept}`]);
    } finally {
      await r.reflector.stop();
    }
  });

  it('keeps watching through a quiet spell longer than the watch timeout, without listing again', async () => {
    const r = reflect(listPage(500));
    await r.reflector.start();
    try {
      // client-node's Watch gives up on a connection silent for 30 s; no bookmark comes that soon.
      await sleep(33_000);
      expect(r.pages).toBe(1);
      expect(r.warnings).toEqual([]);
      const added = await createClaim(7);
      await waitFor('the watch to bring the new claim', async () => r.events.includes(`ADDED ${added}`));
      expect(r.pages).toBe(1);
    } finally {
      await r.reflector.stop();
    }
  });
});
