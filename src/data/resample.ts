/**
 * Pure typed-array resizing and cropping of HWC images.
 *
 * Why not sharp for the default: the reference implementations resize with Pillow (torchvision's
 * `Resize` on a PIL image = `Image.resize(..., BILINEAR)`; CutPaste uses Pillow's BICUBIC) and
 * Pillow's filters are antialiased in a specific way: the kernel support is stretched by the
 * downscale factor and the 8-bit result is produced with 22-bit fixed-point coefficients. sharp
 * 0.33 has no bilinear kernel at all and its cubic/lanczos3 shrink differently, which moves
 * pixel values by several levels on MVTec's 700-1024 px images. This file ports Pillow's
 * `Resample.c` (precompute_coeffs, normalize_coeffs_8bpc, horizontal pass then vertical pass) so
 * that 8-bit inputs give Pillow's bytes; 16-bit inputs use the same coefficients in float.
 * DRAEM's loader uses OpenCV `INTER_LINEAR` (2 taps, no antialiasing) instead: `cv2-bilinear`.
 */

export type PilFilter = 'bilinear' | 'bicubic' | 'lanczos';

interface Filter {
  support: number;
  fn: (x: number) => number;
}

// Kernels exactly as Pillow defines them (bicubic with a = -0.5, lanczos with 3 lobes).
const FILTERS: Record<PilFilter, Filter> = {
  bilinear: {
    support: 1,
    fn: (x) => {
      const a = Math.abs(x);
      return a < 1 ? 1 - a : 0;
    },
  },
  bicubic: {
    support: 2,
    fn: (x) => {
      const a = -0.5;
      const t = Math.abs(x);
      if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
      if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
      return 0;
    },
  },
  lanczos: {
    support: 3,
    fn: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0),
  },
};

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}

/** Per output index: first source index, tap count, and `ksize` weights (Pillow layout). */
interface Coeffs {
  ksize: number;
  xmin: Int32Array;
  count: Int32Array;
  weights: Float64Array;
}

function precomputeCoeffs(inSize: number, outSize: number, filter: Filter): Coeffs {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const xminArr = new Int32Array(outSize);
  const countArr = new Int32Array(outSize);
  const weights = new Float64Array(outSize * ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    // C's (int) cast truncates toward zero; kept so the tap windows match Pillow's exactly.
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = filter.fn((x + xmin - center + 0.5) * ss);
      weights[xx * ksize + x] = w;
      ww += w;
    }
    if (ww !== 0) for (let x = 0; x < xmax; x++) weights[xx * ksize + x] /= ww;
    xminArr[xx] = xmin;
    countArr[xx] = xmax;
  }
  return { ksize, xmin: xminArr, count: countArr, weights };
}

const PRECISION_BITS = 32 - 8 - 2;
const FIXED_ONE = 2 ** PRECISION_BITS;

/** Pillow's normalize_coeffs_8bpc: weights to 22-bit integers, rounded half away from zero. */
function toFixedPoint(weights: Float64Array): Float64Array {
  const out = new Float64Array(weights.length);
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i];
    out[i] = w < 0 ? Math.trunc(-0.5 + w * FIXED_ONE) : Math.trunc(0.5 + w * FIXED_ONE);
  }
  return out;
}

type Pixels = Uint8Array | Uint16Array | Float32Array;

/**
 * Separable passes over Float64Array buffers only: one element type keeps V8's typed-array
 * access monomorphic (several times faster than mixing Uint8/Float32 views). With `eightBit`
 * the weights are Pillow's fixed-point integers and each pass floors and clamps to 0..255 as
 * Pillow's clip8 does; the sums stay far below 2^53, so doubles are exact.
 */
function finishValue(acc: number, eightBit: boolean): number {
  if (!eightBit) return acc;
  const v = Math.floor(acc / FIXED_ONE);
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

function passHorizontal(
  src: Float64Array, h: number, w: number, c: number, outW: number, co: Coeffs, k: Float64Array, eightBit: boolean,
): Float64Array {
  const out = new Float64Array(h * outW * c);
  const init = eightBit ? 2 ** (PRECISION_BITS - 1) : 0;
  for (let y = 0; y < h; y++) {
    const rowIn = y * w * c;
    const rowOut = y * outW * c;
    for (let o = 0; o < outW; o++) {
      const base = rowIn + co.xmin[o] * c;
      const n = co.count[o];
      const kOff = o * co.ksize;
      for (let ch = 0; ch < c; ch++) {
        let acc = init;
        for (let t = 0; t < n; t++) acc += src[base + t * c + ch] * k[kOff + t];
        out[rowOut + o * c + ch] = finishValue(acc, eightBit);
      }
    }
  }
  return out;
}

function passVertical(
  src: Float64Array, w: number, c: number, outH: number, co: Coeffs, k: Float64Array, eightBit: boolean,
): Float64Array {
  const rowLen = w * c;
  const out = new Float64Array(outH * rowLen);
  const init = eightBit ? 2 ** (PRECISION_BITS - 1) : 0;
  const acc = new Float64Array(rowLen);
  for (let o = 0; o < outH; o++) {
    // Accumulate whole rows: contiguous reads instead of a column walk.
    acc.fill(init);
    const y0 = co.xmin[o];
    const n = co.count[o];
    const kOff = o * co.ksize;
    for (let t = 0; t < n; t++) {
      const wt = k[kOff + t];
      const r = (y0 + t) * rowLen;
      for (let i = 0; i < rowLen; i++) acc[i] += src[r + i] * wt;
    }
    const r = o * rowLen;
    for (let i = 0; i < rowLen; i++) out[r + i] = finishValue(acc[i], eightBit);
  }
  return out;
}

/**
 * Resize an HWC image with a Pillow filter. Uint8Array input -> Uint8Array output with Pillow's
 * exact rounding; Uint16Array/Float32Array input -> Float32Array output in the input's scale.
 */
export function resizePil(
  src: Pixels, h: number, w: number, c: number, outH: number, outW: number, filter: PilFilter,
): Uint8Array | Float32Array {
  const eightBit = src instanceof Uint8Array;
  const f = FILTERS[filter];
  let cur: Float64Array = new Float64Array(src); // typed-array constructor: a fast copy (`.from` iterates)
  // Pillow: horizontal pass first, each pass only when that axis changes size.
  if (outW !== w) {
    const co = precomputeCoeffs(w, outW, f);
    cur = passHorizontal(cur, h, w, c, outW, co, eightBit ? toFixedPoint(co.weights) : co.weights, eightBit);
  }
  if (outH !== h) {
    const co = precomputeCoeffs(h, outH, f);
    cur = passVertical(cur, outW, c, outH, co, eightBit ? toFixedPoint(co.weights) : co.weights, eightBit);
  }
  return eightBit ? new Uint8Array(cur) : new Float32Array(cur);
}

/**
 * OpenCV INTER_LINEAR semantics (half-pixel centres, 2 taps, no antialiasing), in float and
 * rounded to the nearest level for 8-bit input. OpenCV's own fixed-point path can differ by
 * one level on some pixels.
 */
export function resizeBilinearNoAntialias(
  src: Pixels, h: number, w: number, c: number, outH: number, outW: number,
): Uint8Array | Float32Array {
  const eightBit = src instanceof Uint8Array;
  const px = new Float64Array(src); // one element type in the hot loop (see passHorizontal)
  const out = new Float64Array(outH * outW * c);
  const axis = (inSize: number, outSize: number) => {
    const i0 = new Int32Array(outSize);
    const i1 = new Int32Array(outSize);
    const fr = new Float64Array(outSize);
    const scale = inSize / outSize;
    for (let o = 0; o < outSize; o++) {
      let s = (o + 0.5) * scale - 0.5;
      if (s < 0) s = 0;
      let a = Math.floor(s);
      let f = s - a;
      if (a >= inSize - 1) {
        a = inSize - 1;
        f = 0;
      }
      i0[o] = a;
      i1[o] = Math.min(a + 1, inSize - 1);
      fr[o] = f;
    }
    return { i0, i1, fr };
  };
  const ax = axis(w, outW);
  const ay = axis(h, outH);
  for (let y = 0; y < outH; y++) {
    const fy = ay.fr[y];
    const r0 = ay.i0[y] * w;
    const r1 = ay.i1[y] * w;
    for (let x = 0; x < outW; x++) {
      const fx = ax.fr[x];
      const c0 = ax.i0[x];
      const c1 = ax.i1[x];
      for (let ch = 0; ch < c; ch++) {
        const top = px[(r0 + c0) * c + ch] * (1 - fx) + px[(r0 + c1) * c + ch] * fx;
        const bot = px[(r1 + c0) * c + ch] * (1 - fx) + px[(r1 + c1) * c + ch] * fx;
        out[(y * outW + x) * c + ch] = top * (1 - fy) + bot * fy;
      }
    }
  }
  // Uint8Array.from rounds toward zero, so round explicitly; values are already within 0..255.
  return eightBit ? Uint8Array.from(out, (v) => Math.round(v)) : Float32Array.from(out);
}

/**
 * Nearest neighbour with Pillow's rule: source index = floor((i + 0.5) * in / out). Used for
 * masks, whose values must stay exactly 0/255 (no new intermediate levels).
 */
export function resizeNearest<T extends Uint8Array | Uint16Array | Float32Array>(
  src: T, h: number, w: number, c: number, outH: number, outW: number,
): T {
  const Ctor = src.constructor as new (n: number) => T;
  const out = new Ctor(outH * outW * c);
  const xs = new Int32Array(outW);
  for (let x = 0; x < outW; x++) xs[x] = Math.min(w - 1, Math.floor(((x + 0.5) * w) / outW));
  for (let y = 0; y < outH; y++) {
    const sy = Math.min(h - 1, Math.floor(((y + 0.5) * h) / outH));
    for (let x = 0; x < outW; x++) {
      const s = (sy * w + xs[x]) * c;
      const d = (y * outW + x) * c;
      for (let ch = 0; ch < c; ch++) out[d + ch] = src[s + ch];
    }
  }
  return out;
}

/** Python's round(): halves go to the even neighbour (torchvision's center_crop uses it). */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** torchvision CenterCrop offsets: top = round((H - ch) / 2), left = round((W - cw) / 2). */
export function centerCropOffsets(h: number, w: number, cropH: number, cropW: number): [number, number] {
  return [roundHalfEven((h - cropH) / 2), roundHalfEven((w - cropW) / 2)];
}

/** Copy a window [top, top+ch) x [left, left+cw) of an HWC image. */
export function cropHWC<T extends Uint8Array | Uint16Array | Float32Array>(
  src: T, w: number, c: number, top: number, left: number, cropH: number, cropW: number,
): T {
  const Ctor = src.constructor as new (n: number) => T;
  const out = new Ctor(cropH * cropW * c);
  for (let y = 0; y < cropH; y++) {
    const s = ((top + y) * w + left) * c;
    out.set(src.subarray(s, s + cropW * c), y * cropW * c);
  }
  return out;
}
