// A loopback stand-in for the chart's Service in front of netpin's replicas: the API server's
// webhook calls go to one address, and each TCP connection goes to the next ready replica in turn,
// as kube-proxy spreads connections over a Service's endpoints. A replica leaves the rotation only
// when the harness says so (as the endpoints controller removes a pod that is no longer ready), so
// connections made to a killed replica before that fail, as they would in a cluster.
import * as net from 'node:net';

export interface Service {
  /** https://127.0.0.1:PORT, to register as the webhooks' URL. */
  url: string;
  port: number;
  /** The replicas' ports that take new connections, in rotation order. */
  setBackends(ports: number[]): void;
  /** Connections handed to each port so far, and those whose backend refused or broke them. */
  stats(): { connections: Map<number, number>; failed: number };
  close(): Promise<void>;
}

export async function startService(): Promise<Service> {
  let backends: number[] = [];
  let next = 0;
  let failed = 0;
  const connections = new Map<number, number>();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    if (backends.length === 0) {
      failed++;
      client.destroy();
      return;
    }
    const port = backends[next++ % backends.length]!;
    connections.set(port, (connections.get(port) ?? 0) + 1);
    const upstream = net.connect({ host: '127.0.0.1', port });
    sockets.add(upstream);
    upstream.once('close', () => sockets.delete(upstream));
    let broken = false;
    const fail = () => {
      if (!broken) failed++;
      broken = true;
      client.destroy();
      upstream.destroy();
    };
    upstream.on('error', fail);
    client.on('error', () => upstream.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}`,
    port,
    setBackends(ports) {
      backends = [...ports];
    },
    stats: () => ({ connections: new Map(connections), failed }),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
