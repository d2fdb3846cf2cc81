// The watch half of an API server, in this process and on loopback, for unit tests of what a watch
// tells (the Kubernetes ledger's index of IPClaims and IPPools): the test writes each event, in the
// order it chooses. Lists do not come here: the ledger takes them from the claims API the test gives it.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node';
import { kubeConfigAt } from '../../harness/cluster.js';

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'ERROR';

export class WatchStandIn {
  private server: Server | undefined;
  /** The open watch of each resource (the last segment of its path: ipclaims, ippools). */
  private readonly streams = new Map<string, ServerResponse>();
  private readonly waiting = new Map<string, Array<() => void>>();
  /** Every watch request: its resource and the resourceVersion it watches from. */
  readonly requests: Array<{ resource: string; resourceVersion: string | null }> = [];
  kc!: KubeConfig;

  async start(): Promise<this> {
    this.server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const url = new URL(req.url ?? '/', 'http://stand-in');
      const match = /^\/apis\/netpin\.io\/v1alpha1\/(ipclaims|ippools)$/.exec(url.pathname);
      if (!match || url.searchParams.get('watch') !== 'true') {
        res.writeHead(404).end();
        return;
      }
      const resource = match[1]!;
      this.requests.push({ resource, resourceVersion: url.searchParams.get('resourceVersion') });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      this.streams.set(resource, res);
      for (const wake of this.waiting.get(resource) ?? []) wake();
      this.waiting.delete(resource);
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.kc = kubeConfigAt(`http://127.0.0.1:${(this.server.address() as AddressInfo).port}`);
    return this;
  }

  /** Resolves once a watch of `resource` is open (again, when `after` watches have been opened before). */
  async watching(resource: string, after = 0): Promise<void> {
    while (this.requests.filter((r) => r.resource === resource).length <= after)
      await new Promise<void>((r) => this.waiting.set(resource, [...(this.waiting.get(resource) ?? []), r]));
  }

  /** Sends one event on the open watch of `resource`. */
  send(resource: string, type: EventType, object: unknown): void {
    const stream = this.streams.get(resource);
    if (!stream) throw new Error(`no watch of ${resource} is open`);
    stream.write(`${JSON.stringify({ type, object })}\n`);
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r) ?? r(undefined));
  }
}
