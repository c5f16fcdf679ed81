import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { activeWasmThreads, requestedWasmThreads } from '../src/backendThreads.js';
import { referenceWork } from './fixtures/wasm-threads/work.js';

const ROOT = join(import.meta.dirname, '..');
const TSX = join(ROOT, 'node_modules', '.bin', 'tsx');

/** Runs the child script with ADBENCH_WASM_THREADS=threads (undefined = unset). */
function child(threads: string | undefined): { reason: string; threads: number; conv: number[]; mm: number[] } {
  const env = { ...process.env };
  delete env.ADBENCH_WASM_THREADS;
  if (threads !== undefined) env.ADBENCH_WASM_THREADS = threads;
  const r = spawnSync(TSX, [join(ROOT, 'test', 'fixtures', 'wasm-threads', 'child.ts')], { env, encoding: 'utf8', timeout: 120_000 });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop() as string);
}

beforeAll(async () => {
  delete process.env.ADBENCH_WASM_THREADS;
  await initBackend('wasm');
});

describe('ADBENCH_WASM_THREADS', () => {
  it('parses the variable (unset = 1 thread; junk rejected)', () => {
    expect(requestedWasmThreads({})).toBe(1);
    expect(requestedWasmThreads({ ADBENCH_WASM_THREADS: '2' })).toBe(2);
    expect(() => requestedWasmThreads({ ADBENCH_WASM_THREADS: 'two' })).toThrow(/integer from 1 to 8/);
    expect(() => requestedWasmThreads({ ADBENCH_WASM_THREADS: '0' })).toThrow();
  });

  it('runs the threaded binary with 2 threads and computes what the single-threaded one does', async () => {
    // Default (this process): single-threaded.
    expect(await activeWasmThreads()).toBe(1);
    const single = referenceWork();
    const threaded = child('2');
    expect(threaded.threads).toBe(2);
    expect(threaded.reason).toMatch(/2 threads/);
    expect(threaded.conv).toEqual(single.conv);
    expect(threaded.mm).toEqual(single.mm);
  });
});
