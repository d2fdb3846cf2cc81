// Filled in by the work on issue 20.
import type { HostileEnv } from './env.js';

export function slowClients(_env: HostileEnv): void {}
