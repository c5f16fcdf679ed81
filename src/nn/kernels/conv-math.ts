/**
 * Convolution gradients written as FORWARD convolutions (plus pads, slices and transposes).
 *
 * Why: on the wasm backend (tfjs-backend-wasm 4.22) the forward Conv2D / DepthwiseConv2dNative
 * kernels run through XNNPACK (several GMAC/s single-threaded), while the only backward kernel it
 * ships, Conv2DBackpropInput, is a naive loop (< 1 GMAC/s, ~10x slower than forward) and
 * Conv2DBackpropFilter and the depthwise backward kernels do not exist at all. Every convolution gradient is itself a convolution, so we
 * rewrite each one as a forward conv with the right operand layout, stride, dilation and padding.
 *
 * Notation (NHWC, one spatial axis shown; the other is identical). The forward conv is
 *     xp = pad(x, top, bottom)                         (explicit zero padding)
 *     y[n,i,o] = Σ_{a,c} xp[n, i·s + a·d, c] · w[a,c,o]   (stride s, dilation d, k taps)
 * with i ∈ [0, Ho). Only rows [0, used) of xp are read, used = (Ho-1)·s + (k-1)·d + 1; rows past
 * `used` (when (Hp - effective kernel) is not a multiple of s) get zero gradient.
 *
 * Every function here uses only ops the wasm backend runs fast (conv2d/depthwiseConv2d with 'valid'
 * padding, pad, slice, transpose, reshape, stack, sum, avgPool, plain 2D matMul), never
 * passes explicit pad arrays to a conv (padding is always done with tf.pad first), and works on
 * every backend, so the same code serves as wasm kernels and as a backend-agnostic gradient.
 * None of them call tf.tidy: callers (kernel wrappers, gradient functions) own the scope.
 * wasm's Reverse, StridedSlice and GatherV2 run generic per-element loops (~15 ms for a 3x3x128x64
 * filter, measured), so filter flips and tap selections are done as a matMul with a 0/1 selection
 * matrix instead (selectTaps).
 */
import * as tf from '@tensorflow/tfjs';

/** Explicit, possibly asymmetric, spatial zero padding of the forward conv's input. */
export interface SpatialPad {
  top: number;
  bottom: number;
  left: number;
  right: number;
}

/** Geometry of a forward 2D convolution (NHWC). tfjs forbids stride > 1 together with dilation > 1. */
export interface ConvGeometry {
  strides: [number, number];
  dilations: [number, number];
  pad: SpatialPad;
}

export type Pair = [number, number];

export function asPair(v: number | readonly number[] | undefined, dflt = 1): Pair {
  if (v == null) return [dflt, dflt];
  if (typeof v === 'number') return [v, v];
  if (v.length === 1) return [v[0], v[0]];
  return [v[0], v[1]];
}

/**
 * Zero-pads (positive amounts) or crops (negative amounts) the two spatial axes of an NHWC tensor:
 * the result is the window [-top, size + bottom) of t, zeros outside t. Cropping happens first so
 * the padded tensor stays small; a window that misses t entirely is all zeros.
 */
export function padOrCrop(t: tf.Tensor4D, top: number, bottom: number, left: number, right: number): tf.Tensor4D {
  const [n, h, w, c] = t.shape;
  const outH = h + top + bottom;
  const outW = w + left + right;
  // Overlap of the window with t, in t's coordinates.
  const y0 = Math.max(0, -top);
  const y1 = Math.min(h, h + bottom);
  const x0 = Math.max(0, -left);
  const x1 = Math.min(w, w + right);
  if (y1 <= y0 || x1 <= x0) return tf.zeros([n, Math.max(0, outH), Math.max(0, outW), c]);
  let r = t;
  if (y0 > 0 || x0 > 0 || y1 < h || x1 < w) r = tf.slice(r, [0, y0, x0, 0], [n, y1 - y0, x1 - x0, c]);
  const pt = Math.max(0, top);
  const pl = Math.max(0, left);
  const pb = outH - pt - (y1 - y0);
  const pr = outW - pl - (x1 - x0);
  if (pt === 0 && pb === 0 && pl === 0 && pr === 0) return r;
  return tf.pad(r, [[0, 0], [pt, pb], [pl, pr], [0, 0]]);
}

/**
 * Stride-dilates (zero-inserts) the spatial axes: out[n, i·sh, j·sw, c] = t[n,i,j,c], zeros
 * elsewhere. The result has H·sh rows, i.e. (sh-1) trailing zero rows beyond the last sample
 * (callers fold that into their padding). Done as reshape -> pad -> reshape, all native on wasm.
 */
export function zeroInsert(t: tf.Tensor4D, sh: number, sw: number): tf.Tensor4D {
  if (sh === 1 && sw === 1) return t;
  const [n, h, w, c] = t.shape;
  const t6 = tf.reshape(t, [n, h, 1, w, 1, c]);
  const p6 = tf.pad(t6, [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]]);
  return tf.reshape(p6, [n, h * sh, w * sw, c]);
}

/**
 * Picks filter taps, in order: out[t] = w[rows[t], cols[t']] for the (rows x cols) grid, i.e. the
 * sub-filter w[rows][:, cols] with whatever order (flip, stride) the index lists encode. Done as one
 * small matMul S · W with S a 0/1 selection matrix of shape [|rows|·|cols|, kh·kw] and W the filter
 * viewed as [kh·kw, Ci·Co]: exact (each output is 1·w + Σ 0·w', assuming finite weights), fast on
 * wasm (XNNPACK), and differentiable.
 */
export function selectTaps(w: tf.Tensor4D, rows: readonly number[], cols: readonly number[]): tf.Tensor4D {
  const [kh, kw, ci, co] = w.shape;
  const identity = rows.length === kh && cols.length === kw && rows.every((r, i) => r === i) && cols.every((c, i) => c === i);
  if (identity) return w;
  const sel = new Float32Array(rows.length * cols.length * kh * kw);
  rows.forEach((r, i) => cols.forEach((c, j) => (sel[(i * cols.length + j) * kh * kw + r * kw + c] = 1)));
  const s = tf.tensor2d(sel, [rows.length * cols.length, kh * kw]);
  const picked = tf.matMul(s, tf.reshape<tf.Rank.R2>(w, [kh * kw, ci * co]));
  return tf.reshape(picked, [rows.length, cols.length, ci, co]);
}

/** [k-1, ..., 1, 0]: a spatial flip as a tap list. */
function reversed(k: number): number[] {
  return Array.from({ length: k }, (_, i) => k - 1 - i);
}

// ---------------------------------------------------------------------------------------------
// Filter gradients
// ---------------------------------------------------------------------------------------------

/**
 * dW for a regular conv: dW[a,b,c,o] = Σ_{n,i,j} xp[n, i·sh + a·dh, j·sw + b·dw, c] · dy[n,i,j,o].
 *
 * Read with c as the batch index and n as the contracted channel, this IS a forward conv:
 *     X' = xpᵀ  : [Ci, Hp, Wp, N]        (transpose [3,1,2,0])
 *     F' = dyᵀ  : [Ho, Wo, N, Co]        (transpose [1,2,0,3])  — the output gradient as filter
 *     dW' = conv2d(X', F', stride = d, dilation = s) : [Ci, kh, kw, Co]
 *     dW  = dW'ᵀ : [kh, kw, Ci, Co]      (i.e. dW = x ⋆ dy with the roles of stride and dilation swapped)
 * xp is first padded/cropped to exactly `used` rows/cols so the conv output is exactly kh x kw.
 * Since the forward conv had stride 1 or dilation 1, so does this one (tfjs' requirement).
 */
export function conv2dFilterGrad(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: readonly [number, number, number, number],
  g: ConvGeometry,
): tf.Tensor4D {
  const [kh, kw] = filterShape;
  const [n, h, w, ci] = x.shape;
  const [, ho, wo, co] = dy.shape;
  const [sh, sw] = g.strides;
  const [dh, dw] = g.dilations;
  if (kh === 1 && kw === 1) {
    // 1x1 (ResNet bottlenecks, shortcuts): dW = X_sᵀ · dy, one matMul over the P = N·Ho·Wo pixels,
    // where X_s is xp subsampled by the stride. The conv form would use a Ho x Wo "filter", which
    // XNNPACK runs far below its matMul speed. The stride subsampling xp[:, ::s, ::s] is a 1x1
    // average pool with stride s (exact: a mean of one value), ~4x faster on wasm than a slice of
    // a reshaped view and ~50x faster than stridedSlice.
    const xp = padOrCrop(x, g.pad.top, (ho - 1) * sh + 1 - h - g.pad.top, g.pad.left, (wo - 1) * sw + 1 - w - g.pad.left);
    const xs = sh === 1 && sw === 1 ? xp : tf.avgPool(xp, 1, [sh, sw], 'valid');
    const x2 = tf.reshape(xs, [n * ho * wo, ci]);
    // Explicit transpose: wasm's BatchMatMul is ~10x slower with transposeA than without.
    const dw2 = tf.matMul(tf.transpose(x2) as tf.Tensor2D, tf.reshape(dy, [n * ho * wo, co]) as tf.Tensor2D);
    return tf.reshape(dw2, [1, 1, ci, co]);
  }
  const usedH = (ho - 1) * sh + (kh - 1) * dh + 1;
  const usedW = (wo - 1) * sw + (kw - 1) * dw + 1;
  const xp = padOrCrop(x, g.pad.top, usedH - h - g.pad.top, g.pad.left, usedW - w - g.pad.left);
  const xt = tf.transpose(xp, [3, 1, 2, 0]);
  const dyt = tf.transpose(dy, [1, 2, 0, 3]);
  const dwt = tf.conv2d(xt, dyt, [dh, dw], 'valid', 'NHWC', [sh, sw]);
  return tf.transpose(dwt, [1, 2, 0, 3]);
}

/**
 * dW for a depthwise conv (filter [kh,kw,C,M], output channel c·M+m):
 *     dW[a,b,c,m] = Σ_{n,i,j} xp[n, i·sh + a·dh, j·sw + b·dw, c] · dy[n,i,j,c·M+m].
 * Fold the batch into the channel axis so that it becomes ONE depthwise conv (batch 1):
 *     X'' = xp -> [Hp,Wp,N,C] -> [1, Hp, Wp, N·C]
 *     F'' = dy -> [Ho,Wo,N,C·M] -> [Ho, Wo, N·C, M]      (per-channel filters = output gradient)
 *     depthwiseConv2d(X'', F'', stride = d, dilation = s) : [1, kh, kw, N·C·M]
 * then reshape to [kh,kw,N,C,M] and sum over N.
 */
export function depthwiseFilterGrad(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: readonly [number, number, number, number],
  g: ConvGeometry,
): tf.Tensor4D {
  const [kh, kw, c, m] = filterShape;
  const [n, h, w] = x.shape;
  const [, ho, wo] = dy.shape;
  const [sh, sw] = g.strides;
  const [dh, dw] = g.dilations;
  const usedH = (ho - 1) * sh + (kh - 1) * dh + 1;
  const usedW = (wo - 1) * sw + (kw - 1) * dw + 1;
  const xp = padOrCrop(x, g.pad.top, usedH - h - g.pad.top, g.pad.left, usedW - w - g.pad.left);
  const xt = tf.reshape<tf.Rank.R4>(tf.transpose(xp, [1, 2, 0, 3]), [1, usedH, usedW, n * c]);
  const dyt = tf.reshape<tf.Rank.R4>(tf.transpose(dy, [1, 2, 0, 3]), [ho, wo, n * c, m]);
  const out = tf.depthwiseConv2d(xt, dyt, [dh, dw], 'valid', 'NHWC', [sh, sw]);
  if (n === 1) return tf.reshape(out, [kh, kw, c, m]);
  return tf.sum<tf.Tensor4D>(tf.reshape(out, [kh, kw, n, c, m]), 2);
}

// ---------------------------------------------------------------------------------------------
// Input gradients
// ---------------------------------------------------------------------------------------------

/**
 * How to run "dy -> dx" as a forward conv: `wf` is the filter already rearranged so that its
 * input channels match dy's channels ([kh, kw, Cdy, Cdx] for conv, [kh, kw, Cdy, 1] for the
 * depthwise form), and `conv` runs the forward conv (stride 1, the given dilation, 'valid').
 */
interface BackConv {
  wf: tf.Tensor4D;
  conv: (t: tf.Tensor4D, f: tf.Tensor4D, dilation: Pair) => tf.Tensor4D;
  outChannels: number;
}

/**
 * Generic input gradient by zero insertion, valid for any stride/dilation:
 *     dxp[p] = Σ_{i,a: i·s + a·d = p} dy[i] · w[a]
 *            = Σ_a' dyz_pad[p + a'·d] · w[k-1-a']           (full correlation with the flipped filter)
 * where dyz is dy stride-dilated (zero-inserted) and padded by (k-1)·d on both sides. We fold the
 * forward padding into that padding (top' = (k-1)d - top) so the conv directly yields x's rows,
 * and the "unused" tail rows r = Hp - used get the zero rows they deserve via the bottom padding.
 * Wastes (s²-1)/s² of its MACs on inserted zeros when s > 1, hence `polyphaseInputGrad`.
 */
function zeroInsertInputGrad(dy: tf.Tensor4D, inShape: readonly number[], k: Pair, g: ConvGeometry, bc: BackConv): tf.Tensor4D {
  const [, h, w] = inShape;
  const [, ho, wo] = dy.shape;
  const [kh, kw] = k;
  const [sh, sw] = g.strides;
  const [dh, dw] = g.dilations;
  const { top, bottom, left, right } = g.pad;
  const rH = h + top + bottom - ((ho - 1) * sh + (kh - 1) * dh + 1);
  const rW = w + left + right - ((wo - 1) * sw + (kw - 1) * dw + 1);
  const padT = (kh - 1) * dh - top;
  const padB = (kh - 1) * dh + rH - bottom - (sh - 1);
  const padL = (kw - 1) * dw - left;
  const padR = (kw - 1) * dw + rW - right - (sw - 1);
  if (kh === 1 && kw === 1) {
    // A 1x1 conv commutes with zero insertion and zero padding: convolve the small tensor first.
    return padOrCrop(zeroInsert(bc.conv(dy, bc.wf, [1, 1]), sh, sw), padT, padB, padL, padR);
  }
  const z = padOrCrop(zeroInsert(dy, sh, sw), padT, padB, padL, padR);
  return bc.conv(z, selectTaps(bc.wf, reversed(kh), reversed(kw)), [dh, dw]);
}

/** One axis of the polyphase split: which dy window and which filter taps feed output phase k. */
interface Phase {
  /** Output rows y = k, k+s, k+2s, ... (count q). */
  q: number;
  /** Filter taps a = rho, rho+s, ... (count t); 0 means this phase receives no gradient. */
  rho: number;
  t: number;
  /** Pad (>0) / crop (<0) of dy before the valid conv. */
  padBefore: number;
  padAfter: number;
}

function phasesFor(size: number, padBefore: number, k: number, s: number, outLen: number): Phase[] {
  const res: Phase[] = [];
  for (let kk = 0; kk < s; kk++) {
    const q = kk < size ? Math.ceil((size - kk) / s) : 0;
    const p0 = padBefore + kk; // padded coordinate of the first output row of this phase
    const rho = p0 % s;
    const q0 = (p0 - rho) / s;
    const t = rho < k ? Math.ceil((k - rho) / s) : 0;
    // dxp[q·s+rho] = Σ_{t'} dy[q - (t-1) + t'] · w[(t-1-t')·s + rho]: a valid correlation over
    // dy rows [q0 - t + 1, q0 + q - 1] (out-of-range rows are zero padding).
    res.push({ q, rho, t, padBefore: t - 1 - q0, padAfter: q0 + q - 1 - (outLen - 1) });
  }
  return res;
}

/**
 * Input gradient for stride s > 1 (dilation 1) without multiplying by inserted zeros: split the
 * output rows by phase p ≡ rho (mod s). Row p = q·s + rho only receives taps a ≡ rho (mod s):
 *     dxp[q·s + rho] = Σ_t dy[q - t] · w[t·s + rho]
 * i.e. a stride-1 full correlation of dy with the sub-filter w[rho::s] flipped. Each of the s_h·s_w
 * phases is one small forward conv (exactly the useful MACs); phases are interleaved back with
 * stack + reshape (depth-to-space), and phases with no taps (e.g. all but one for 1x1 filters) are zeros.
 */
function polyphaseInputGrad(dy: tf.Tensor4D, inShape: readonly number[], k: Pair, g: ConvGeometry, bc: BackConv): tf.Tensor4D {
  const [n, h, w] = inShape;
  const [, ho, wo] = dy.shape;
  const [kh, kw] = k;
  const [sh, sw] = g.strides;
  const ph = phasesFor(h, g.pad.top, kh, sh, ho);
  const pw = phasesFor(w, g.pad.left, kw, sw, wo);
  const qh = Math.ceil(h / sh);
  const qw = Math.ceil(w / sw);
  const c = bc.outChannels;
  const rows: tf.Tensor4D[][] = [];
  for (const a of ph) {
    const row: tf.Tensor4D[] = [];
    for (const b of pw) {
      let part: tf.Tensor4D;
      if (a.t === 0 || b.t === 0 || a.q === 0 || b.q === 0) {
        part = tf.zeros([n, qh, qw, c]);
      } else {
        // Sub-filter w[rho::s] flipped: taps rho + (t-1)s, ..., rho + s, rho.
        const rowsIdx = Array.from({ length: a.t }, (_, i) => a.rho + (a.t - 1 - i) * sh);
        const colsIdx = Array.from({ length: b.t }, (_, i) => b.rho + (b.t - 1 - i) * sw);
        const win = padOrCrop(dy, a.padBefore, a.padAfter, b.padBefore, b.padAfter);
        part = bc.conv(win, selectTaps(bc.wf, rowsIdx, colsIdx), [1, 1]);
        if (a.q < qh || b.q < qw) part = tf.pad(part, [[0, 0], [0, qh - a.q], [0, qw - b.q], [0, 0]]);
      }
      row.push(part);
    }
    rows.push(row);
  }
  // [N, qh, sh, qw, sw, C] -> [N, qh·sh, qw·sw, C]: row y = q·sh + kk comes from phase kk.
  const stacked = tf.stack(rows.map((r) => tf.stack(r, 3)), 2);
  const inter = tf.reshape<tf.Rank.R4>(stacked, [n, qh * sh, qw * sw, c]);
  if (qh * sh === h && qw * sw === w) return inter;
  return tf.slice(inter, [0, 0, 0, 0], [n, h, w, c]);
}

function inputGrad(dy: tf.Tensor4D, inShape: readonly number[], k: Pair, g: ConvGeometry, bc: BackConv): tf.Tensor4D {
  const [sh, sw] = g.strides;
  const [dh, dw] = g.dilations;
  if ((sh > 1 || sw > 1) && dh === 1 && dw === 1 && !(k[0] === 1 && k[1] === 1)) {
    return polyphaseInputGrad(dy, inShape, k, g, bc);
  }
  return zeroInsertInputGrad(dy, inShape, k, g, bc);
}

/**
 * dx for a regular conv, w: [kh,kw,Ci,Co]. The "back" filter maps dy's Co channels to Ci:
 * wf[a,b,o,c] = w[a,b,c,o] (transpose [0,1,3,2]); the spatial flip is applied per (sub-)filter.
 */
export function conv2dInputGrad(
  dy: tf.Tensor4D,
  filter: tf.Tensor4D,
  inShape: readonly [number, number, number, number],
  g: ConvGeometry,
  opts: { polyphase?: boolean } = {},
): tf.Tensor4D {
  const [kh, kw, ci] = filter.shape;
  const bc: BackConv = {
    wf: tf.transpose(filter, [0, 1, 3, 2]),
    conv: (t, f, d) => tf.conv2d(t, f, 1, 'valid', 'NHWC', d),
    outChannels: ci,
  };
  return opts.polyphase === false ? zeroInsertInputGrad(dy, inShape, [kh, kw], g, bc) : inputGrad(dy, inShape, [kh, kw], g, bc);
}

/**
 * dx for a depthwise conv, w: [kh,kw,C,M]. dx[c] = Σ_m (dy[c·M+m] ⋆ flip(w[c,m])): a depthwise
 * conv over dy's C·M channels with multiplier 1 (filter reshaped to [kh,kw,C·M,1]), then a sum
 * over the M channels belonging to each input channel.
 */
export function depthwiseInputGrad(
  dy: tf.Tensor4D,
  filter: tf.Tensor4D,
  inShape: readonly [number, number, number, number],
  g: ConvGeometry,
  opts: { polyphase?: boolean } = {},
): tf.Tensor4D {
  const [kh, kw, c, m] = filter.shape;
  const bc: BackConv = {
    wf: tf.reshape(filter, [kh, kw, c * m, 1]),
    conv: (t, f, d) => tf.depthwiseConv2d(t, f, 1, 'valid', 'NHWC', d),
    outChannels: c * m,
  };
  // Zero insertion, not polyphase, by default: XNNPACK has fast depthwise microkernels for square
  // 3x3/5x5-style filters but not for the 2x1/1x2 sub-filters of a polyphase split (measured 3x3 s2:
  // 0.11 vs 0.07 GMAC/s in useful MACs).
  const dxm = opts.polyphase === true ? inputGrad(dy, inShape, [kh, kw], g, bc) : zeroInsertInputGrad(dy, inShape, [kh, kw], g, bc);
  if (m === 1) return dxm;
  const [n, h, w] = inShape;
  return tf.sum(tf.reshape(dxm, [n, h, w, c, m]), 4);
}

/** Geometry from tfjs' own conv bookkeeping (resolves 'same'/'valid'/number/explicit padding). */
export function geometryFromConvInfo(info: tf.backend_util.Conv2DInfo): ConvGeometry {
  return {
    strides: [info.strideHeight, info.strideWidth],
    dilations: [info.dilationHeight, info.dilationWidth],
    pad: { top: info.padInfo.top, bottom: info.padInfo.bottom, left: info.padInfo.left, right: info.padInfo.right },
  };
}
