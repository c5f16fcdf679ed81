import * as tf from '@tensorflow/tfjs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { Rng } from '../../util/rng.js';

/**
 * Row-major matrix of float32 vectors kept in JS memory: PatchCore's bank before subsampling is
 * N x 1024 with N up to ~300k (hazelnut), far too much to hold as one tensor on wasm.
 */
export interface VectorSet {
  data: Float32Array;
  rows: number;
  dim: number;
}

/**
 * Random projection used only for coreset selection (official `approx_greedy_coreset`):
 * a dense D x d matrix with PyTorch Linear's default init U(±1/sqrt(D)), no bias. Not JL-sized
 * (PatchCore issue #21); skipped when D == d.
 */
export function randomProjection(x: VectorSet, outDim: number, rng: Rng, chunkRows = 4096): VectorSet {
  if (x.dim === outDim) return { data: x.data.slice(), rows: x.rows, dim: x.dim };
  const bound = 1 / Math.sqrt(x.dim);
  const w = new Float32Array(x.dim * outDim);
  for (let i = 0; i < w.length; i++) w[i] = rng.uniform(-bound, bound);
  const out = new Float32Array(x.rows * outDim);
  const wt = tf.tensor2d(w, [x.dim, outDim]);
  try {
    for (let r = 0; r < x.rows; r += chunkRows) {
      const m = Math.min(chunkRows, x.rows - r);
      // The tidy returns the tensor, not its dataSync(): tf.tidy walks a returned object's keys
      // looking for tensors, and a 4096 x 128 Float32Array has 524k of them (10x the matMul's time).
      const block = tf.tidy(() => tf.matMul(tf.tensor2d(x.data.subarray(r * x.dim, (r + m) * x.dim), [m, x.dim]), wt));
      try {
        out.set(block.dataSync(), r * outDim);
      } finally {
        block.dispose();
      }
    }
  } finally {
    wt.dispose();
  }
  return { data: out, rows: x.rows, dim: outDim };
}

function squaredNorms(x: VectorSet): Float64Array {
  const n = new Float64Array(new SharedArrayBuffer(8 * x.rows));
  for (let i = 0; i < x.rows; i++) {
    let s = 0;
    const o = i * x.dim;
    for (let k = 0; k < x.dim; k++) s += x.data[o + k] * x.data[o + k];
    n[i] = s;
  }
  return n;
}

/**
 * The greedy selection's only heavy loop, as JavaScript source so that the main thread (through
 * `new Function`) and the worker threads run the very same code.
 *
 * `pass` computes the Euclidean distance of rows [lo, hi) to row `j`, as
 * sqrt(max(0, |a|²+|b|²-2a·b)) like the official code, and folds it into `minDist`:
 *   mode 0 (start set):  minDist[i] += dist / nStarts
 *   mode 1 (selection):  minDist[i] = min(minDist[i], dist)
 * and returns the first index of the largest updated minDist in [lo, hi) (its value in
 * out[0], index in out[1]). The dot product is unrolled by 4 with independent float64
 * accumulators (V8 does not vectorise); the arithmetic, and so every distance bit, is the
 * same in every thread and for every split of the rows, which is what keeps the threaded
 * selection identical to the single-threaded one.
 */
const PASS_SOURCE = `
function pass(data, norms, d, j, lo, hi, minDist, mode, nStarts, out) {
  const qo = j * d;
  const nj = norms[j];
  const d4 = d - (d % 4);
  let best = lo;
  let bestVal = -Infinity;
  for (let i = lo, oi = lo * d; i < hi; i++, oi += d) {
    let a0 = 0;
    let a1 = 0;
    let a2 = 0;
    let a3 = 0;
    let k = 0;
    for (; k < d4; k += 4) {
      a0 += data[oi + k] * data[qo + k];
      a1 += data[oi + k + 1] * data[qo + k + 1];
      a2 += data[oi + k + 2] * data[qo + k + 2];
      a3 += data[oi + k + 3] * data[qo + k + 3];
    }
    for (; k < d; k++) a0 += data[oi + k] * data[qo + k];
    const v = norms[i] + nj - 2 * (a0 + a1 + a2 + a3);
    const dist = v > 0 ? Math.sqrt(v) : 0;
    let m;
    if (mode === 0) {
      m = minDist[i] + dist / nStarts;
      minDist[i] = m;
    } else {
      m = minDist[i];
      if (dist < m) {
        m = dist;
        minDist[i] = m;
      }
    }
    if (m > bestVal) {
      bestVal = m;
      best = i;
    }
  }
  out[0] = bestVal;
  out[1] = best;
}
`;

type PassFn = (
  data: Float32Array, norms: Float64Array, d: number, j: number, lo: number, hi: number,
  minDist: Float64Array, mode: number, nStarts: number, out: Float64Array,
) => void;

// eslint-disable-next-line @typescript-eslint/no-implied-eval
const pass = new Function(`${PASS_SOURCE}\nreturn pass;`)() as PassFn;

/** Control words shared with the workers (Int32Array indices). */
const C_GEN = 0; // pass number, bumped by the main thread to start a pass
const C_MODE = 1; // 0 = start set, 1 = selection, 2 = exit
const C_J = 2; // row the pass measures distances to
const C_BLOCKS_DONE = 3; // blocks of the current pass finished (by any thread)
const C_READY = 4; // workers started
const C_ERROR = 5; // a worker threw
const C_NSTARTS = 6;

/**
 * Block claiming, shared by the main thread and the workers: the claim word holds
 * (pass number << 32) + next block, and a claim is a compare-exchange that only succeeds for the
 * current pass, so a worker that wakes late can never take a block of the next pass with the
 * previous pass's parameters. Results go to per-block slots and are combined in block order,
 * so the outcome does not depend on which thread ran which block.
 */
const CLAIM_SOURCE = `
function runBlocks(claim, gen, nBlocks, blockRows, n, data, norms, d, j, minDist, mode, nStarts, out, results, ctrl) {
  const g = BigInt(gen) << 32n;
  for (;;) {
    const v = Atomics.load(claim, 0);
    if ((v >> 32n) !== BigInt(gen)) return;
    const b = Number(v - g);
    if (b >= nBlocks) return;
    if (Atomics.compareExchange(claim, 0, v, v + 1n) !== v) continue;
    const lo = b * blockRows;
    const hi = Math.min(n, lo + blockRows);
    pass(data, norms, d, j, lo, hi, minDist, mode, nStarts, out);
    results[2 * b] = out[0];
    results[2 * b + 1] = out[1];
    Atomics.add(ctrl, ${C_BLOCKS_DONE}, 1);
    Atomics.notify(ctrl, ${C_BLOCKS_DONE});
  }
}
`;

type RunBlocksFn = (
  claim: BigInt64Array, gen: number, nBlocks: number, blockRows: number, n: number,
  data: Float32Array, norms: Float64Array, d: number, j: number, minDist: Float64Array, mode: number,
  nStarts: number, out: Float64Array, results: Float64Array, ctrl: Int32Array,
) => void;

// eslint-disable-next-line @typescript-eslint/no-implied-eval
const runBlocks = new Function('pass', `${CLAIM_SOURCE}\nreturn runBlocks;`)(pass) as RunBlocksFn;

const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
${PASS_SOURCE}
${CLAIM_SOURCE}
const w = workerData;
const ctrl = new Int32Array(w.ctrl);
const claim = new BigInt64Array(w.claim);
const data = new Float32Array(w.data);
const norms = new Float64Array(w.norms);
const minDist = new Float64Array(w.minDist);
const results = new Float64Array(w.results);
const out = new Float64Array(2);
Atomics.add(ctrl, ${C_READY}, 1);
Atomics.notify(ctrl, ${C_READY});
let gen = 0;
for (;;) {
  Atomics.wait(ctrl, ${C_GEN}, gen);
  gen = Atomics.load(ctrl, ${C_GEN});
  const mode = Atomics.load(ctrl, ${C_MODE});
  if (mode === 2) break;
  try {
    runBlocks(claim, gen, w.nBlocks, w.blockRows, w.n, data, norms, w.dim, Atomics.load(ctrl, ${C_J}), minDist, mode,
      Atomics.load(ctrl, ${C_NSTARTS}), out, results, ctrl);
  } catch (e) {
    Atomics.store(ctrl, ${C_ERROR}, 1);
    Atomics.notify(ctrl, ${C_BLOCKS_DONE});
  }
}
`;

/** Below this many multiply-adds per pass, a second thread costs more than it saves. */
const MIN_THREADED_WORK = 1 << 20;
/** Rows per block claimed by a thread (~1 ms of work at d = 128 on this machine). */
const BLOCK_ROWS = 1024;

/**
 * Threads for the greedy selection: env ADBENCH_CORESET_THREADS, else up to 2 (the cores this
 * project is sized for), never more than the machine has.
 */
export function defaultCoresetThreads(): number {
  const env = Number(process.env.ADBENCH_CORESET_THREADS);
  if (Number.isInteger(env) && env >= 1) return env;
  return Math.max(1, Math.min(2, availableParallelism()));
}

/**
 * Runs `pass` over all rows. Single-threaded: one call. Threaded: the rows are cut into blocks
 * that the calling thread and worker threads claim dynamically (a busy or descheduled thread
 * just takes fewer blocks, which matters on a shared machine); the workers share data, norms,
 * minDist and the per-block results through SharedArrayBuffers and are driven with
 * Atomics.wait/notify, so the API stays synchronous. Blocks are combined in index order with a
 * strict '>', which makes the result the first global maximum, as in the single-threaded loop.
 */
class PassRunner {
  private readonly workers: Worker[] = [];
  private readonly ctrl = new Int32Array(new SharedArrayBuffer(4 * 8));
  private readonly claim = new BigInt64Array(new SharedArrayBuffer(8));
  private readonly results: Float64Array;
  private readonly nBlocks: number;
  private readonly out = new Float64Array(2);
  private gen = 0;

  constructor(
    private readonly data: Float32Array,
    private readonly norms: Float64Array,
    private readonly dim: number,
    private readonly minDist: Float64Array,
    threads: number,
  ) {
    const n = minDist.length;
    this.nBlocks = Math.ceil(n / BLOCK_ROWS);
    this.results = new Float64Array(new SharedArrayBuffer(16 * Math.max(1, this.nBlocks)));
    if (threads > 1 && this.nBlocks > 1) this.startWorkers(Math.min(threads, this.nBlocks) - 1);
  }

  /** Threads actually used (1 when workers could not be started). */
  get threads(): number {
    return this.workers.length + 1;
  }

  private startWorkers(count: number): void {
    try {
      for (let s = 0; s < count; s++) {
        const worker = new Worker(WORKER_SOURCE, {
          eval: true,
          workerData: {
            ctrl: this.ctrl.buffer, claim: this.claim.buffer, data: this.data.buffer, norms: this.norms.buffer,
            minDist: this.minDist.buffer, results: this.results.buffer, dim: this.dim, n: this.minDist.length,
            nBlocks: this.nBlocks, blockRows: BLOCK_ROWS,
          },
        });
        worker.unref();
        this.workers.push(worker);
      }
      // Block (with a generous limit for a loaded machine) until every worker runs; the event
      // loop does not turn meanwhile, so a failure shows up as a timeout, not an 'error' event.
      const deadline = Date.now() + 60_000;
      let ready: number;
      while ((ready = Atomics.load(this.ctrl, C_READY)) < this.workers.length) {
        if (Date.now() > deadline) throw new Error('coreset workers did not start');
        Atomics.wait(this.ctrl, C_READY, ready, 100);
      }
    } catch {
      this.dispose(); // single-threaded from here on; the result is the same
    }
  }

  /** One pass over all rows; returns the first index of the largest updated minDist. */
  run(mode: 0 | 1, j: number, nStarts: number): number {
    const n = this.minDist.length;
    if (this.workers.length === 0) {
      pass(this.data, this.norms, this.dim, j, 0, n, this.minDist, mode, nStarts, this.out);
      return this.out[1];
    }
    const gen = ++this.gen;
    Atomics.store(this.ctrl, C_MODE, mode);
    Atomics.store(this.ctrl, C_J, j);
    Atomics.store(this.ctrl, C_NSTARTS, nStarts);
    Atomics.store(this.ctrl, C_BLOCKS_DONE, 0);
    Atomics.store(this.claim, 0, BigInt(gen) << 32n);
    Atomics.store(this.ctrl, C_GEN, gen);
    Atomics.notify(this.ctrl, C_GEN);
    runBlocks(this.claim, gen, this.nBlocks, BLOCK_ROWS, n, this.data, this.norms, this.dim, j, this.minDist, mode, nStarts, this.out, this.results, this.ctrl);
    let done: number;
    while ((done = Atomics.load(this.ctrl, C_BLOCKS_DONE)) < this.nBlocks) {
      if (Atomics.load(this.ctrl, C_ERROR) !== 0) throw new Error('approximateGreedyCoreset: a worker thread failed');
      Atomics.wait(this.ctrl, C_BLOCKS_DONE, done, 1000);
    }
    let bestVal = this.results[0];
    let best = this.results[1];
    for (let b = 1; b < this.nBlocks; b++) {
      if (this.results[2 * b] > bestVal) {
        bestVal = this.results[2 * b];
        best = this.results[2 * b + 1];
      }
    }
    return best;
  }

  dispose(): void {
    if (this.workers.length > 0) {
      Atomics.store(this.ctrl, C_MODE, 2);
      Atomics.add(this.ctrl, C_GEN, 1);
      Atomics.notify(this.ctrl, C_GEN);
      for (const w of this.workers) void w.terminate();
      this.workers.length = 0;
    }
  }
}

export interface CoresetOptions {
  /** Number of points to select. */
  count: number;
  /** Size of the random start set whose mean distance initialises the greedy (official: 10). */
  numStarts?: number;
  /** Explicit start indices (tests); overrides the random draw. */
  startIndices?: number[];
  /**
   * Threads for the distance passes (the result does not depend on it). Default
   * defaultCoresetThreads() when a pass has at least 2^20 multiply-adds, else 1.
   */
  threads?: number;
}

/**
 * Approximate greedy coreset (official `ApproximateGreedyCoresetSampler`, PatchCore sec. 3.2):
 * initial distance = mean distance to a random start set (start points not selected), then
 * repeatedly take the farthest point (first index on ties) and shrink distances by it.
 * O(N · count · d): the dominant cost of PatchCore's fit on CPU. Each pass fuses the distances,
 * the min-update and the next argmax, and is split over worker threads (see PassRunner); the
 * selected indices are the same for any thread count.
 */
export function approximateGreedyCoreset(projected: VectorSet, opts: CoresetOptions, rng: Rng): Int32Array {
  const n = projected.rows;
  const count = Math.min(opts.count, n);
  let starts = opts.startIndices;
  if (!starts) {
    const k = Math.min(opts.numStarts ?? 10, n);
    const chosen = new Set<number>();
    while (chosen.size < k) chosen.add(rng.int(0, n));
    starts = [...chosen];
  }
  const selected = new Int32Array(count);
  if (count === 0) return selected;
  const threads = opts.threads ?? (n * projected.dim >= MIN_THREADED_WORK ? defaultCoresetThreads() : 1);
  // Workers need the vectors in shared memory: one copy (N x d floats) unless they already are.
  const data = threads > 1 && !(projected.data.buffer instanceof SharedArrayBuffer)
    ? copyToShared(projected.data)
    : projected.data;
  const norms = squaredNorms({ ...projected, data });
  const minDist = new Float64Array(new SharedArrayBuffer(8 * n));
  const runner = new PassRunner(data, norms, projected.dim, minDist, threads);
  try {
    // With no start set every initial distance is 0: the first pick is row 0 (first maximum).
    let best = 0;
    for (const s of starts) best = runner.run(0, s, starts.length);
    for (let it = 0; it < count; it++) {
      selected[it] = best;
      if (it + 1 < count) best = runner.run(1, best, 1);
    }
  } finally {
    runner.dispose();
  }
  return selected;
}

function copyToShared(a: Float32Array): Float32Array {
  const s = new Float32Array(new SharedArrayBuffer(a.byteLength));
  s.set(a);
  return s;
}

/** Rows `indices` of x as a new VectorSet. */
export function takeRows(x: VectorSet, indices: Int32Array): VectorSet {
  const out = new Float32Array(indices.length * x.dim);
  for (let r = 0; r < indices.length; r++) {
    out.set(x.data.subarray(indices[r] * x.dim, (indices[r] + 1) * x.dim), r * x.dim);
  }
  return { data: out, rows: indices.length, dim: x.dim };
}
