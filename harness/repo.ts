// This repository's files and build scripts, wherever the harness runs from (sources or dist/).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

let repoRoot: string | undefined;

/**
 * An absolute path in this repository. Found by walking up to package.json rather than fixed
 * relative to this file, so that it is right both for the sources (vitest) and for their
 * compiled copies under dist/ (`npm run cluster` runs dist/scripts/cluster.js).
 */
export function repoPath(...parts: string[]): string {
  if (repoRoot === undefined) {
    let dir = path.dirname(fileURLToPath(import.meta.url));
    while (!fs.existsSync(path.join(dir, 'package.json'))) {
      const up = path.dirname(dir);
      if (up === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
      dir = up;
    }
    repoRoot = dir;
  }
  return path.join(repoRoot, ...parts);
}

/**
 * Runs a build script of this repository (stderr inherited, stdout echoed) with `args`, and returns
 * the bin dir it prints on its last line, once every `required` file is found there.
 */
export function runBuildScript(script: string, required: string[], args: string[] = []): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const child = spawn('bash', [script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      process.stderr.write(chunk);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code !== 0) {
        reject(new Error(`${script} failed (exit ${code ?? signal})`));
        return;
      }
      const lines = out
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l.length > 0);
      const binDir = lines[lines.length - 1];
      const missing = required.filter((f) => !binDir || !fs.existsSync(path.join(binDir, f)));
      if (!binDir || missing.length > 0) {
        reject(new Error(`${script} printed no usable bin dir (missing ${missing.join(', ')}):\n${out}`));
        return;
      }
      resolve(binDir);
    });
  });
}
