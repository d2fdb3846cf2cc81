#!/usr/bin/env node
import { parseServeArgs, UsageError, USAGE } from './args.js';

/** A command: runs to its exit status. Each loads its own module, so `serve` never loads the operator tools. */
type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  serve: runServe,
  status: async (argv) => (await import('./status.js')).runStatus(argv),
  doctor: async (argv) => (await import('./doctor.js')).runDoctor(argv),
  preview: async (argv) => (await import('./preview.js')).preview(argv),
  clusterset: async (argv) => (await import('./clusterset.js')).runClusterSet(argv),
};

async function runServe(argv: string[]): Promise<number> {
  const opts = parseServeArgs(argv);
  const { serve } = await import('../server/serve.js');
  const server = await serve(opts);
  // Before the serving line, which callers wait for: by then they can read this one too.
  if (server.metricsUrl) console.log(`netpin metrics on ${server.metricsUrl}`);
  console.log(`netpin serving ${server.url} (CNI ${opts.cni}, ${opts.ledger} ledger); CA bundle: ${server.caPath}`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await server.close();
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(USAGE);
    return command === undefined ? 2 : 0;
  }
  const run = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (!run) throw new UsageError(`unknown command "${command}"`);
  return run(rest);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    // Bad flags and bad pool files are the operator's to fix: one line, no stack, and the same words either way.
    console.error(`netpin: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(e instanceof UsageError ? 2 : 1);
  },
);
