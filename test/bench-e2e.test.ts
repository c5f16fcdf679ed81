import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { runFolderState } from '../src/bench/matrix.js';
import type { MatrixStatus } from '../src/bench/matrixExecutor.js';
import { writeReport } from '../src/bench/report/writeReport.js';

/**
 * The whole loop on a tiny 2-method x 2-category synthetic matrix: real train.ts processes, the
 * benchmark killed (whole process group, SIGKILL: no clean-up) once the first run is done,
 * restarted, and reported. Settings keep each run to seconds: PatchCore with a random-init
 * ResNet-18 at 64 px, DRAEM at 32 px with width-4 networks for one epoch.
 */

const exec = promisify(execFile);
const BENCH = resolve('experiments/benchmark.ts');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function benchArgs(root: string): string[] {
  return [
    '--import', 'tsx', BENCH,
    '--methods', 'patchcore,draem', '--categories', 'synthetic_texture,synthetic_object', '--seeds', '0',
    '--out', root, '--workers', '1',
    '--method-args', 'patchcore=--backbone-init random --backbone resnet18 --image-size 64',
    '--method-args', 'draem=--image-size 32 --epochs 1 --set reconstructiveWidth=4 --set discriminativeWidth=4',
    '--', '--synthetic', '--no-cache',
  ];
}

const readStatus = (root: string): MatrixStatus | null => {
  try {
    return JSON.parse(readFileSync(join(root, 'bench-status.json'), 'utf8')) as MatrixStatus;
  } catch {
    return null;
  }
};

describe('benchmark: run, kill, resume, report', () => {
  it('a killed matrix resumes without redoing finished runs, and the report has exactly its cells', async () => {
    const root = mkdtempSync(join(tmpdir(), 'bench-e2e-'));
    const ids = ['patchcore/synthetic_texture/seed-0', 'patchcore/synthetic_object/seed-0', 'draem/synthetic_texture/seed-0', 'draem/synthetic_object/seed-0'];

    const first = spawn(process.execPath, benchArgs(root), { detached: true, stdio: 'ignore' });
    const deadline = Date.now() + 150_000;
    for (;;) {
      const st = readStatus(root);
      if (st && st.counts.complete >= 1 && st.counts.running >= 1) break;
      if (first.exitCode !== null || Date.now() > deadline) throw new Error(`benchmark ended or stalled before the kill: ${JSON.stringify(st?.counts)}`);
      await sleep(100);
    }
    await sleep(1500); // let the second run get going (config.json written)
    process.kill(-first.pid!, 'SIGKILL');
    await new Promise((r) => first.once('exit', r));
    await sleep(300);

    const done = ids.filter((id) => runFolderState(join(root, id)) === 'complete');
    expect(done.length).toBeGreaterThanOrEqual(1);
    expect(done.length).toBeLessThan(4);
    const mtimes = new Map(done.map((id) => [id, statSync(join(root, id, 'metrics.json')).mtimeMs]));

    const { stdout } = await exec(process.execPath, benchArgs(root), { timeout: 200_000 });
    expect(stdout).toContain(`${4 - done.length} completed, ${done.length} skipped (already complete), 0 failed`);
    for (const id of ids) expect(runFolderState(join(root, id)), id).toBe('complete');
    for (const [id, t] of mtimes) expect(statSync(join(root, id, 'metrics.json')).mtimeMs, id).toBe(t);
    const st = readStatus(root)!;
    expect(st.counts).toMatchObject({ complete: 4 - done.length, skipped: done.length, failed: 0, running: 0 });

    const report = await writeReport({ runsDir: root, figures: false });
    expect(report.records.map((r) => `${r.method}/${r.category}/seed-${r.seed}`).sort()).toEqual([...ids].sort());
    expect(report.incomplete).toEqual([]);
    const t = new Map(report.tables.map((x) => [x.name, x]));
    const a1 = t.get('a1_auc_per_class')!;
    expect(a1.rows).toEqual(['draem', 'patchcore']);
    expect(a1.scopes).toEqual(['synthetic_object', 'synthetic_texture', 'average']);
    expect(a1.cells).toHaveLength(6);
    // Each A1 cell is its run's metrics.json AUROC, in percent; synthetic classes have no paper value.
    for (const id of ids) {
      const [method, category] = id.split('/');
      const m = JSON.parse(readFileSync(join(root, id, 'metrics.json'), 'utf8')) as { image: { auroc: number } };
      const cell = a1.cells.find((c) => c.row === method && c.scope === category)!;
      expect(cell.value).toBeCloseTo(100 * m.image.auroc, 9);
      expect(cell.paper).toBeNull();
    }
    expect(t.get('table1_global')!.cells).toHaveLength(12);
    expect(t.get('table2_fixed')!.cells).toHaveLength(0);
    expect(existsSync(join(report.out, 'report.md'))).toBe(true);

    // The same matrix as a Slurm array: valid bash naming all four runs.
    const job = join(root, 'job.sh');
    await exec(process.execPath, [...benchArgs(root).slice(0, benchArgs(root).indexOf('--')), '--emit-slurm', job, '--', '--synthetic']);
    await exec('bash', ['-n', job]);
    const text = readFileSync(job, 'utf8');
    expect(text).toContain('#SBATCH --array=0-3');
    for (const id of ids) expect(text).toContain(`  ${id}\n`);
    expect(text).toMatch(/--only "\$\{RUN\}" --workers 1 -- --synthetic\n/);
    expect(text).not.toMatch(/--workers 1 .*--workers/);
  }, 400_000);
});
