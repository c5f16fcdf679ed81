/**
 * experiments/seeds.ts end to end on a tiny config (PatchCore, random-init resnet18, 32² synthetic
 * category, 2 seeds): the per-seed run folders, seeds.json / seeds.md agreeing with them, a seed
 * equal to the train.ts run with the same --seed, the resume skip, and a bad --seeds value.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSyntheticCategory } from '../src/data/index.js';

const run = promisify(execFile);
let dir: string;

interface CliResult {
  code: number;
  stderr: string;
  stdout: string;
}

async function cli(script: string, args: string[]): Promise<CliResult> {
  try {
    const r = await run('npx', ['tsx', `experiments/${script}`, ...args], { timeout: 240_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

const common = (): string[] => [
  'patchcore', 'synthetic_object', '--data', join(dir, 'data'), '--backbone', 'resnet18', '--backbone-init', 'random',
  '--image-size', '32', '--backend', 'wasm', '--no-cache',
];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'adbench-seeds-'));
  await generateSyntheticCategory('synthetic_object', join(dir, 'data'), { size: 32, seed: 1, nTrain: 10, nTestGood: 3, nPerDefect: 2 });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface SeedsJson {
  seeds: number[];
  metrics: { key: string; n: number; mean: number | null; sd: number | null; min: number | null; max: number | null }[];
  rows: { seed: number; values: Record<string, number | null> }[];
}

describe('experiments/seeds.ts', () => {
  it('runs each seed into seed-<k>, aggregates them, skips finished seeds, matches train.ts', async () => {
    const out = join(dir, 'sweep');
    const first = await cli('seeds.ts', [...common(), '--seeds', '0,1', '--out', out]);
    expect(first.code, first.stderr).toBe(0);
    for (const k of [0, 1]) {
      for (const f of ['metrics.json', 'timing.json', 'config.json', 'report.md']) expect(existsSync(join(out, `seed-${k}`, f)), `seed-${k}/${f}`).toBe(true);
    }
    const s = JSON.parse(readFileSync(join(out, 'seeds.json'), 'utf8')) as SeedsJson;
    expect(s.seeds).toEqual([0, 1]);
    const m0 = JSON.parse(readFileSync(join(out, 'seed-0', 'metrics.json'), 'utf8'));
    const m1 = JSON.parse(readFileSync(join(out, 'seed-1', 'metrics.json'), 'utf8'));
    const auroc = s.metrics.find((m) => m.key === 'image.auroc')!;
    expect(auroc.n).toBe(2);
    expect(auroc.mean).toBeCloseTo((m0.image.auroc + m1.image.auroc) / 2, 12);
    expect(auroc.sd).toBeCloseTo(Math.abs(m0.image.auroc - m1.image.auroc) / Math.SQRT2, 12);
    expect(auroc.min).toBe(Math.min(m0.image.auroc, m1.image.auroc));
    const aupro = s.metrics.find((m) => m.key === 'pixel.aupro')!;
    expect(aupro.mean).toBeCloseTo((m0.pixel.aupro + m1.pixel.aupro) / 2, 12);
    const wall = s.metrics.find((m) => m.key === 'wallTimeS')!;
    expect(wall.n).toBe(2);
    expect(wall.min!).toBeGreaterThan(0);
    expect(s.metrics.find((m) => m.key === 'trainCpuS')!.n).toBe(2);
    for (const key of ['calibrated.f1', 'oracle.f1', 'oracle.precision', 'image.ap', 'pixel.auroc']) expect(s.metrics.find((m) => m.key === key)!.n, key).toBe(2);
    const md = readFileSync(join(out, 'seeds.md'), 'utf8');
    expect(md).toContain('over 2 seeds');
    expect(md).toContain('SYNTHETIC DATA');
    expect(md).toMatch(/\| image AUROC \| [\d.]+ ± [\d.]+ \| [\d.]+ \| [\d.]+ \| 2 \|/);

    // Again with one more seed: 0 and 1 are read back, not rerun; and train.ts --seed 1 is seed-1.
    const [again, single] = await Promise.all([
      cli('seeds.ts', [...common(), '--seeds', '0,1,2', '--out', out]),
      cli('train.ts', [...common(), '--seed', '1', '--out', join(dir, 'single')]),
    ]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/seed 0: .* exists, not run again/);
    expect(again.stderr).toMatch(/seed 1: .* exists, not run again/);
    const s2 = JSON.parse(readFileSync(join(out, 'seeds.json'), 'utf8')) as SeedsJson;
    expect(s2.seeds).toEqual([0, 1, 2]);
    expect(s2.rows[1].values['image.auroc']).toBe(m1.image.auroc);
    expect(single.code, single.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, 'single', 'metrics.json'), 'utf8'))).toEqual(m1);
  }, 600_000);

  it('a malformed --seeds is one error line naming the option', async () => {
    const r = await cli('seeds.ts', [...common(), '--seeds', '3,3', '--out', join(dir, 'bad')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: --seeds '3,3'/m);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  }, 120_000);
});
