// Child processes of the tests, the benchmarks and the local cluster: Node programs started from this
// repository, ready once their output says so.
import { spawn, type ChildProcess } from 'node:child_process';

export interface Child {
  name: string;
  child: ChildProcess;
  /** What the process wrote to stdout and stderr, for failure messages. */
  output(): string;
  /** SIGKILL: no goodbye, as a crashed process; resolves when it has exited. */
  kill(): Promise<void>;
  /** SIGTERM, then SIGKILL after a grace period; resolves when it has exited. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts `node <args>` (the same Node as the runner) and resolves once stdout matches `ready`,
 * with the match. Stops waiting, and the child, after `timeoutMs`. A `launcher` (a memory
 * cgroup's) runs first and execs node, so that the pid is node's.
 */
export async function startChild(
  name: string,
  nodeArgs: string[],
  ready: RegExp,
  opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; launcher?: string[] } = {},
): Promise<{ proc: Child; match: RegExpExecArray }> {
  const [bin, ...pre] = [...(opts.launcher ?? []), process.execPath];
  const child = spawn(bin!, [...pre, ...nodeArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...opts.env, NO_PROXY: '127.0.0.1,localhost' },
  });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const proc: Child = {
    name,
    child,
    output: () => out,
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not start in ${opts.timeoutMs ?? 30_000} ms:\n${out}`));
    }, opts.timeoutMs ?? 30_000);
    const onData = () => {
      const m = ready.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve(m);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code ?? signal}) before it was ready:\n${out}`));
    });
  });
  return { proc, match };
}

/** Peak resident set size of a live process in bytes (VmHWM), read from /proc. */

/** What a command that ran to its end printed, and its exit code. */
export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end with exactly `env`, collecting what it prints: the CLI as an operator's shell runs it. */
export function runCommand(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
