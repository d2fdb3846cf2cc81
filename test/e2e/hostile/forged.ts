// Filled in by the work on issue 20.
import type { HostileEnv } from './env.js';

export function forgedReviews(_env: HostileEnv): void {}
