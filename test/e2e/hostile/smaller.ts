// Filled in by the work on issue 20.
import type { HostileEnv } from './env.js';

export function smallerPoints(_env: HostileEnv): void {}
