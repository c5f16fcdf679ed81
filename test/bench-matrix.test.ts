import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../src/errors.js';
import {
  enumerateRuns, parseMethodArgs, parseSeeds, parseShard, runFolderState, selectRuns, shardRuns, splitArgs, type RunSpec,
} from '../src/bench/matrix.js';
import { executeMatrix, type LaunchFn, type MatrixStatus } from '../src/bench/matrixExecutor.js';
import { trainArgs } from '../src/bench/launchTrain.js';
import { slurmScript } from '../src/bench/slurm.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'bench-matrix-'));

function writeComplete(dir: string, auroc = 0.9): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), '{}');
  writeFileSync(join(dir, 'metrics.json'), JSON.stringify({
    image: { auroc, ap: 0.8 }, oracle: { recall: 1, f1: 0.9, precision: 0.8 }, calibrated: { recall: 0.5, f1: 0.6, precision: 1 },
  }));
  writeFileSync(join(dir, 'costs.json'), JSON.stringify({ schema: 'adbench-costs/1' }));
}

describe('matrix enumeration', () => {
  it('lists method x category x seed in a stable order with ids that are run folders', () => {
    const runs = enumerateRuns({ methods: ['patchcore', 'draem'], categories: ['bottle', 'screw'], seeds: [0, 1], profile: 'cpu', commonArgs: ['--synthetic'], methodArgs: { draem: ['--epochs', '1'] } });
    expect(runs.map((r) => r.id)).toEqual([
      'patchcore/bottle/seed-0', 'patchcore/bottle/seed-1', 'patchcore/screw/seed-0', 'patchcore/screw/seed-1',
      'draem/bottle/seed-0', 'draem/bottle/seed-1', 'draem/screw/seed-0', 'draem/screw/seed-1',
    ]);
    expect(runs[0].args).toEqual(['--synthetic']);
    expect(runs[4].args).toEqual(['--synthetic', '--epochs', '1']);
    expect(trainArgs(runs[5], '/r/x')).toEqual(['draem', 'bottle', '--out', '/r/x', '--seed', '1', '--profile', 'cpu', '--synthetic', '--epochs', '1']);
  });

  it('refuses repeats, empty lists and names that are not plain folder names', () => {
    expect(() => enumerateRuns({ methods: ['a', 'a'], categories: ['c'], seeds: [0] })).toThrow(/listed twice/);
    expect(() => enumerateRuns({ methods: [], categories: ['c'], seeds: [0] })).toThrow(ConfigError);
    expect(() => enumerateRuns({ methods: ['a'], categories: ['../x'], seeds: [0] })).toThrow(/invalid category/);
  });

  it('parses seeds, shards, argument strings and --only', () => {
    expect(parseSeeds('0-2,7')).toEqual([0, 1, 2, 7]);
    expect(parseSeeds('3')).toEqual([3]);
    expect(() => parseSeeds('a')).toThrow(/not a seed/);
    expect(parseShard('2/4')).toEqual({ index: 2, count: 4 });
    expect(() => parseShard('4/4')).toThrow(ConfigError);
    expect(() => parseShard('1-4')).toThrow(/i\/n/);
    expect(splitArgs(`--set a=1 --textures "/x y/z" '--q r'`)).toEqual(['--set', 'a=1', '--textures', '/x y/z', '--q r']);
    expect(() => splitArgs('"open')).toThrow(/unterminated/);
    expect(parseMethodArgs(['draem=--epochs 1', 'draem=--image-size 32'], ['draem'])).toEqual({ draem: ['--epochs', '1', '--image-size', '32'] });
    expect(() => parseMethodArgs(['riad=--x'], ['draem'])).toThrow(/not one of --methods/);
    const runs = enumerateRuns({ methods: ['m'], categories: ['c'], seeds: [0, 1] });
    expect(selectRuns(runs, ['m/c/seed-1']).map((r) => r.id)).toEqual(['m/c/seed-1']);
    expect(() => selectRuns(runs, ['m/c/seed-9'])).toThrow(/no such run/);
  });

  it('shards are disjoint and together complete, for every shard count', () => {
    const runs = enumerateRuns({ methods: ['a', 'b', 'c'], categories: ['x', 'y'], seeds: [0, 1, 2] });
    for (let n = 1; n <= 7; n++) {
      const parts = Array.from({ length: n }, (_, i) => shardRuns(runs, { index: i, count: n }).map((r) => r.id));
      const all = parts.flat();
      expect(new Set(all).size).toBe(all.length);
      expect([...all].sort()).toEqual(runs.map((r) => r.id).sort());
      // Balanced: sizes differ by at most one.
      const sizes = parts.map((p) => p.length);
      expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    }
  });

  it('a run folder is complete only with valid metrics.json and costs.json', () => {
    const d = tmp();
    expect(runFolderState(join(d, 'none'))).toBe('absent');
    writeComplete(join(d, 'ok'));
    expect(runFolderState(join(d, 'ok'))).toBe('complete');
    writeComplete(join(d, 'torn'));
    writeFileSync(join(d, 'torn', 'metrics.json'), '{"image": {"auroc": 0.9, "ap"');
    expect(runFolderState(join(d, 'torn'))).toBe('incomplete');
    writeComplete(join(d, 'nocost'));
    writeFileSync(join(d, 'nocost', 'costs.json'), '');
    expect(runFolderState(join(d, 'nocost'))).toBe('incomplete');
    writeComplete(join(d, 'nan'));
    writeFileSync(join(d, 'nan', 'metrics.json'), JSON.stringify({ image: { auroc: 'x', ap: 1 }, oracle: { recall: 1, f1: 1 }, calibrated: { recall: 1, f1: 1 } }));
    expect(runFolderState(join(d, 'nan'))).toBe('incomplete');
  });
});

describe('matrix execution', () => {
  it('skips complete runs, retries failures up to the limit, lists what failed, bounds parallelism', async () => {
    const root = tmp();
    const runs = enumerateRuns({ methods: ['good', 'flaky', 'broken'], categories: ['c1', 'c2'], seeds: [0] });
    writeComplete(join(root, 'good/c1/seed-0'));
    // A leftover partial folder from a killed attempt must not survive into the new attempt.
    mkdirSync(join(root, 'flaky/c1/seed-0'), { recursive: true });
    writeFileSync(join(root, 'flaky/c1/seed-0', 'stale-checkpoint'), 'x');
    let running = 0;
    let maxRunning = 0;
    const calls: string[] = [];
    const statusSeen: MatrixStatus[] = [];
    const launch: LaunchFn = async (run: RunSpec, dir, logFile, attempt) => {
      calls.push(`${run.id}#${attempt}`);
      statusSeen.push(JSON.parse(readFileSync(join(root, 'bench-status.json'), 'utf8')) as MatrixStatus);
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise((r) => setTimeout(r, 15));
      running--;
      mkdirSync(dirname(logFile), { recursive: true });
      writeFileSync(logFile, 'log');
      if (run.method === 'broken') return { code: 1, signal: null };
      if (run.method === 'flaky' && attempt === 1) {
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, 'config.json'), '{}');
        return { code: null, signal: 'SIGKILL' };
      }
      writeComplete(dir);
      return { code: 0, signal: null };
    };
    const out = await executeMatrix({ root, runs, launch, workers: 2, maxAttempts: 3 });
    expect(out.skipped).toEqual(['good/c1/seed-0']);
    expect([...out.completed].sort()).toEqual(['flaky/c1/seed-0', 'flaky/c2/seed-0', 'good/c2/seed-0']);
    expect([...out.failed].sort()).toEqual(['broken/c1/seed-0', 'broken/c2/seed-0']);
    expect(calls.filter((c) => c.startsWith('broken/c1'))).toEqual(['broken/c1/seed-0#1', 'broken/c1/seed-0#2', 'broken/c1/seed-0#3']);
    expect(calls.filter((c) => c.startsWith('flaky/c1'))).toEqual(['flaky/c1/seed-0#1', 'flaky/c1/seed-0#2']);
    expect(calls.some((c) => c.startsWith('good/c1'))).toBe(false);
    expect(maxRunning).toBe(2);
    const status = JSON.parse(readFileSync(join(root, 'bench-status.json'), 'utf8')) as MatrixStatus;
    expect(status.finished).toBe(true);
    expect(status.counts).toEqual({ pending: 0, running: 0, complete: 3, skipped: 1, failed: 2 });
    expect(status.runs.find((r) => r.id === 'broken/c2/seed-0')).toMatchObject({ state: 'failed', attempts: 3, lastExit: '1' });
    expect(status.runs.find((r) => r.id === 'flaky/c1/seed-0')).toMatchObject({ state: 'complete', attempts: 2, lastExit: '0' });
    // While runs were in flight the status file said so.
    expect(statusSeen.some((s) => s.counts.running > 0 && !s.finished)).toBe(true);
  });

  it('a run that exits 0 without a complete folder counts as failed', async () => {
    const root = tmp();
    const runs = enumerateRuns({ methods: ['m'], categories: ['c'], seeds: [0] });
    const out = await executeMatrix({ root, runs, launch: async () => ({ code: 0, signal: null }), maxAttempts: 1 });
    expect(out.failed).toEqual(['m/c/seed-0']);
  });
});

describe('Slurm job array', () => {
  it('is valid bash, names every run once, and task k runs run k', () => {
    const runs = enumerateRuns({ methods: ['patchcore', 'draem'], categories: ['bottle', 'screw'], seeds: [0, 1] }).slice(0, 7);
    const d = tmp();
    const file = join(d, 'job.sh');
    writeFileSync(file, slurmScript({ runs, benchmarkArgv: ['echo', 'bench', '--methods', 'a b'], trainArgs: ['--set', 'x=1 2'], projectDir: d, root: join(d, 'runs'), maxParallel: 3 }));
    execFileSync('bash', ['-n', file]);
    const text = readFileSync(file, 'utf8');
    expect(text).toContain('#SBATCH --array=0-6%3');
    for (const r of runs) expect(text.split(r.id).length - 1).toBe(1);
    runs.forEach((r, k) => {
      const out = execFileSync('bash', [file], { env: { ...process.env, SLURM_ARRAY_TASK_ID: String(k) }, encoding: 'utf8' });
      expect(out.trim().split('\n').pop()).toBe(`bench --methods a b --only ${r.id} --workers 1 -- --set x=1 2`);
    });
    expect(() => execFileSync('bash', [file], { env: { ...process.env, SLURM_ARRAY_TASK_ID: '' }, stdio: 'pipe' })).toThrow();
  });
});
