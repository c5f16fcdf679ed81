import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSyntheticCategory } from '../src/data/index.js';

const run = promisify(execFile);
let dir: string;

interface CliResult {
  code: number;
  stderr: string;
  stdout: string;
}

async function train(args: string[]): Promise<CliResult> {
  try {
    const r = await run('npx', ['tsx', 'experiments/train.ts', ...args, '--backend', 'wasm'], { timeout: 120_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'adbench-cli-'));
  await generateSyntheticCategory('synthetic_object', join(dir, 'ok'), { size: 32, seed: 1, nTrain: 4, nTestGood: 2, nPerDefect: 1 });
  // A dataset with a corrupt training PNG.
  cpSync(join(dir, 'ok', 'synthetic_object'), join(dir, 'corrupt', 'widget'), { recursive: true });
  const good = join(dir, 'corrupt', 'widget', 'train', 'good');
  writeFileSync(join(good, readdirSync(good).sort()[0]), Buffer.from('this is not a png'));
  // A dataset whose first defect mask has the wrong size.
  cpSync(join(dir, 'ok', 'synthetic_object'), join(dir, 'badmask', 'widget'), { recursive: true });
  const gt = join(dir, 'badmask', 'widget', 'ground_truth');
  const defect = readdirSync(gt).sort()[0];
  const mask = readdirSync(join(gt, defect)).sort()[0];
  await sharp({ create: { width: 17, height: 9, channels: 3, background: { r: 0, g: 0, b: 0 } } }).png().toFile(join(gt, defect, mask));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('train.ts reports bad input as one clear line, exit code 2, no stack trace', () => {
  it('covers unknown method, missing category, missing weights, corrupt PNG and mask size mismatch', async () => {
    const [method, category, weights, corrupt, badmask] = await Promise.all([
      train(['nosuchmethod', 'bottle']),
      train(['patchcore', 'cable', '--data', join(dir, 'ok')]),
      train(['patchcore', 'synthetic_object', '--data', join(dir, 'ok'), '--weights', join(dir, 'missing.safetensors')]),
      train(['patchcore', 'widget', '--data', join(dir, 'corrupt'), '--backbone-init', 'random']),
      train(['patchcore', 'widget', '--data', join(dir, 'badmask'), '--backbone-init', 'random']),
    ]);
    for (const r of [method, category, weights, corrupt, badmask]) {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/^error: /m);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    expect(method.stderr).toContain("unknown method 'nosuchmethod'");
    expect(category.stderr).toContain('cable');
    expect(category.stderr).toContain('synthetic_object');
    expect(weights.stderr).toContain('missing.safetensors');
    expect(corrupt.stderr).toMatch(/train\/good\/\S+\.png/);
    expect(badmask.stderr).toMatch(/mask .* is 17x9/);
  });
});
