import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import { CONV_PARAMS, FILTER_GRAD_PARAMS, gemmModuleBytes, IMPLICIT_PARAMS, NR } from './gemmModule.js';

/**
 * Runs gemmModule.ts's kernels on the calling thread plus `threads − 1` worker threads sharing
 * one WebAssembly.Memory. Work is split into blocks of output rows claimed dynamically through an
 * atomic counter, so a busy core slows a call down but never stalls it, and each output element
 * is computed by exactly one thread in a fixed order: results do not depend on the thread count.
 *
 * Control block (Int32 words at byte 0 of the shared memory): [0] job generation (−1 = shut
 * down), [1] claim word: (generation & 0xff) << 24 | next block, [2] blocks completed, [3] number of blocks,
 * [4] which block function (0 convBlock, 1 convBlockImplicit, 2 filterGradBlock), [8..] its parameters.
 */

const GEN = 0;
const NEXT = 1;
const DONE = 2;
const NBLOCKS = 3;
const FN = 4;
const PARAMS = 8;
const CONTROL_BYTES = 4096;
const PAGE = 65536;
/**
 * K chunk: the A tile (4 × kc) stays in L1 and the kc × N chunk of packed B (≤ 512 KB) in L2
 * while every panel streams through for one tile.
 */
const B_CHUNK_FLOATS = 1 << 17;
/** Packed-weights cache: WRN-50-2 to layer3 packs to ~100 MB; cleared whole when full. */
const B_CACHE_BYTES = 256 * 2 ** 20;
const MAX_ROWS = 128;
/**
 * Blocks per thread in blockPlan: blocks are claimed dynamically, so a call ends with one thread
 * idle for about half a block; more, smaller blocks shorten that tail. WRN50 batch 1, old and new
 * alternated in 5 pairs: 4 → 8 took 5–18 % off every pair (e.g. 860 → 708 ms per image).
 */
const BLOCKS_PER_THREAD = 8;
/** Fewest panels (8 output channels each) in a panel block (blockPlan). */
const MIN_BLOCK_PANELS = 8;
/** Below this many MACs a job runs on the calling thread alone (waking workers costs ~50 µs). */
const PARALLEL_MIN_MACS = 4e6;
/** Fewer input channels than this: a tap's k loop is too short; im2col instead. */
const IMPLICIT_MIN_CHANNELS = 8;
/**
 * Filter gradients: at most this many k (output pixels) per chunk (packSegments packs R × k of A).
 * Before A was packed, the GEMM read x's image in place, a cache line and at ≥ 1024 channels a
 * page per k, which capped chunks at 128 pixels and 48 pages; packed, 512 measured best (min of 3
 * interleaved single-thread runs over 10 DRAEM shapes: 2147 ms against 2518 at 128 and 2650
 * before packing).
 */
const FILTER_GRAD_KC = 512;
/**
 * Floats per pixel of the filter gradient's image: C4, plus one cache line where C4 spans an even
 * number of lines, so that A's column stride (one pixel) is an odd number of lines and
 * consecutive k spread over all L1 sets (at C4 = 1024 a 4 KB stride put every k in one set).
 */
function filterGradPitch(C4: number): number {
  return C4 % 32 === 0 ? C4 + 16 : C4;
}

/**
 * Why the claim word carries the generation: the caller returns as soon as every block is done,
 * without waiting for workers that never woke up (on a loaded machine a sleeping worker can take
 * a whole scheduler slice to wake). A late worker may then read the next job's parameters half
 * written; its claim fails because the tag no longer matches the generation it saw, so it never
 * runs a block with them.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { module, mem, thread, nParams } = workerData;
const ex = new WebAssembly.Instance(module, { env: { mem } }).exports;
const fns = [ex.convBlock, ex.convBlockImplicit, ex.filterGradBlock];
const ctl = new Int32Array(mem.buffer, 0, 64);
let gen = 0;
parentPort.postMessage('ready');
for (;;) {
  Atomics.wait(ctl, ${GEN}, gen);
  gen = Atomics.load(ctl, ${GEN});
  if (gen < 0) break;
  const tag = (gen & 0xff) << 24;
  const n = ctl[${NBLOCKS}];
  const which = ctl[${FN}];
  const fn = fns[which];
  if (!fn) continue;
  const p = Array.from(ctl.subarray(${PARAMS}, ${PARAMS} + nParams[which]));
  for (;;) {
    const v = Atomics.load(ctl, ${NEXT});
    if ((v & 0xff000000) !== tag) break;
    const b = v & 0xffffff;
    if (b >= n) break;
    if (Atomics.compareExchange(ctl, ${NEXT}, v, v + 1) !== v) continue;
    fn(...p, thread, b);
    if (Atomics.add(ctl, ${DONE}, 1) + 1 === n) Atomics.notify(ctl, ${DONE});
  }
}
`;

export interface ConvGeometry2d {
  /** NHWC input shape */
  batch: number;
  inHeight: number;
  inWidth: number;
  inChannels: number;
  filterHeight: number;
  filterWidth: number;
  outChannels: number;
  strideHeight: number;
  strideWidth: number;
  dilationHeight: number;
  dilationWidth: number;
  padTop: number;
  padLeft: number;
  outHeight: number;
  outWidth: number;
}

/**
 * Where B[k, n] lies in the raw operand: src[k·rowStride + n·colStride], or, with flipTaps = T
 * (> 0), K = T·C rows in T taps of C, tap t read from tap T − 1 − t: B[t·C + c, n] =
 * src[(T − 1 − t)·C·N + c·rowStride + n·colStride] (the flipped filter of an input gradient).
 */
interface BLayout {
  rowStride: number;
  colStride: number;
  flipTaps: number;
}

type ConvBlockFn = (...args: number[]) => void;
/** Index of a block function in the control block's FN word (and the workers' table). */
type BlockFn = 0 | 1 | 2;

/** The chunk size ≤ max that splits n into equal chunks (576 by 512 → 288 + 288, not 512 + 64). */
function evenChunk(n: number, max: number): number {
  return Math.ceil(n / Math.ceil(n / Math.max(1, max)));
}

/**
 * K chunk for B packed tap by tap (implicit GEMM, flipped filters): whole taps (a multiple of C)
 * while a tap's C·panels·8 floats fit bChunkFloats (L2), else the largest divisor of C that
 * fits, so no chunk straddles two taps. One whole tap of DRAEM's 1024→1024 convolution is 4 MB of
 * B: streamed from L3 per tile, it halved the GEMM's speed (7.9 against 17 GMAC/s on one core).
 * A divisor under a quarter of what fits (C prime, say) keeps whole taps.
 */
export function tapAlignedChunk(taps: number, C: number, panels: number, bChunkFloats = B_CHUNK_FLOATS): number {
  const fits = Math.max(1, Math.floor(bChunkFloats / (panels * NR)));
  if (fits >= C) return C * evenChunk(taps, Math.floor(fits / C));
  for (let d = fits; d >= Math.max(1, fits / 4); d--) if (C % d === 0) return d;
  return C;
}

/**
 * Implicit GEMM (convBlockImplicit) pays where im2col is a large share: stride 1, a small filter
 * (a 3×3 tap loop, not the image-sized "filters" of the gradient convolutions), enough input
 * channels per tap to fill the k loop, and little overcompute on the padded grid. 1×1 stride-1
 * convolutions already read x directly.
 */
export function useImplicit(g: ConvGeometry2d): boolean {
  if (g.strideHeight !== 1 || g.strideWidth !== 1) return false;
  const taps = g.filterHeight * g.filterWidth;
  if (taps === 1 || taps > 49 || g.inChannels < IMPLICIT_MIN_CHANNELS) return false;
  // Overcompute on the padded grid (Wp / OW) against im2col's copy: measured, implicit wins at
  // 64 and 32 px wide, and at 16 px only while channels are few (im2col's copy per MAC shrinks as
  // Cin·Cout grows: 16×16×512 3×3 im2col 11.0 vs implicit 10.3 GMAC/s).
  const Wp = g.outWidth + (g.filterWidth - 1) * g.dilationWidth;
  return Wp <= 1.1 * g.outWidth || (Wp <= 1.5 * g.outWidth && g.inChannels <= 64);
}

interface GemmExports {
  convBlock: ConvBlockFn;
  convBlockImplicit: ConvBlockFn;
  filterGradBlock: ConvBlockFn;
  packB: (src: number, K: number, N: number, rowStride: number, colStride: number, dst: number, panelStride: number) => void;
  padImage: (...args: number[]) => void;
}

/** Whether this V8 accepts relaxed SIMD once the flag is set (Node 20: behind a flag; later: on). */
function relaxedSimdAvailable(): boolean {
  try {
    setFlagsFromString('--experimental-wasm-relaxed-simd');
  } catch {
    /* flag unknown: maybe shipped by default */
  }
  try {
    return WebAssembly.validate(gemmModuleBytes(true));
  } catch {
    return false;
  }
}

/** A call that does not fit the engine's memory (wasm32: 4 GB); callers fall back to tfjs' kernels. */
export class EngineCapacityError extends Error {
  override name = 'EngineCapacityError';
}

export interface GemmEngineInfo {
  threads: number;
  relaxedSimd: boolean;
}

export class GemmEngine {
  private readonly mem: WebAssembly.Memory;
  private readonly ex: GemmExports;
  private readonly ctl: Int32Array;
  private workers: Worker[] = [];
  private disposed = false;
  /**
   * Convolutions (and matMuls) run, filter gradients run, and the multiply-accumulates of both
   * (for tests and profiles).
   */
  readonly stats = { convs: 0, macs: 0, implicitConvs: 0, packedHits: 0, filterGrads: 0 };
  /** Packed B panels kept between calls, at [CONTROL_BYTES, cacheEnd); per-call data follows. */
  private readonly bCache = new Map<object, { off: number; K: number; N: number; b: BLayout; kChunk: number }>();
  private readonly seen = new WeakSet<object>();
  private cacheEnd = CONTROL_BYTES;
  /** Implicit GEMM for the convolutions useImplicit() picks (false: always im2col; for A/B runs). */
  implicit = true;
  /**
   * Conv2DBackpropFilter on conv2dFilterGrad (false: conv2d-simd.ts hands it to the forward-conv
   * form of conv-kernels.ts; for A/B runs).
   */
  directFilterGrad = true;
  /** Stride-1 Conv2DBackpropInput as one engine conv (conv2d-simd.ts; false: the forward-conv form, for A/B runs). */
  directInputGrad = true;

  private constructor(
    readonly info: GemmEngineInfo,
    module: WebAssembly.Module,
    private readonly maxPages: number,
    /** Floats of packed B per k chunk (L2-resident); smaller in tests, to exercise the chunking. */
    readonly bChunkFloats: number,
  ) {
    this.mem = new WebAssembly.Memory({ initial: Math.min(256, maxPages), maximum: maxPages, shared: true });
    this.ex = new WebAssembly.Instance(module, { env: { mem: this.mem } }).exports as unknown as GemmExports;
    this.ctl = new Int32Array(this.mem.buffer, 0, 64);
  }

  /**
   * Compiles the module (relaxed SIMD when V8 has it, unless `relaxedSimd: false`) and starts
   * threads − 1 workers.
   */
  static async create(threads = 1, opts: { relaxedSimd?: boolean; maxPages?: number; bChunkFloats?: number } = {}): Promise<GemmEngine> {
    const relaxed = opts.relaxedSimd !== false && relaxedSimdAvailable();
    const module = new WebAssembly.Module(gemmModuleBytes(relaxed));
    const engine = new GemmEngine({ threads: Math.max(1, Math.floor(threads)), relaxedSimd: relaxed }, module, opts.maxPages ?? 65536, opts.bChunkFloats ?? B_CHUNK_FLOATS);
    const ready: Promise<void>[] = [];
    for (let t = 1; t < engine.info.threads; t++) {
      const w = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { module, mem: engine.mem, thread: t, nParams: [CONV_PARAMS.length, IMPLICIT_PARAMS.length, FILTER_GRAD_PARAMS.length] },
      });
      // Referenced until it answers (an unref'd worker would let the process exit first), then
      // unref'd so a blocked worker never keeps a CLI alive.
      ready.push(new Promise((resolve, reject) => {
        w.once('message', () => {
          w.unref();
          resolve();
        });
        w.once('error', reject);
      }));
      engine.workers.push(w);
    }
    try {
      await Promise.all(ready);
    } catch (e) {
      engine.dispose();
      throw e;
    }
    return engine;
  }

  /** Default thread count: ADBENCH_SIMD_THREADS, else the cores Node reports (at most 8). */
  static defaultThreads(env: NodeJS.ProcessEnv = process.env): number {
    const raw = env.ADBENCH_SIMD_THREADS;
    if (raw !== undefined && raw !== '') {
      const n = Number(raw);
      if (!Number.isInteger(n) || n < 1 || n > 64) throw new Error(`ADBENCH_SIMD_THREADS=${raw}: expected an integer from 1 to 64`);
      return n;
    }
    return Math.min(8, availableParallelism());
  }

  private ensureBytes(bytes: number): void {
    const need = bytes - this.mem.buffer.byteLength;
    if (need <= 0) return;
    const pages = Math.ceil(need / PAGE);
    if (this.mem.buffer.byteLength / PAGE + pages > this.maxPages) {
      throw new EngineCapacityError(
        `GemmEngine: this call needs ${(bytes / 2 ** 20).toFixed(1)} MB, above the engine memory's ${(this.maxPages * PAGE / 2 ** 20).toFixed(1)} MB`,
      );
    }
    try {
      this.mem.grow(pages);
    } catch (e) {
      throw new EngineCapacityError(`GemmEngine: could not grow its memory to ${(bytes / 2 ** 20).toFixed(0)} MB (${(e as Error).message})`);
    }
  }

  /**
   * out = act(conv2d(x, filter) + bias) for NHWC x and a [kh, kw, Cin, Cout] filter; `out` must
   * hold batch·outHeight·outWidth·outChannels floats. Any stride, dilation and padding.
   */
  conv2d(
    g: ConvGeometry2d, x: Float32Array, filter: Float32Array, bias: Float32Array | null, relu: boolean, out: Float32Array,
    filterKey?: object,
  ): void {
    this.convJob(g, x, filter, { rowStride: g.outChannels, colStride: 1, flipTaps: 0 }, bias, relu, out, filterKey);
  }

  /**
   * The input gradient of a stride-1 convolution as one forward conv: out = conv2d(x, W') with
   * W'[a, b, c, n] = w[kh − 1 − a, kw − 1 − b, n, c] for w [kh, kw, N, C] (N = g.outChannels, C =
   * g.inChannels): flipped taps, swapped channels, packed straight from w's layout.
   */
  conv2dFlipped(g: ConvGeometry2d, x: Float32Array, w: Float32Array, out: Float32Array): void {
    this.convJob(g, x, w, { rowStride: 1, colStride: g.inChannels, flipTaps: g.filterHeight * g.filterWidth }, null, false, out);
  }

  /**
   * out[M, N] = a[M, K] · B with B = b as [K, N], or b as [N, K] transposed when `transposeB`
   * (packed straight from the transposed layout, no transpose pass). Same kernels as a 1×1 conv.
   */
  matMul(a: Float32Array, b: Float32Array, M: number, K: number, N: number, transposeB: boolean, out: Float32Array, bKey?: object): void {
    const g: ConvGeometry2d = {
      batch: 1, inHeight: M, inWidth: 1, inChannels: K, filterHeight: 1, filterWidth: 1, outChannels: N,
      strideHeight: 1, strideWidth: 1, dilationHeight: 1, dilationWidth: 1, padTop: 0, padLeft: 0, outHeight: M, outWidth: 1,
    };
    this.convJob(g, a, b, { rowStride: transposeB ? 1 : N, colStride: transposeB ? K : 1, flipTaps: 0 }, null, false, out, bKey);
  }

  /**
   * Filter gradient of a forward conv with geometry g: out[a, b, ci, co] = Σ_{n,i,j} xp[n, i·sh +
   * a·dh, j·sw + b·dw, ci] · dy[n, i, j, co] for NHWC x, dy [batch, outHeight, outWidth,
   * outChannels] and out [kh, kw, Cin, Cout] (xp = x zero-padded by padTop/padLeft, cropped to the
   * rows and columns the conv used).
   *
   * One GEMM, dW[taps·Cin, Cout] = A · dy[batch·OH·OW, Cout], without tfjs' transposes of x and
   * dy (the forward-conv form in conv-math.ts): x is copied once into a zero-padded image whose
   * channels are padded to a multiple of 4 (C4), and A's tiles are packed from it per k chunk — a
   * tile of 4 rows is 4 adjacent channels of one tap, a column is an output pixel, k steps sw·C4
   * floats along an output row (packSegments). dy is B, packed as it lies. Blocks of filter rows go
   * to the threads, so every element is summed by one thread in a fixed order.
   */
  conv2dFilterGrad(g: ConvGeometry2d, x: Float32Array, dy: Float32Array, out: Float32Array): void {
    if (this.disposed) throw new Error('GemmEngine: used after dispose()');
    const taps = g.filterHeight * g.filterWidth;
    const Cin = g.inChannels;
    const N = g.outChannels;
    const nSeg = g.batch * g.outHeight;
    const segLen = g.outWidth;
    const Kp = nSeg * segLen;
    if (taps * Cin === 0 || N === 0) return;
    if (Kp === 0) {
      out.fill(0);
      return;
    }
    const macs = taps * Cin * N * Kp;
    this.stats.filterGrads++;
    this.stats.macs += macs;
    const parallel = this.info.threads > 1 && macs >= PARALLEL_MIN_MACS;
    const C4 = Math.ceil(Cin / 4) * 4;
    const M4 = taps * C4;
    // channel groups of one cache line (filterGradBlock), else all channels in one group
    const G = C4 <= 16 ? C4 : [16, 8, 4].find((q) => C4 % q === 0) as number;
    const panels = Math.ceil(N / NR);
    const Hp = (g.outHeight - 1) * g.strideHeight + (g.filterHeight - 1) * g.dilationHeight + 1;
    const Wp = (g.outWidth - 1) * g.strideWidth + (g.filterWidth - 1) * g.dilationWidth + 1;
    const P = filterGradPitch(C4);
    const pixBytes = P * 4;
    const imageFloats = g.batch * Hp * Wp * P;
    const tapsOff = (inOff: number) => Math.ceil((inOff + imageFloats * 4) / 64) * 64;
    const segsOff = (inOff: number) => tapsOff(inOff) + taps * 4;
    // x itself is staged after the tables, then padImage lays out the image
    const stageOff = (inOff: number) => Math.ceil((segsOff(inOff) + nSeg * 4) / 64) * 64;
    const writeInput = (f32: Float32Array, inOff: number): void => {
      f32.set(x, stageOff(inOff) / 4);
      this.ex.padImage(stageOff(inOff), g.batch, g.inHeight, g.inWidth, Cin, inOff, Hp, Wp, P, C4, g.padTop, g.padLeft);
      const tapTable = new Int32Array(f32.buffer, tapsOff(inOff), taps);
      for (let a = 0; a < g.filterHeight; a++) {
        for (let b = 0; b < g.filterWidth; b++) tapTable[a * g.filterWidth + b] = (a * g.dilationHeight * Wp + b * g.dilationWidth) * pixBytes;
      }
      const segTable = new Int32Array(f32.buffer, segsOff(inOff), nSeg);
      for (let s = 0; s < nSeg; s++) {
        const n = Math.floor(s / g.outHeight);
        segTable[s] = (n * Hp + (s - n * g.outHeight) * g.strideHeight) * Wp * pixBytes;
      }
    };
    const R = this.rowsPerBlock(M4, parallel);
    // k chunk: whole segments, ≤ FILTER_GRAD_KC pixels and a dy chunk ≤ bChunkFloats (L2)
    const kcMax = Math.min(FILTER_GRAD_KC, Math.floor(this.bChunkFloats / (panels * NR)));
    const segChunk = evenChunk(nSeg, Math.max(1, Math.floor(kcMax / segLen)));
    this.execute({
      inputBytes: stageOff(0) + x.length * 4,
      writeInput,
      scratchPerThread: (R * panels * NR + R * segChunk * segLen) * 4,
      filter: dy, K: Kp, N, b: { rowStride: N, colStride: 1, flipTaps: 0 }, bias: null, out, parallel, which: 2, kChunk: segChunk * segLen,
      nBlocks: Math.ceil(M4 / R),
      params: (o) => [
        o.inOff, G, taps * G, Cin, g.strideWidth * pixBytes, tapsOff(o.inOff), segsOff(o.inOff), nSeg, segChunk, segLen, M4, N, panels, R,
        o.bpOff, o.outOff, o.scratchOff, o.scratchStride,
      ],
    });
  }

  /**
   * Packed B from the cache, packing it there on the second sighting of `key` (frozen weights:
   * a backbone's filters, PatchCore's memory bank), or null (caller packs per call). Training
   * sees each weight version once, so it never fills the cache. Keys must stand for immutable
   * data (tfjs dataIds do: a tensor's data never changes, a variable's assign makes a new dataId).
   */
  private cachedB(
    filter: Float32Array, key: object | undefined, K: number, N: number, b: BLayout, kChunk: number,
  ): number | null {
    if (!key) return null;
    const hit = this.bCache.get(key);
    if (hit && hit.K === K && hit.N === N && hit.b.rowStride === b.rowStride && hit.b.colStride === b.colStride
      && hit.b.flipTaps === b.flipTaps && hit.kChunk === kChunk) {
      this.stats.packedHits++;
      return hit.off;
    }
    const bytes = Math.ceil(N / NR) * K * NR * 4;
    if (!this.seen.has(key) || bytes > B_CACHE_BYTES / 4) {
      this.seen.add(key);
      return null;
    }
    if (this.cacheEnd + bytes > CONTROL_BYTES + B_CACHE_BYTES) {
      this.bCache.clear();
      this.cacheEnd = CONTROL_BYTES;
    }
    const off = this.cacheEnd;
    this.cacheEnd = Math.ceil((off + bytes) / 64) * 64;
    const rawOff = this.cacheEnd;
    this.ensureBytes(rawOff + filter.length * 4);
    new Float32Array(this.mem.buffer).set(filter, rawOff / 4);
    this.packChunks(rawOff, K, N, b, kChunk, off);
    this.bCache.set(key, { off, K, N, b, kChunk });
    return off;
  }

  /**
   * Packs B (laid out as `b` says) chunk-major, [K / kChunk][panels][kChunk][8] (the
   * last chunk shorter), so that each k chunk the block functions stream is contiguous. Panel-major
   * ([panels][K][8]) puts a chunk's panels K·32 bytes apart: for WRN50's 3×3 512→512 convolution
   * (K = 4608) they fell on a quarter of L2's sets and the GEMM ran at 7.9 GMAC/s instead of 17.
   */
  private packChunks(src: number, K: number, N: number, b: BLayout, kChunk: number, dst: number): void {
    const panelFloats = Math.ceil(N / NR) * NR;
    // unflipped B is one "tap" of K rows; a flipped one is packed tap by tap from the mirrored tap
    // (chunks hold whole taps or part of one: tapAlignedChunk)
    const C = b.flipTaps > 0 ? K / b.flipTaps : K;
    for (let k0 = 0; k0 < K; k0 += kChunk) {
      const rows = Math.min(kChunk, K - k0);
      const chunk = dst + k0 * panelFloats * 4;
      for (let k = k0; k < k0 + rows;) {
        const t = Math.floor(k / C);
        const c0 = k - t * C;
        const n = Math.min(C - c0, k0 + rows - k);
        const tapBase = b.flipTaps > 0 ? (b.flipTaps - 1 - t) * C * N : 0;
        this.ex.packB(src + (tapBase + c0 * b.rowStride) * 4, n, N, b.rowStride, b.colStride, chunk + (k - k0) * NR * 4, rows * NR * 4);
        k += n;
      }
    }
  }

  /** B as `b` describes in filter. */
  private convJob(
    g: ConvGeometry2d, x: Float32Array, filter: Float32Array, b: BLayout,
    bias: Float32Array | null, relu: boolean, out: Float32Array, filterKey?: object,
  ): void {
    if (this.disposed) throw new Error('GemmEngine: used after dispose()');
    const K = g.filterHeight * g.filterWidth * g.inChannels;
    const N = g.outChannels;
    const M = g.batch * g.outHeight * g.outWidth;
    if (M === 0 || N === 0) return;
    if (K === 0) {
      out.fill(0);
      return;
    }
    const macs = M * K * N;
    this.stats.convs++;
    this.stats.macs += macs;
    const parallel = this.info.threads > 1 && macs >= PARALLEL_MIN_MACS;
    if (this.implicit && useImplicit(g)) {
      this.stats.implicitConvs++;
      this.implicitJob(g, x, filter, b, bias, relu, out, parallel, filterKey);
    } else {
      this.im2colJob(g, x, filter, b, bias, relu, out, parallel, filterKey);
    }
  }

  /**
   * Blocks of a convolution: R output rows × PB panels each, panelBlocks per row block. Alone: R
   * rows of all panels. In parallel: about BLOCKS_PER_THREAD blocks per thread, rows and columns
   * per block about equal (R ≈ PB·8, as far as the rows go), since a block packs R·K floats of A
   * and streams K·PB·8 floats of B: with few rows (batch 1, 16² maps, M = 256) row blocks alone
   * each streamed all of B for 32 rows. A panel block has at least MIN_BLOCK_PANELS panels (A is
   * packed again per panel block).
   */
  private blockPlan(rows: number, panels: number, parallel: boolean): { R: number; PB: number; panelBlocks: number } {
    if (!parallel) return { R: this.rowsPerBlock(rows, false), PB: panels, panelBlocks: 1 };
    const T = this.info.threads * BLOCKS_PER_THREAD;
    const want = Math.max(rows / T, Math.sqrt((rows * panels * NR) / T));
    const R = Math.max(4, Math.min(MAX_ROWS, Math.ceil(want / 4) * 4, Math.ceil(rows / 4) * 4));
    const rowBlocks = Math.ceil(rows / R);
    const split = Math.max(1, Math.min(Math.ceil(T / rowBlocks), Math.floor(panels / MIN_BLOCK_PANELS)));
    const PB = Math.ceil(panels / split);
    return { R, PB, panelBlocks: Math.ceil(panels / PB) };
  }

  /** Rows per block: whole jobs alone, else about 4 blocks per thread; a multiple of 4, ≤ MAX_ROWS. */
  private rowsPerBlock(rows: number, parallel: boolean): number {
    const want = parallel ? Math.ceil(rows / (this.info.threads * 4)) : rows;
    return Math.max(4, Math.min(MAX_ROWS, Math.ceil(want / 4) * 4));
  }

  /**
   * Lays out one call after the packed-weights cache — the caller's input region (`inputBytes`,
   * written by `writeInput`), packed B (unless cached), the raw filter, bias, output, per-thread
   * scratch — writes B and bias, runs the blocks and copies the output out.
   */
  private execute(
    job: {
      inputBytes: number; writeInput: (f32: Float32Array, inOff: number) => void; scratchPerThread: number;
      filter: Float32Array; filterKey?: object; K: number; N: number; b: BLayout;
      bias: Float32Array | null; out: Float32Array; nBlocks: number; parallel: boolean; which: BlockFn;
      /** The k chunk the block function steps B by (packChunks). */
      kChunk: number;
      params: (o: { inOff: number; bpOff: number; biasOff: number; outOff: number; scratchOff: number; scratchStride: number }) => number[];
    },
  ): void {
    const { filter, K, N, bias, out } = job;
    const panelBytes = Math.ceil(N / NR) * K * NR * 4;
    const cachedBp = this.cachedB(filter, job.filterKey, K, N, job.b, job.kChunk);
    let end = this.cacheEnd;
    const alloc = (bytes: number): number => {
      const off = end;
      end = Math.ceil((off + bytes) / 64) * 64;
      return off;
    };
    const inOff = alloc(job.inputBytes);
    const bpOff = cachedBp ?? alloc(panelBytes);
    const filterOff = cachedBp === null ? alloc(filter.length * 4) : -1;
    const biasOff = alloc(N * 4 + 16);
    const outOff = alloc(out.length * 4);
    const scratchStride = Math.ceil(job.scratchPerThread / 64) * 64;
    const scratchOff = alloc(scratchStride * this.info.threads);
    this.ensureBytes(end);
    const f32 = new Float32Array(this.mem.buffer);
    job.writeInput(f32, inOff);
    if (cachedBp === null) {
      f32.set(filter, filterOff / 4);
      this.packChunks(filterOff, K, N, job.b, job.kChunk, bpOff);
    }
    if (bias) f32.set(bias, biasOff / 4);
    const params = job.params({ inOff, bpOff, biasOff: bias ? biasOff : 0, outOff, scratchOff, scratchStride });
    this.run(params, job.nBlocks, job.parallel, job.which);
    out.set(new Float32Array(this.mem.buffer, outOff, out.length));
  }

  /** im2col rows (or, for 1×1 stride-1 unpadded convs and matMuls, x itself) times packed B. */
  private im2colJob(
    g: ConvGeometry2d, x: Float32Array, filter: Float32Array, b: BLayout,
    bias: Float32Array | null, relu: boolean, out: Float32Array, parallel: boolean, filterKey?: object,
  ): void {
    const K = g.filterHeight * g.filterWidth * g.inChannels;
    const N = g.outChannels;
    const M = g.batch * g.outHeight * g.outWidth;
    const panels = Math.ceil(N / NR);
    const { R, PB, panelBlocks } = this.blockPlan(M, panels, parallel);
    const direct = g.filterHeight === 1 && g.filterWidth === 1 && g.strideHeight === 1 && g.strideWidth === 1
      && g.padTop === 0 && g.padLeft === 0 && g.outHeight === g.inHeight && g.outWidth === g.inWidth;
    // a flipped B is packed tap by tap: chunks that do not straddle taps
    const kc = b.flipTaps > 0
      ? tapAlignedChunk(b.flipTaps, g.inChannels, panels, this.bChunkFloats)
      : evenChunk(K, Math.max(16, Math.floor(this.bChunkFloats / (panels * NR))));
    this.execute({
      // slack after x: the direct path reads up to 3 padded rows past it
      inputBytes: x.length * 4 + 4 * K * 4,
      writeInput: (f32, inOff) => f32.set(x, inOff / 4),
      scratchPerThread: (R * K + R * PB * NR + R * kc) * 4,
      filter, filterKey, K, N, b, bias, out, parallel, which: 0, kChunk: kc,
      nBlocks: Math.ceil(M / R) * panelBlocks,
      params: (o) => [
        o.inOff, g.inHeight, g.inWidth, g.inChannels, g.filterHeight, g.filterWidth, g.strideHeight, g.strideWidth,
        g.dilationHeight, g.dilationWidth, g.padTop, g.padLeft, g.outHeight, g.outWidth,
        M, K, N, panels, R, PB, panelBlocks, kc, o.bpOff, o.biasOff, relu ? 1 : 0, o.outOff, o.scratchOff, o.scratchStride, direct ? 1 : 0,
      ],
    });
  }

  /**
   * Stride-1 convolution without im2col: x is copied once into a zero-padded image (Hp × Wp: the
   * copy is needed anyway, the padding comes free) followed by the filter's tap-offset table, and
   * each filter tap is a fixed offset into the image.
   */
  private implicitJob(
    g: ConvGeometry2d, x: Float32Array, filter: Float32Array, b: BLayout, bias: Float32Array | null, relu: boolean,
    out: Float32Array, parallel: boolean, filterKey?: object,
  ): void {
    const C = g.inChannels;
    const N = g.outChannels;
    const taps = g.filterHeight * g.filterWidth;
    const K = taps * C;
    const panels = Math.ceil(N / NR);
    const Hp = g.outHeight + (g.filterHeight - 1) * g.dilationHeight;
    const Wp = g.outWidth + (g.filterWidth - 1) * g.dilationWidth;
    const gridRows = g.outHeight * Wp;
    const { R, PB, panelBlocks } = this.blockPlan(g.batch * gridRows, panels, parallel);
    const blocksPerImage = Math.ceil(gridRows / R);
    // image, plus slack for the last grid rows' taps and padded rows
    const imageFloats = g.batch * Hp * Wp * C + ((g.filterWidth - 1) * g.dilationWidth + Wp + 8) * C;
    const tapsOff = (inOff: number) => Math.ceil((inOff + imageFloats * 4) / 64) * 64;
    const writeInput = (f32: Float32Array, inOff: number): void => {
      const x0 = inOff / 4;
      f32.fill(0, x0, x0 + imageFloats);
      const rowLen = Math.min(g.inWidth, Wp - g.padLeft) * C;
      for (let n = 0; n < g.batch; n++) {
        for (let iy = 0; iy < g.inHeight; iy++) {
          const py = iy + g.padTop;
          if (py < 0 || py >= Hp || rowLen <= 0) continue;
          const src = (n * g.inHeight + iy) * g.inWidth * C;
          f32.set(x.subarray(src, src + rowLen), x0 + ((n * Hp + py) * Wp + g.padLeft) * C);
        }
      }
      const tapTable = new Int32Array(f32.buffer, tapsOff(inOff), taps);
      for (let ky = 0; ky < g.filterHeight; ky++) {
        for (let kx = 0; kx < g.filterWidth; kx++) {
          tapTable[ky * g.filterWidth + kx] = (ky * g.dilationHeight * Wp + kx * g.dilationWidth) * C * 4;
        }
      }
    };
    const kc = tapAlignedChunk(taps, C, panels, this.bChunkFloats);
    this.execute({
      inputBytes: tapsOff(0) + taps * 4,
      writeInput,
      scratchPerThread: (R * PB * NR + R * kc) * 4,
      filter, filterKey, K, N, b, bias, out, parallel, which: 1, kChunk: kc,
      nBlocks: g.batch * blocksPerImage * panelBlocks,
      params: (o) => [
        o.inOff, Hp, Wp, C, kc, tapsOff(o.inOff), g.outHeight, g.outWidth, blocksPerImage,
        K, N, panels, R, PB, panelBlocks, o.bpOff, o.biasOff, relu ? 1 : 0, o.outOff, o.scratchOff, o.scratchStride,
      ],
    });
  }

  private run(params: number[], nBlocks: number, parallel: boolean, which: BlockFn = 0): void {
    const ctl = this.ctl;
    const convBlock = [this.ex.convBlock, this.ex.convBlockImplicit, this.ex.filterGradBlock][which];
    if (!parallel || this.workers.length === 0 || nBlocks < 2) {
      for (let b = 0; b < nBlocks; b++) convBlock(...params, 0, b);
      return;
    }
    if (nBlocks >= 1 << 24) throw new Error(`GemmEngine: ${nBlocks} blocks exceed the claim word`);
    ctl.set(params, PARAMS);
    ctl[NBLOCKS] = nBlocks;
    ctl[FN] = which;
    const gen = (Atomics.load(ctl, GEN) + 1) & 0x7fffffff;
    const tag = (gen & 0xff) << 24;
    Atomics.store(ctl, DONE, 0);
    Atomics.store(ctl, NEXT, tag);
    Atomics.store(ctl, GEN, gen);
    Atomics.notify(ctl, GEN);
    for (;;) {
      const v = Atomics.load(ctl, NEXT);
      const b = v & 0xffffff;
      if (b >= nBlocks) break;
      if (Atomics.compareExchange(ctl, NEXT, v, v + 1) !== v) continue;
      convBlock(...params, 0, b);
      Atomics.add(ctl, DONE, 1);
    }
    for (;;) {
      const done = Atomics.load(ctl, DONE);
      if (done >= nBlocks) break;
      Atomics.wait(ctl, DONE, done, 1000);
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    Atomics.store(this.ctl, GEN, -1);
    Atomics.notify(this.ctl, GEN);
    for (const w of this.workers) void w.terminate();
    this.workers = [];
  }
}
