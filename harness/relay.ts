// A TCP relay in front of the API server that a test can cut, as a network partition cuts a replica
// off: TLS passes through untouched, so a client sees nothing of the relay but the cut.
import * as fsp from 'node:fs/promises';
import * as net from 'node:net';
import type { ControlPlane } from './controlplane.js';

export interface Relay {
  /** The admin kubeconfig, through the relay. */
  kubeconfigPath: string;
  /** Drops every connection through the relay, and each new one until mend(). */
  cut(): void;
  mend(): void;
  close(): Promise<void>;
}

export async function startRelay(cp: Pick<ControlPlane, 'url' | 'kubeconfigPath'>): Promise<Relay> {
  const target = new URL(cp.url);
  const sockets = new Set<net.Socket>();
  let cut = false;
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  const server = net.createServer((client) => {
    track(client);
    if (cut) {
      client.destroy();
      return;
    }
    const upstream = net.connect(Number(target.port), target.hostname);
    track(upstream);
    client.pipe(upstream).pipe(client);
    // One end gone, the other goes too, as with a connection reset.
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  const kubeconfigPath = `${cp.kubeconfigPath}.relay-${port}`;
  const kubeconfig = await fsp.readFile(cp.kubeconfigPath, 'utf8');
  await fsp.writeFile(kubeconfigPath, kubeconfig.replaceAll(cp.url, `https://127.0.0.1:${port}`), { mode: 0o600 });
  const cutAll = () => {
    cut = true;
    for (const s of sockets) s.destroy();
  };
  return {
    kubeconfigPath,
    cut: cutAll,
    mend: () => (cut = false),
    async close() {
      cutAll();
      await new Promise((r) => server.close(r));
    },
  };
}
