#!/usr/bin/env node
import { ConfigError } from '../config/pools-file.js';
import { parseServeArgs, UsageError, USAGE } from './args.js';
import { serve } from './serve.js';

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command !== 'serve') throw new UsageError(`unknown command "${command}"`);
  const opts = parseServeArgs(rest);
  const server = await serve(opts);
  console.log(`netpin serving ${server.url} (CNI ${opts.cni}, ${opts.ledger} ledger); CA bundle: ${server.caPath}`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await server.close();
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    // Bad flags and bad pool files are the operator's to fix: one line, no stack.
    if (e instanceof UsageError || e instanceof ConfigError) console.error(`netpin: ${e.message}`);
    else console.error(`netpin: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(e instanceof UsageError ? 2 : 1);
  },
);
