// An API server that takes connections and reads requests but never answers, as a frozen kube-apiserver does.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node';
import { kubeConfigAt } from './cluster.js';

export interface FrozenApiServer {
  kc: KubeConfig;
  /** What was asked of it, and whether the client has given up on each (closed the connection). */
  seen: Array<{ method: string; url: string; closed: boolean }>;
  close(): Promise<void>;
}

export async function frozenApiServer(): Promise<FrozenApiServer> {
  const seen: FrozenApiServer['seen'] = [];
  const server: Server = createServer((req, res) => {
    const entry = { method: req.method ?? '', url: req.url ?? '', closed: false };
    seen.push(entry);
    res.on('close', () => (entry.closed = true));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    kc: kubeConfigAt(`http://127.0.0.1:${port}`),
    seen,
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
