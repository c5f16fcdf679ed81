/**
 * wasm SIMD kernels that run on tfjs-backend-wasm's OWN heap (the module imports that memory), for
 * the memory-bound work around the convolutions of a training step: per-channel reductions,
 * per-channel affine maps, 2×2 max-pool gradients and the Adam update.
 *
 * Why on tfjs' heap rather than in the GEMM engine: these kernels do one or two flops per value,
 * so copying their inputs into the engine's shared memory would cost as much as the work itself.
 * Running on tfjs' memory needs no copy but only the calling thread (that memory is not shared).
 * What they replace, measured in a DRAEM step (docs/performance.md): tfjs-wasm's Sum and Mean over
 * the leading axes of an NHWC tensor transpose it first and reduce in a scalar loop; MaxPoolGrad
 * is a generic scalar loop; Adam is ~12 full passes over every parameter.
 *
 * All addresses are byte offsets into the heap; counts are elements. Summation orders are fixed
 * (no threads), so results are deterministic.
 */
import { encodeModule, Fn, FunctionDef, op, V128, F32, Code } from './wasmEncoder.js';

/** Rows per partial sum in the column reductions: error grows with ROW_BLOCK + M/ROW_BLOCK, not M. */
export const ROW_BLOCK = 64;

/** for (name = from; name < to; name += step) body — i32, signed compare. */
function forRange(f: Fn, name: string, from: Code, to: Code, step: number, ...body: Code[]): Code[] {
  return [
    f.s(name, from),
    op.block(op.loop(
      op.brIf(1, op.geS(f.g(name), to)),
      ...body,
      f.s(name, op.add(f.g(name), op.i32(step))),
      op.br(0),
    )),
  ];
}

const addr = (f: Fn, base: string, index: string): Code => op.add(f.g(base), op.shl(f.g(index), op.i32(2)));

/**
 * dst[c] = scale · Σ_r a[r·C + c]  (dot: Σ_r a[r·C + c]·b[r·C + c]) for an [M, C] row-major
 * matrix, i.e. a reduction over every axis but the channels of NHWC data. Three levels of partial
 * sums: ROW_BLOCK rows into `blk`, ROW_BLOCK blocks into `mid` (2·C floats of scratch at blk), then
 * into dst: float32 error ~ (128 + M/4096)·ε instead of M·ε.
 */
function columnReduce(name: string, dot: boolean): FunctionDef {
  const f = new Fn(['a', 'b', 'M', 'C', 'dst', 'blk', 'scale:f32']);
  for (const l of ['r', 'r1', 'c', 'C4', 'pa', 'pb', 'rowBytes', 'mid', 'nb']) f.local(l);
  const term = (v: boolean): Code => {
    const at = (p: string): Code => (v ? op.v128Load(addr(f, p, 'c')) : op.f32Load(addr(f, p, 'c')));
    if (!dot) return at('pa');
    return v ? op.f32x4Mul(at('pa'), at('pb')) : op.f32Mul(at('pa'), at('pb'));
  };
  return f.def(name, [
    f.s('C4', op.and(f.g('C'), op.i32(~3))),
    f.s('rowBytes', op.shl(f.g('C'), op.i32(2))),
    op.memoryFill(f.g('dst'), op.i32(0), f.g('rowBytes')),
    f.s('mid', op.add(f.g('blk'), f.g('rowBytes'))),
    op.memoryFill(f.g('mid'), op.i32(0), f.g('rowBytes')),
    f.s('nb', op.i32(0)),
    f.s('pa', f.g('a')),
    f.s('pb', f.g('b')),
    f.s('r', op.i32(0)),
    op.block(op.loop(
      op.brIf(1, op.geS(f.g('r'), f.g('M'))),
      f.s('r1', op.add(f.g('r'), op.i32(ROW_BLOCK))),
      op.if_(op.ltS(f.g('M'), f.g('r1')), f.s('r1', f.g('M'))),
      op.memoryFill(f.g('blk'), op.i32(0), f.g('rowBytes')),
      op.block(op.loop(
        op.brIf(1, op.geS(f.g('r'), f.g('r1'))),
        ...forRange(f, 'c', op.i32(0), f.g('C4'), 4,
          op.v128Store(addr(f, 'blk', 'c'), op.f32x4Add(op.v128Load(addr(f, 'blk', 'c')), term(true)))),
        ...forRange(f, 'c', f.g('C4'), f.g('C'), 1,
          op.f32Store(addr(f, 'blk', 'c'), op.f32Add(op.f32Load(addr(f, 'blk', 'c')), term(false)))),
        f.s('pa', op.add(f.g('pa'), f.g('rowBytes'))),
        f.s('pb', op.add(f.g('pb'), f.g('rowBytes'))),
        f.s('r', op.add(f.g('r'), op.i32(1))),
        op.br(0),
      )),
      ...forRange(f, 'c', op.i32(0), f.g('C'), 1,
        op.f32Store(addr(f, 'mid', 'c'), op.f32Add(op.f32Load(addr(f, 'mid', 'c')), op.f32Load(addr(f, 'blk', 'c'))))),
      f.s('nb', op.add(f.g('nb'), op.i32(1))),
      op.if_(op.or(op.eqz(op.remS(f.g('nb'), op.i32(ROW_BLOCK))), op.geS(f.g('r'), f.g('M'))),
        ...forRange(f, 'c', op.i32(0), f.g('C'), 1,
          op.f32Store(addr(f, 'dst', 'c'), op.f32Add(op.f32Load(addr(f, 'dst', 'c')), op.f32Load(addr(f, 'mid', 'c'))))),
        op.memoryFill(f.g('mid'), op.i32(0), f.g('rowBytes'))),
      op.br(0),
    )),
    ...forRange(f, 'c', op.i32(0), f.g('C'), 1,
      op.f32Store(addr(f, 'dst', 'c'), op.f32Mul(op.f32Load(addr(f, 'dst', 'c')), f.g('scale')))),
  ]);
}

/**
 * Row loop of the per-channel kernels over [M, C]: `ptrs` (local ← param) start at their tensors
 * and advance one row (C floats) per r; `row(vec)` is the body for channels c..c+3 (vec) or c.
 * Uses locals r, c, C4, rowBytes.
 */
function overChannelRows(f: Fn, ptrs: [string, string][], row: (vec: boolean) => Code): Code[] {
  return [
    f.s('C4', op.and(f.g('C'), op.i32(~3))),
    f.s('rowBytes', op.shl(f.g('C'), op.i32(2))),
    ...ptrs.map(([local, param]) => f.s(local, f.g(param))),
    ...forRange(f, 'r', op.i32(0), f.g('M'), 1,
      ...forRange(f, 'c', op.i32(0), f.g('C4'), 4, row(true)),
      ...forRange(f, 'c', f.g('C4'), f.g('C'), 1, row(false)),
      ...ptrs.map(([local]) => f.s(local, op.add(f.g(local), f.g('rowBytes'))))),
  ];
}

/**
 * out[r, c] = p[r, c]·u[c] + q[r, c]·v[c] + w[c] over [M, C] (then max(0, ·) when `relu`):
 * BatchNorm's normalisation (q = p, v = 0), with its ReLU, and its input gradient
 * (dx = dy·s + xc·t + k) in one pass each.
 */
function channelAffine(): FunctionDef {
  const f = new Fn(['p', 'q', 'M', 'C', 'u', 'v', 'w', 'out', 'relu']);
  for (const l of ['r', 'c', 'C4', 'pp', 'pq', 'po', 'rowBytes']) f.local(l);
  f.local('floor', V128);
  f.local('sfloor', F32);
  const row = (vec: boolean): Code => {
    const ld = (base: string): Code => (vec ? op.v128Load(addr(f, base, 'c')) : op.f32Load(addr(f, base, 'c')));
    const mul = vec ? op.f32x4Mul : op.f32Mul;
    const add = vec ? op.f32x4Add : op.f32Add;
    const max = vec ? op.f32x4Max : op.f32Max;
    // relu: max(·, 0); otherwise max(·, −inf), which is the identity (NaN stays NaN with f32x4.max)
    const value = max(add(add(mul(ld('pp'), ld('u')), mul(ld('pq'), ld('v'))), ld('w')), f.g(vec ? 'floor' : 'sfloor'));
    return vec ? op.v128Store(addr(f, 'po', 'c'), value) : op.f32Store(addr(f, 'po', 'c'), value);
  };
  return f.def('channelAffine', [
    f.s('sfloor', op.select(op.f32Zero(), op.f32Const(-Infinity), f.g('relu'))),
    f.s('floor', op.f32x4Splat(f.g('sfloor'))),
    ...overChannelRows(f, [['pp', 'p'], ['pq', 'q'], ['po', 'out']], row),
  ]);
}

/**
 * The ReLU gradient behind a fused BatchNorm+ReLU, from BatchNorm's saved xc: out = dz where
 * xc·s + b > 0 (the pre-activation, computed as channelAffine computes it), else 0.
 */
function affineReluGrad(): FunctionDef {
  const f = new Fn(['dz', 'xc', 'M', 'C', 's', 'b', 'out']);
  for (const l of ['r', 'c', 'C4', 'pd', 'px', 'po', 'rowBytes']) f.local(l);
  const row = (vec: boolean): Code => {
    const ld = (base: string): Code => (vec ? op.v128Load(addr(f, base, 'c')) : op.f32Load(addr(f, base, 'c')));
    if (vec) {
      const pre = op.f32x4Add(op.f32x4Mul(ld('px'), ld('s')), ld('b'));
      return op.v128Store(addr(f, 'po', 'c'), op.v128And(ld('pd'), op.f32x4Gt(pre, op.v128Zero())));
    }
    const pre = op.f32Add(op.f32Mul(ld('px'), ld('s')), ld('b'));
    return op.f32Store(addr(f, 'po', 'c'), op.select(ld('pd'), op.f32Zero(), op.f32Gt(pre, op.f32Zero())));
  };
  return f.def('affineReluGrad', overChannelRows(f, [['pd', 'dz'], ['px', 'xc'], ['po', 'out']], row));
}

/**
 * Gradient of a 2×2, stride-2, unpadded max pool (NHWC, H×W input, floor(H/2)×floor(W/2) output):
 * each output gradient goes to the FIRST maximum of its window in row-major order, tfjs' and
 * PyTorch's rule (ReLU outputs tie at 0 often). dx must be zeroed by the caller when H or W is odd
 * (the last row/column belongs to no window).
 */
function maxPoolGrad2x2(): FunctionDef {
  const f = new Fn(['x', 'dy', 'N', 'H', 'W', 'C', 'dx']);
  for (const l of ['n', 'i', 'j', 'c', 'C4', 'OH', 'OW', 'p00', 'pdy', 'rowBytes', 'pixBytes', 'q']) f.local(l);
  for (const l of ['va', 'vb', 'vc', 'vd', 'vg', 'vm', 'ea', 'eb', 'ec', 'taken']) f.local(l, V128);
  for (const l of ['sa', 'sb', 'sc', 'sd', 'sg', 'sm']) f.local(l, F32);
  f.local('ta');
  f.local('tb');
  f.local('tc');
  const at = (base: string, extra: Code): Code => op.add(op.add(f.g(base), extra), op.shl(f.g('c'), op.i32(2)));
  const offs: Code[] = [op.i32(0), f.g('pixBytes'), f.g('rowBytes'), op.add(f.g('rowBytes'), f.g('pixBytes'))];
  const vecBody: Code[] = [
    f.s('va', op.v128Load(at('p00', offs[0]))),
    f.s('vb', op.v128Load(at('p00', offs[1]))),
    f.s('vc', op.v128Load(at('p00', offs[2]))),
    f.s('vd', op.v128Load(at('p00', offs[3]))),
    f.s('vg', op.v128Load(at('pdy', op.i32(0)))),
    f.s('vm', op.f32x4Max(op.f32x4Max(f.g('va'), f.g('vb')), op.f32x4Max(f.g('vc'), f.g('vd')))),
    f.s('ea', op.f32x4Eq(f.g('va'), f.g('vm'))),
    f.s('eb', op.v128AndNot(op.f32x4Eq(f.g('vb'), f.g('vm')), f.g('ea'))),
    f.s('taken', op.v128Or(f.g('ea'), f.g('eb'))),
    f.s('ec', op.v128AndNot(op.f32x4Eq(f.g('vc'), f.g('vm')), f.g('taken'))),
    f.s('taken', op.v128Or(f.g('taken'), f.g('ec'))),
  ];
  // dx has x's layout: q = dx + (p00 − x) walks it in step with p00
  const dxAt = (k: number): Code => at('q', offs[k]);
  vecBody.push(
    op.v128Store(dxAt(0), op.v128And(f.g('vg'), f.g('ea'))),
    op.v128Store(dxAt(1), op.v128And(f.g('vg'), f.g('eb'))),
    op.v128Store(dxAt(2), op.v128And(f.g('vg'), f.g('ec'))),
    op.v128Store(dxAt(3), op.v128AndNot(f.g('vg'), f.g('taken'))),
  );
  const zero = op.f32Zero();
  const scalarBody: Code[] = [
    f.s('sa', op.f32Load(at('p00', offs[0]))),
    f.s('sb', op.f32Load(at('p00', offs[1]))),
    f.s('sc', op.f32Load(at('p00', offs[2]))),
    f.s('sd', op.f32Load(at('p00', offs[3]))),
    f.s('sg', op.f32Load(at('pdy', op.i32(0)))),
    f.s('sm', op.f32Max(op.f32Max(f.g('sa'), f.g('sb')), op.f32Max(f.g('sc'), f.g('sd')))),
    f.s('ta', op.f32Eq(f.g('sa'), f.g('sm'))),
    f.s('tb', op.and(op.f32Eq(f.g('sb'), f.g('sm')), op.eqz(f.g('ta')))),
    f.s('tc', op.and(op.f32Eq(f.g('sc'), f.g('sm')), op.eqz(op.or(f.g('ta'), f.g('tb'))))),
    op.f32Store(dxAt(0), op.select(f.g('sg'), zero, f.g('ta'))),
    op.f32Store(dxAt(1), op.select(f.g('sg'), zero, f.g('tb'))),
    op.f32Store(dxAt(2), op.select(f.g('sg'), zero, f.g('tc'))),
    op.f32Store(dxAt(3), op.select(f.g('sg'), zero, op.eqz(op.or(op.or(f.g('ta'), f.g('tb')), f.g('tc'))))),
  ];
  return f.def('maxPoolGrad2x2', [
    f.s('C4', op.and(f.g('C'), op.i32(~3))),
    f.s('OH', op.shrS(f.g('H'), op.i32(1))),
    f.s('OW', op.shrS(f.g('W'), op.i32(1))),
    f.s('pixBytes', op.shl(f.g('C'), op.i32(2))),
    f.s('rowBytes', op.mul(f.g('W'), f.g('pixBytes'))),
    f.s('pdy', f.g('dy')),
    ...forRange(f, 'n', op.i32(0), f.g('N'), 1,
      ...forRange(f, 'i', op.i32(0), f.g('OH'), 1,
        // window row 2i of image n
        f.s('p00', op.add(f.g('x'), op.mul(op.add(op.mul(f.g('n'), f.g('H')), op.shl(f.g('i'), op.i32(1))), f.g('rowBytes')))),
        f.s('q', op.add(f.g('dx'), op.sub(f.g('p00'), f.g('x')))),
        ...forRange(f, 'j', op.i32(0), f.g('OW'), 1,
          ...forRange(f, 'c', op.i32(0), f.g('C4'), 4, ...vecBody),
          ...forRange(f, 'c', f.g('C4'), f.g('C'), 1, ...scalarBody),
          f.s('p00', op.add(f.g('p00'), op.shl(f.g('pixBytes'), op.i32(1)))),
          f.s('q', op.add(f.g('q'), op.shl(f.g('pixBytes'), op.i32(1)))),
          f.s('pdy', op.add(f.g('pdy'), f.g('pixBytes'))))),
    ),
  ]);
}

/**
 * One Adam/AdamW update over n values, the same float32 operations in the same order as
 * src/train/optimizers/adam.ts's op chain (so the results are bit-identical to it):
 *   θ' = θ·decay;  g' = g + θ·wd;  m' = m·β1 + g'·(1−β1);  v' = v·β2 + (g'·g')·(1−β2)
 *   θ_new = θ' − (m'·stepSize) / (√v' / bc2Sqrt + eps)
 * (decay = 1 − lr·wd for AdamW else 1; wd = the coupled L2 weight, 0 for AdamW).
 */
function adamStep(): FunctionDef {
  const f = new Fn(['p', 'g', 'm', 'v', 'n', 'b1:f32', 'omb1:f32', 'b2:f32', 'omb2:f32', 'bc2:f32', 'step:f32', 'eps:f32', 'wd:f32', 'decay:f32', 'pOut', 'mOut', 'vOut']);
  for (const l of ['i', 'n4']) f.local(l);
  const S = ['b1', 'omb1', 'b2', 'omb2', 'bc2', 'step', 'eps', 'wd', 'decay'];
  for (const s of S) f.local(`${s}4`, V128);
  for (const l of ['tp', 'tg', 'tm', 'tv']) f.local(l, V128);
  for (const l of ['xp', 'xg', 'xm', 'xv']) f.local(l, F32);
  const update = (vec: boolean): Code[] => {
    const t = (n: string): string => (vec ? `t${n}` : `x${n}`);
    const c = (n: string): Code => (vec ? f.g(`${n}4`) : f.g(n));
    const mul = vec ? op.f32x4Mul : op.f32Mul;
    const add = vec ? op.f32x4Add : op.f32Add;
    const sub = vec ? op.f32x4Sub : op.f32Sub;
    const div = vec ? op.f32x4Div : op.f32Div;
    const sqrt = vec ? op.f32x4Sqrt : op.f32Sqrt;
    const ld = (base: string): Code => (vec ? op.v128Load(addr(f, base, 'i')) : op.f32Load(addr(f, base, 'i')));
    const st = (base: string, v: Code): Code => (vec ? op.v128Store(addr(f, base, 'i'), v) : op.f32Store(addr(f, base, 'i'), v));
    return [
      f.s(t('p'), ld('p')),
      f.s(t('g'), add(ld('g'), mul(f.g(t('p')), c('wd')))),
      f.s(t('m'), add(mul(ld('m'), c('b1')), mul(f.g(t('g')), c('omb1')))),
      f.s(t('v'), add(mul(ld('v'), c('b2')), mul(mul(f.g(t('g')), f.g(t('g'))), c('omb2')))),
      st('mOut', f.g(t('m'))),
      st('vOut', f.g(t('v'))),
      st('pOut', sub(mul(f.g(t('p')), c('decay')), div(mul(f.g(t('m')), c('step')), add(div(sqrt(f.g(t('v'))), c('bc2')), c('eps'))))),
    ];
  };
  return f.def('adamStep', [
    ...S.map((s) => f.s(`${s}4`, op.f32x4Splat(f.g(s)))),
    f.s('n4', op.and(f.g('n'), op.i32(~3))),
    ...forRange(f, 'i', op.i32(0), f.g('n4'), 4, ...update(true)),
    ...forRange(f, 'i', f.g('n4'), f.g('n'), 1, ...update(false)),
  ]);
}

/**
 * dst[r·dstStride ..+ rowBytes) = src[r·srcStride ..+ rowBytes) for r < M (bytes): one
 * memory.copy per row. Concat and split along any axis are this with M = the product of the
 * dimensions before the axis.
 */
function copyRows(): FunctionDef {
  const f = new Fn(['src', 'srcStride', 'dst', 'dstStride', 'rowBytes', 'M']);
  f.local('r');
  return f.def('copyRows', [
    ...forRange(f, 'r', op.i32(0), f.g('M'), 1,
      op.memoryCopy(f.g('dst'), f.g('src'), f.g('rowBytes')),
      f.s('src', op.add(f.g('src'), f.g('srcStride'))),
      f.s('dst', op.add(f.g('dst'), f.g('dstStride')))),
  ]);
}

export interface HeapExports {
  copyRows(src: number, srcStride: number, dst: number, dstStride: number, rowBytes: number, M: number): void;
  columnSum(a: number, b: number, M: number, C: number, dst: number, blk: number, scale: number): void;
  columnDot(a: number, b: number, M: number, C: number, dst: number, blk: number, scale: number): void;
  channelAffine(p: number, q: number, M: number, C: number, u: number, v: number, w: number, out: number, relu: number): void;
  affineReluGrad(dz: number, xc: number, M: number, C: number, s: number, b: number, out: number): void;
  maxPoolGrad2x2(x: number, dy: number, N: number, H: number, W: number, C: number, dx: number): void;
  adamStep(
    p: number, g: number, m: number, v: number, n: number,
    b1: number, omb1: number, b2: number, omb2: number, bc2: number, step: number, eps: number, wd: number, decay: number,
    pOut: number, mOut: number, vOut: number,
  ): void;
}

/** The module's bytes; it imports env.mem, any non-shared memory (tfjs-backend-wasm's heap). */
export function heapModuleBytes(): Uint8Array<ArrayBuffer> {
  return encodeModule([columnReduce('columnSum', false), columnReduce('columnDot', true), channelAffine(), affineReluGrad(), maxPoolGrad2x2(), adamStep(), copyRows()], 65536, false);
}
