import { rmSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { ConfigError } from '../errors.js';
import { writeJsonAtomic } from '../train/runFolder.js';
import { runFolderState, type RunFolderState, type RunSpec } from './matrix.js';

/**
 * Runs a matrix: completed runs are skipped, the rest go to a bounded pool of workers, each run an
 * independent process started by `launch` (launchTrain.ts in the CLI, a fake in tests). A run
 * that fails is retried up to `maxAttempts` times in all; what still fails is listed in the
 * status file and the outcome. The status file is rewritten atomically after every change, so a
 * reader (or a killed-and-restarted benchmark) never sees a torn one.
 */

export type RunState = 'pending' | 'running' | 'complete' | 'skipped' | 'failed';

export interface RunStatus {
  id: string;
  state: RunState;
  attempts: number;
  /** Exit code (or signal name) of the last attempt. */
  lastExit: string | null;
  /** Log file of the last attempt. */
  log: string | null;
  seconds: number | null;
}

export interface MatrixStatus {
  schema: 'adbench-bench-status/1';
  root: string;
  shard: string | null;
  startedAt: string;
  updatedAt: string;
  finished: boolean;
  counts: Record<RunState, number>;
  runs: RunStatus[];
}

export interface LaunchResult {
  /** Process exit code; null when it was ended by a signal. */
  code: number | null;
  signal: string | null;
}

/** Starts one attempt of one run, writing its run folder `dir` and its output to `logFile`. */
export type LaunchFn = (run: RunSpec, dir: string, logFile: string, attempt: number) => Promise<LaunchResult>;

export interface ExecuteOptions {
  root: string;
  runs: readonly RunSpec[];
  launch: LaunchFn;
  /** Parallel runs (>= 1). */
  workers?: number;
  /** Attempts per run in this invocation, first one included (>= 1). Default 2. */
  maxAttempts?: number;
  /** Status file; default `<root>/bench-status.json`. */
  statusPath?: string;
  shardLabel?: string | null;
  /** Completion test; default runFolderState (metrics.json and costs.json valid). */
  folderState?: (dir: string) => RunFolderState;
  log?: (line: string) => void;
}

export interface MatrixOutcome {
  status: MatrixStatus;
  completed: string[];
  skipped: string[];
  failed: string[];
}

/** Run folder of a run: `<root>/<id>`, never outside root. */
export function runDir(root: string, run: RunSpec): string {
  const dir = resolve(root, run.id);
  const rel = relative(resolve(root), dir);
  if (rel.startsWith('..') || rel === '' || rel.startsWith(sep)) throw new ConfigError(`run id '${run.id}' leaves the matrix root`);
  return dir;
}

export function logFileFor(root: string, run: RunSpec, attempt: number): string {
  return join(resolve(root), 'logs', `${run.id.replace(/\//g, '__')}.attempt-${attempt}.log`);
}

export async function executeMatrix(o: ExecuteOptions): Promise<MatrixOutcome> {
  const workers = o.workers ?? 1;
  const maxAttempts = o.maxAttempts ?? 2;
  if (!Number.isInteger(workers) || workers < 1) throw new ConfigError(`--workers must be a positive integer, got ${workers}`);
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw new ConfigError(`--max-attempts must be a positive integer, got ${maxAttempts}`);
  const folderState = o.folderState ?? runFolderState;
  const root = resolve(o.root);
  const statusPath = o.statusPath ?? join(root, 'bench-status.json');
  const log = o.log ?? (() => undefined);
  const started = new Date().toISOString();
  const statuses = new Map<string, RunStatus>(o.runs.map((r) => [r.id, { id: r.id, state: 'pending', attempts: 0, lastExit: null, log: null, seconds: null }]));

  const snapshot = (finished: boolean): MatrixStatus => {
    const runs = [...statuses.values()];
    const counts: Record<RunState, number> = { pending: 0, running: 0, complete: 0, skipped: 0, failed: 0 };
    for (const r of runs) counts[r.state]++;
    return { schema: 'adbench-bench-status/1', root, shard: o.shardLabel ?? null, startedAt: started, updatedAt: new Date().toISOString(), finished, counts, runs };
  };
  const writeStatus = (finished = false): void => writeJsonAtomic(statusPath, snapshot(finished));

  const queue: RunSpec[] = [];
  for (const run of o.runs) {
    const dir = runDir(root, run);
    if (folderState(dir) === 'complete') {
      statuses.get(run.id)!.state = 'skipped';
      log(`[bench] skip ${run.id}: already complete`);
    } else {
      queue.push(run);
    }
  }
  writeStatus();

  const completed: string[] = [];
  const failed: string[] = [];
  const attemptOne = async (run: RunSpec): Promise<void> => {
    const st = statuses.get(run.id)!;
    const dir = runDir(root, run);
    for (;;) {
      st.attempts++;
      st.state = 'running';
      st.log = logFileFor(root, run, st.attempts);
      writeStatus();
      // An earlier attempt's partial folder (checkpoints, a config.json) is not reused: training
      // time and energy must cover one whole training, so every attempt starts clean.
      if (folderState(dir) === 'incomplete') rmSync(dir, { recursive: true, force: true });
      log(`[bench] start ${run.id} (attempt ${st.attempts}/${maxAttempts}) -> ${st.log}`);
      const t0 = performance.now();
      let result: LaunchResult;
      try {
        result = await o.launch(run, dir, st.log, st.attempts);
      } catch (e) {
        result = { code: null, signal: `launch error: ${e instanceof Error ? e.message : String(e)}` };
      }
      st.seconds = (performance.now() - t0) / 1000;
      st.lastExit = result.code !== null ? String(result.code) : (result.signal ?? 'unknown');
      const ok = result.code === 0 && folderState(dir) === 'complete';
      if (ok) {
        st.state = 'complete';
        completed.push(run.id);
        log(`[bench] done ${run.id} in ${st.seconds.toFixed(1)} s`);
        writeStatus();
        return;
      }
      log(`[bench] FAILED ${run.id} (exit ${st.lastExit}${result.code === 0 ? ', but its run folder is incomplete' : ''}); log: ${st.log}`);
      if (st.attempts >= maxAttempts) {
        st.state = 'failed';
        failed.push(run.id);
        writeStatus();
        return;
      }
    }
  };

  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < queue.length) {
      const run = queue[next++];
      await attemptOne(run);
    }
  };
  await Promise.all(Array.from({ length: Math.min(workers, Math.max(1, queue.length)) }, worker));
  writeStatus(true);
  const status = snapshot(true);
  return { status, completed, skipped: status.runs.filter((r) => r.state === 'skipped').map((r) => r.id), failed };
}
