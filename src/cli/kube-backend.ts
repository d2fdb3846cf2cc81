import type { Logger } from 'pino';
import type { ServeOptions } from './args.js';
import type { Backend } from './serve.js';

export async function kubeBackend(_opts: ServeOptions, _log: Logger): Promise<Backend> {
  throw new Error('--ledger kube is not built yet');
}
