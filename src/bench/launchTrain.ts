import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { RunSpec } from './matrix.js';
import type { LaunchFn, LaunchResult } from './matrixExecutor.js';

/**
 * One run = one `experiments/train.ts` process (its own tfjs heap, backend and cost meter, so runs
 * cannot disturb each other's memory or timings), started with the same Node and tsx as the
 * benchmark itself.
 */

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const TRAIN_SCRIPT = join(PROJECT_ROOT, 'experiments', 'train.ts');
// tsx's loader by absolute URL: `--import tsx` would resolve from the child's cwd, which is the
// user's (relative --data paths keep their meaning) and need not be inside the project.
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

/** train.ts arguments of one run: positional method and category, then --out, --seed, --profile, extras. */
export function trainArgs(run: RunSpec, dir: string): string[] {
  const args = [run.method, run.category, '--out', dir, '--seed', String(run.seed)];
  if (run.profile !== null) args.push('--profile', run.profile);
  return [...args, ...run.args];
}

/** Children still running, so that a SIGINT/SIGTERM of the benchmark ends them too. */
const live = new Set<ChildProcess>();

export function killLiveRuns(signal: NodeJS.Signals = 'SIGTERM'): void {
  for (const c of live) c.kill(signal);
}

export function trainLauncher(opts: { env?: NodeJS.ProcessEnv; script?: string } = {}): LaunchFn {
  return (run, dir, logFile) =>
    new Promise<LaunchResult>((resolvePromise, reject) => {
      mkdirSync(dirname(logFile), { recursive: true });
      const fd = openSync(logFile, 'w');
      const child = spawn(process.execPath, ['--import', TSX_LOADER, opts.script ?? TRAIN_SCRIPT, ...trainArgs(run, dir)], {
        env: opts.env ?? process.env,
        stdio: ['ignore', fd, fd],
      });
      live.add(child);
      child.on('error', (e) => {
        live.delete(child);
        closeSync(fd);
        reject(e);
      });
      child.on('exit', (code, signal) => {
        live.delete(child);
        closeSync(fd);
        resolvePromise({ code, signal });
      });
    });
}
