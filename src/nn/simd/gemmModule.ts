/**
 * The wasm SIMD convolution/GEMM kernels, generated as a module (see wasmEncoder.ts).
 *
 * Why our own GEMM: tfjs-backend-wasm's XNNPACK build (tfjs 4.22) runs convolutions at 8–9 GMAC/s
 * per core here; wasm SIMD without FMA caps a core near 10 GMAC/s (one f32x4 mul + one f32x4 add
 * per multiply-add of 4 lanes). V8 implements the relaxed-SIMD `f32x4.relaxed_madd` with the
 * CPU's FMA, which doubles that cap; a 4×8 register tile (8 accumulators, 2 B vectors, 1 A splat)
 * measured 17.3 GMAC/s on one core of this machine's Xeon (plain mul+add: 11.3).
 *
 * Layout (GotoBLAS-style, Goto & van de Geijn 2008): A = im2col rows of the NHWC input (or the
 * padded image itself, implicit GEMM), one row per output pixel, K = kh·kw·Cin values in the
 * filter's own [kh, kw, Cin] order, packed per k chunk into tiles of 4 rows ([kc][4], packA);
 * B = the filter [K, Cout] packed per k chunk into panels of 8 output channels ([K/kc][Cout/8][kc][8],
 * zero-padded), so a 4-row tile of A stays in L1 while the chunk of B streams from L2; C is
 * accumulated over K in chunks of kc. Every output element is computed by one thread with the
 * same summation order whatever the thread count, so results are deterministic.
 */
import { encodeModule, F32, Fn, FunctionDef, op, V128, Code } from './wasmEncoder.js';

export const MR = 4;
export const NR = 8;

/** Function indices in the module (call targets). */
const F = { gemm: 0, im2col: 1, finish: 2, convBlock: 3, packB: 4, packA: 5, convBlockImplicit: 6, packSegments: 7, filterGradBlock: 8, padImage: 9 } as const;

/** i32.load(addr) (alignment 4, offset 0) */
const i32Load = (addr: Code): Code => [addr, 0x28, 0x02, 0x00];

/**
 * gemm(rows, panels, kc, a, bp, panelStride, c, ldc, accumulate): for every 8-column panel j and
 * every 4-row tile i, C[i.., 8j..] (+)= A[i.., 0..kc) · Bpanel_j[0..kc), with A packed (packA,
 * packSegments: tile i at a + i·kc·4 bytes, [kc][4]). rows % 4 == 0, kc ≥ 1; panelStride, ldc in
 * bytes. The 4×8 register tile: 8 f32x4 accumulators (4 rows × 2 vectors), 2 B vectors, 1 A
 * splat. Tile rows outer, panels inner: the A tile stays in L1 while B's chunk streams from L2 in
 * order.
 *
 * Why packed A: the 4 row splats read one pointer at constant offsets (ap + 0, 4, 8, 12) instead
 * of base + lda·r per row, and the loop ends on bq reaching bend (no counter): fewer instructions
 * per k step. Measured on one core with A and B in L1, 15.3 GMAC/s strided, 17.6 packed; unrolling
 * the k loop made V8's code slower (12.2 at 2×).
 */
function gemm(relaxed: boolean): FunctionDef {
  const f = new Fn(['rows', 'panels', 'kc', 'a', 'bp', 'panelStride', 'c', 'ldc', 'accumulate']);
  for (const n of ['j', 'i', 'ap', 'bq', 'bend', 'cp', 'bpan']) f.local(n);
  f.local('b0', V128);
  f.local('b1', V128);
  f.local('av', V128);
  const acc: string[] = [];
  for (let r = 0; r < MR; r++) for (let h = 0; h < 2; h++) acc.push(`c${r}${h}`);
  for (const n of acc) f.local(n, V128);
  const madd = (a: Code, b: Code, c: Code): Code => (relaxed ? op.f32x4RelaxedMadd(a, b, c) : op.f32x4Add(c, op.f32x4Mul(a, b)));
  const cRow = (r: number): Code => (r === 0 ? f.g('cp') : op.add(f.g('cp'), op.mul(f.g('ldc'), op.i32(r))));
  const body: Code[] = [
    f.s('i', op.i32(0)),
    op.block(op.loop(
      op.brIf(1, op.geS(f.g('i'), f.g('rows'))),
      f.s('j', op.i32(0)),
      f.s('bpan', f.g('bp')),
      op.block(op.loop(
        op.brIf(1, op.geS(f.g('j'), f.g('panels'))),
        f.s('cp', op.add(op.add(f.g('c'), op.mul(f.g('i'), f.g('ldc'))), op.shl(f.g('j'), op.i32(5)))),
        ...acc.map((n) => f.s(n, op.v128Zero())),
        op.if_(f.g('accumulate'), ...acc.map((n) => f.s(n, op.v128Load(cRow(Number(n[1])), Number(n[2]) * 16)))),
        f.s('ap', op.add(f.g('a'), op.shl(op.mul(f.g('i'), f.g('kc')), op.i32(2)))),
        f.s('bq', f.g('bpan')),
        f.s('bend', op.add(f.g('bpan'), op.shl(f.g('kc'), op.i32(5)))),
        op.loop(
          f.s('b0', op.v128Load(f.g('bq'))),
          f.s('b1', op.v128Load(f.g('bq'), 16)),
          ...Array.from({ length: MR }, (_, r) => [
            f.s('av', op.v128Load32Splat(f.g('ap'), 4 * r)),
            f.s(`c${r}0`, madd(f.g('av'), f.g('b0'), f.g(`c${r}0`))),
            f.s(`c${r}1`, madd(f.g('av'), f.g('b1'), f.g(`c${r}1`))),
          ]),
          f.s('ap', op.add(f.g('ap'), op.i32(4 * MR))),
          f.s('bq', op.add(f.g('bq'), op.i32(32))),
          op.brIf(0, op.ltU(f.g('bq'), f.g('bend'))),
        ),
        ...Array.from({ length: MR }, (_, r) => [
          op.v128Store(cRow(r), f.g(`c${r}0`)),
          op.v128Store(cRow(r), f.g(`c${r}1`), 16),
        ]),
        f.s('j', op.add(f.g('j'), op.i32(1))),
        f.s('bpan', op.add(f.g('bpan'), f.g('panelStride'))),
        op.br(0),
      )),
      f.s('i', op.add(f.g('i'), op.i32(MR))),
      op.br(0),
    )),
  ];
  return f.def('gemm', body);
}

/**
 * packA(src, lda, rows, tapTable, C, t0, tn, dst): packs rows [0, rows) (rows % 4 == 0) of A for
 * taps t0..t0+tn into dst as [rows/4][tn·C][4]: dst[(i/4, t·C + c, i%4)] = src[i·lda + tap_t +
 * 4c] (bytes), tap_t = tapTable[t] (i32), or 0 for every tap when tapTable is 0 (im2col rows, one
 * "tap" of C = the k chunk). 4×4 blocks are transposed in registers.
 */
function packA(): FunctionDef {
  const f = new Fn(['src', 'lda', 'rows', 'tapTable', 'C', 't0', 'tn', 'dst']);
  for (const n of ['i', 't', 'c', 'c4', 'base', 'd']) f.local(n);
  for (const n of ['r0', 'r1', 'r2', 'r3', 'u0', 'u1', 'u2', 'u3']) f.local(n, V128);
  const row = (r: number): Code => (r === 0 ? f.g('base') : op.add(f.g('base'), op.mul(f.g('lda'), op.i32(r))));
  const body: Code[] = [
    f.s('c4', op.and(f.g('C'), op.i32(-4))),
    f.s('d', f.g('dst')),
    f.s('i', op.i32(0)),
    op.block(op.loop(
      op.brIf(1, op.geS(f.g('i'), f.g('rows'))),
      f.s('t', f.g('t0')),
      op.block(op.loop(
        op.brIf(1, op.geS(f.g('t'), op.add(f.g('t0'), f.g('tn')))),
        f.s('base', op.add(f.g('src'), op.mul(f.g('i'), f.g('lda')))),
        op.if_(f.g('tapTable'), f.s('base', op.add(f.g('base'), i32Load(op.add(f.g('tapTable'), op.shl(f.g('t'), op.i32(2))))))),
        f.s('c', op.i32(0)),
        op.block(op.loop(
          op.brIf(1, op.geS(f.g('c'), f.g('c4'))),
          ...[0, 1, 2, 3].map((r) => f.s(`r${r}`, op.v128Load(row(r)))),
          f.s('u0', op.f32x4Shuffle(f.g('r0'), f.g('r1'), [0, 4, 1, 5])),
          f.s('u1', op.f32x4Shuffle(f.g('r0'), f.g('r1'), [2, 6, 3, 7])),
          f.s('u2', op.f32x4Shuffle(f.g('r2'), f.g('r3'), [0, 4, 1, 5])),
          f.s('u3', op.f32x4Shuffle(f.g('r2'), f.g('r3'), [2, 6, 3, 7])),
          op.v128Store(f.g('d'), op.f32x4Shuffle(f.g('u0'), f.g('u2'), [0, 1, 4, 5])),
          op.v128Store(f.g('d'), op.f32x4Shuffle(f.g('u0'), f.g('u2'), [2, 3, 6, 7]), 16),
          op.v128Store(f.g('d'), op.f32x4Shuffle(f.g('u1'), f.g('u3'), [0, 1, 4, 5]), 32),
          op.v128Store(f.g('d'), op.f32x4Shuffle(f.g('u1'), f.g('u3'), [2, 3, 6, 7]), 48),
          f.s('base', op.add(f.g('base'), op.i32(16))),
          f.s('d', op.add(f.g('d'), op.i32(64))),
          f.s('c', op.add(f.g('c'), op.i32(4))),
          op.br(0),
        )),
        op.block(op.loop(
          op.brIf(1, op.geS(f.g('c'), f.g('C'))),
          ...[0, 1, 2, 3].map((r) => op.f32Store(f.g('d'), op.f32Load(row(r)), 4 * r)),
          f.s('base', op.add(f.g('base'), op.i32(4))),
          f.s('d', op.add(f.g('d'), op.i32(16))),
          f.s('c', op.add(f.g('c'), op.i32(1))),
          op.br(0),
        )),
        f.s('t', op.add(f.g('t'), op.i32(1))),
        op.br(0),
      )),
      f.s('i', op.add(f.g('i'), op.i32(MR))),
      op.br(0),
    )),
  ];
  return f.def('packA', body);
}

/**
 * im2col(x, H, W, C, kh, kw, sh, sw, dh, dw, padT, padL, OH, OW, p0, count, dst): rows
 * p0..p0+count of the patch matrix (output pixel p = (n·OH + oy)·OW + ox), each K = kh·kw·C floats,
 * zero where the tap falls in the padding. A run of kw taps that is fully inside the row and
 * undilated is one copy of kw·C floats (NHWC keeps it contiguous).
 */
function im2col(): FunctionDef {
  const f = new Fn(['x', 'H', 'W', 'C', 'kh', 'kw', 'sh', 'sw', 'dh', 'dw', 'padT', 'padL', 'OH', 'OW', 'p0', 'count', 'dst']);
  for (const n of ['p', 'pEnd', 'n', 'rem', 'oy', 'ox', 'ky', 'kx', 'iy', 'ix', 'ix0', 'cb', 'd', 'rowBase', 'ohow']) f.local(n);
  const inRange = (v: Code, hi: Code): Code => op.ltU(v, hi); // unsigned compare: v < 0 wraps high
  const body: Code[] = [
    f.s('cb', op.shl(f.g('C'), op.i32(2))),
    f.s('ohow', op.mul(f.g('OH'), f.g('OW'))),
    f.s('p', f.g('p0')),
    f.s('pEnd', op.add(f.g('p0'), f.g('count'))),
    f.s('d', f.g('dst')),
    op.block(op.loop(
      op.brIf(1, op.geS(f.g('p'), f.g('pEnd'))),
      f.s('n', op.divS(f.g('p'), f.g('ohow'))),
      f.s('rem', op.sub(f.g('p'), op.mul(f.g('n'), f.g('ohow')))),
      f.s('oy', op.divS(f.g('rem'), f.g('OW'))),
      f.s('ox', op.sub(f.g('rem'), op.mul(f.g('oy'), f.g('OW')))),
      f.s('ix0', op.sub(op.mul(f.g('ox'), f.g('sw')), f.g('padL'))),
      f.s('ky', op.i32(0)),
      op.block(op.loop(
        op.brIf(1, op.geS(f.g('ky'), f.g('kh'))),
        f.s('iy', op.add(op.sub(op.mul(f.g('oy'), f.g('sh')), f.g('padT')), op.mul(f.g('ky'), f.g('dh')))),
        op.block(
          // whole row outside: zeros
          op.if_(op.eqz(inRange(f.g('iy'), f.g('H'))),
            op.memoryFill(f.g('d'), op.i32(0), op.mul(f.g('kw'), f.g('cb'))),
            f.s('d', op.add(f.g('d'), op.mul(f.g('kw'), f.g('cb')))),
            op.br(1)),
          f.s('rowBase', op.add(f.g('x'), op.mul(op.mul(op.add(op.mul(f.g('n'), f.g('H')), f.g('iy')), f.g('W')), f.g('cb')))),
          // contiguous run: dw == 1, ix0 >= 0, ix0 + kw <= W
          op.if_(op.and(op.and(op.eqz(op.sub(f.g('dw'), op.i32(1))), op.geS(f.g('ix0'), op.i32(0))),
            op.geS(f.g('W'), op.add(f.g('ix0'), f.g('kw')))),
            op.memoryCopy(f.g('d'), op.add(f.g('rowBase'), op.mul(f.g('ix0'), f.g('cb'))), op.mul(f.g('kw'), f.g('cb'))),
            f.s('d', op.add(f.g('d'), op.mul(f.g('kw'), f.g('cb')))),
            op.br(1)),
          f.s('kx', op.i32(0)),
          op.block(op.loop(
            op.brIf(1, op.geS(f.g('kx'), f.g('kw'))),
            f.s('ix', op.add(f.g('ix0'), op.mul(f.g('kx'), f.g('dw')))),
            op.block(
              op.if_(inRange(f.g('ix'), f.g('W')),
                op.memoryCopy(f.g('d'), op.add(f.g('rowBase'), op.mul(f.g('ix'), f.g('cb'))), f.g('cb')),
                op.br(1)),
              op.memoryFill(f.g('d'), op.i32(0), f.g('cb')),
            ),
            f.s('d', op.add(f.g('d'), f.g('cb'))),
            f.s('kx', op.add(f.g('kx'), op.i32(1))),
            op.br(0),
          )),
        ),
        f.s('ky', op.add(f.g('ky'), op.i32(1))),
        op.br(0),
      )),
      f.s('p', op.add(f.g('p'), op.i32(1))),
      op.br(0),
    )),
  ];
  return f.def('im2col', body);
}

/**
 * finish(c, ldc, rows, N, out, ldo, bias, relu): out[r, 0..N) = C[r, 0..N) (+ bias) (max 0 if
 * relu), dropping the padded columns of the last panel. bias = 0 means none. ldc, ldo in bytes.
 */
function finish(): FunctionDef {
  const f = new Fn(['c', 'ldc', 'rows', 'N', 'out', 'ldo', 'bias', 'relu']);
  for (const n of ['r', 'j', 'n4', 'cp', 'op_']) f.local(n);
  f.local('v', V128);
  f.local('t', F32);
  const body: Code[] = [
    f.s('n4', op.and(f.g('N'), op.i32(-4))),
    f.s('r', op.i32(0)),
    op.block(op.loop(
      op.brIf(1, op.geS(f.g('r'), f.g('rows'))),
      f.s('cp', op.add(f.g('c'), op.mul(f.g('r'), f.g('ldc')))),
      f.s('op_', op.add(f.g('out'), op.mul(f.g('r'), f.g('ldo')))),
      f.s('j', op.i32(0)),
      op.block(op.loop(
        op.brIf(1, op.geS(f.g('j'), f.g('n4'))),
        f.s('v', op.v128Load(op.add(f.g('cp'), op.shl(f.g('j'), op.i32(2))))),
        op.if_(f.g('bias'), f.s('v', op.f32x4Add(f.g('v'), op.v128Load(op.add(f.g('bias'), op.shl(f.g('j'), op.i32(2))))))),
        op.if_(f.g('relu'), f.s('v', op.f32x4Max(f.g('v'), op.v128Zero()))),
        op.v128Store(op.add(f.g('op_'), op.shl(f.g('j'), op.i32(2))), f.g('v')),
        f.s('j', op.add(f.g('j'), op.i32(4))),
        op.br(0),
      )),
      // tail columns (N % 4), scalar
      op.block(op.loop(
        op.brIf(1, op.geS(f.g('j'), f.g('N'))),
        f.s('t', op.f32Load(op.add(f.g('cp'), op.shl(f.g('j'), op.i32(2))))),
        op.if_(f.g('bias'), f.s('t', op.f32Add(f.g('t'), op.f32Load(op.add(f.g('bias'), op.shl(f.g('j'), op.i32(2))))))),
        op.if_(f.g('relu'), f.s('t', op.f32Max(f.g('t'), op.f32Zero()))),
        op.f32Store(op.add(f.g('op_'), op.shl(f.g('j'), op.i32(2))), f.g('t')),
        f.s('j', op.add(f.g('j'), op.i32(1))),
        op.br(0),
      )),
      f.s('r', op.add(f.g('r'), op.i32(1))),
      op.br(0),
    )),
  ];
  return f.def('finish', body);
}

/** rows = min(R, total − start): the rows of this block (block functions' prologue). */
function clampRows(f: Fn, start: Code, total: Code): Code[] {
  return [
    f.s('rows', f.g('R')),
    op.if_(op.ltS(op.sub(total, start), f.g('R')), f.s('rows', op.sub(total, start))),
  ];
}

/** This thread's scratch: scratch + thread·scratchStride. */
const threadScratch = (f: Fn): Code => op.add(f.g('scratch'), op.mul(f.g('thread'), f.g('scratchStride')));

/**
 * A block is (row block, panel block): block = rb·panelBlocks + pb, panels [pb·PB, pb·PB + np) of
 * the `panels` panels. Sets rb, j0 (first panel), np (panels) and ncols (real columns). Why split
 * by panels: with few output rows (batch 1, 16² maps) row blocks alone make every block stream all
 * of B, K·N floats, through L2; a panel block reads only its slice.
 */
function panelSplit(f: Fn): Code[] {
  return [
    f.s('rb', op.divS(f.g('block'), f.g('panelBlocks'))),
    f.s('j0', op.mul(op.sub(f.g('block'), op.mul(f.g('rb'), f.g('panelBlocks'))), f.g('PB'))),
    f.s('np', op.sub(f.g('panels'), f.g('j0'))),
    op.if_(op.ltS(f.g('PB'), f.g('np')), f.s('np', f.g('PB'))),
    f.s('ncols', op.sub(f.g('N'), op.shl(f.g('j0'), op.i32(3)))),
    op.if_(op.ltS(op.shl(f.g('np'), op.i32(3)), f.g('ncols')), f.s('ncols', op.shl(f.g('np'), op.i32(3)))),
  ];
}

/** bias + 32·j0 bytes, or 0 (no bias) */
const biasAt = (f: Fn): Code => op.select(op.add(f.g('bias'), op.shl(f.g('j0'), op.i32(5))), op.i32(0), f.g('bias'));

/**
 * gemm over panels [j0, j0 + np) of the k chunk at k0 of B packed chunk-major ([K/kc][panels][kc][8]:
 * the chunk starts at bp + k0·panels·32 bytes, its panels kcNow·32 bytes apart).
 */
function gemmChunk(f: Fn, rows: Code, kcNow: Code, k0: Code, a: Code): Code {
  return op.call(F.gemm, rows, f.g('np'), kcNow, a,
    op.add(op.add(f.g('bp'), op.shl(op.mul(k0, f.g('panels')), op.i32(5))), op.shl(op.mul(f.g('j0'), kcNow), op.i32(5))),
    op.shl(kcNow, op.i32(5)), f.g('cs'), f.g('ldc'), k0);
}

/** Parameters of convBlock, in order; the engine writes them to its control block. */
export const CONV_PARAMS = [
  'x', 'H', 'W', 'C', 'kh', 'kw', 'sh', 'sw', 'dh', 'dw', 'padT', 'padL', 'OH', 'OW',
  'M', 'K', 'N', 'panels', 'R', 'PB', 'panelBlocks', 'kc', 'bp', 'bias', 'relu', 'out', 'scratch', 'scratchStride', 'direct',
] as const;

/**
 * convBlock(...CONV_PARAMS, thread, block): output rows [rb·R, min(M, rb·R + R)) and panels
 * [j0, j0 + np) of one convolution (panelSplit): im2col into this thread's scratch (or, for 1×1
 * stride-1 unpadded convs, A = x itself), K in chunks of kc packed (packA) and through gemm into a
 * C scratch of PB·8 columns, then finish into out. Scratch per thread: R·K floats of A, R·PB·8
 * floats of C, then R·kc floats of packed A.
 */
function convBlock(): FunctionDef {
  const f = new Fn([...CONV_PARAMS, 'thread', 'block']);
  for (const n of ['rb', 'j0', 'np', 'ncols', 'p0', 'rows', 'rowsPad', 'a', 'lda', 'cs', 'pk', 'k0', 'kcNow', 'ldc']) f.local(n);
  const body: Code[] = [
    ...panelSplit(f),
    f.s('p0', op.mul(f.g('rb'), f.g('R'))),
    ...clampRows(f, f.g('p0'), f.g('M')),
    f.s('rowsPad', op.and(op.add(f.g('rows'), op.i32(MR - 1)), op.i32(-MR))),
    f.s('a', threadScratch(f)),
    f.s('cs', op.add(f.g('a'), op.shl(op.mul(f.g('R'), f.g('K')), op.i32(2)))),
    f.s('lda', op.shl(f.g('K'), op.i32(2))),
    f.s('ldc', op.shl(f.g('PB'), op.i32(5))),
    f.s('pk', op.add(f.g('cs'), op.mul(f.g('R'), f.g('ldc')))),
    op.if_(f.g('direct'),
      f.s('a', op.add(f.g('x'), op.mul(f.g('p0'), f.g('lda'))))),
    op.if_(op.eqz(f.g('direct')),
      op.call(F.im2col, f.g('x'), f.g('H'), f.g('W'), f.g('C'), f.g('kh'), f.g('kw'), f.g('sh'), f.g('sw'), f.g('dh'), f.g('dw'),
        f.g('padT'), f.g('padL'), f.g('OH'), f.g('OW'), f.g('p0'), f.g('rows'), f.g('a')),
      op.memoryFill(op.add(f.g('a'), op.mul(f.g('rows'), f.g('lda'))), op.i32(0), op.mul(op.sub(f.g('rowsPad'), f.g('rows')), f.g('lda')))),
    f.s('k0', op.i32(0)),
    op.block(op.loop(
      op.brIf(1, op.geS(f.g('k0'), f.g('K'))),
      f.s('kcNow', op.sub(f.g('K'), f.g('k0'))),
      op.if_(op.ltS(f.g('kc'), f.g('kcNow')), f.s('kcNow', f.g('kc'))),
      op.call(F.packA, op.add(f.g('a'), op.shl(f.g('k0'), op.i32(2))), f.g('lda'), f.g('rowsPad'), op.i32(0), f.g('kcNow'),
        op.i32(0), op.i32(1), f.g('pk')),
      gemmChunk(f, f.g('rowsPad'), f.g('kcNow'), f.g('k0'), f.g('pk')),
      f.s('k0', op.add(f.g('k0'), f.g('kcNow'))),
      op.br(0),
    )),
    op.call(F.finish, f.g('cs'), f.g('ldc'), f.g('rows'), f.g('ncols'),
      op.add(f.g('out'), op.shl(op.add(op.mul(f.g('p0'), f.g('N')), op.shl(f.g('j0'), op.i32(3))), op.i32(2))),
      op.shl(f.g('N'), op.i32(2)), biasAt(f), f.g('relu')),
  ];
  return f.def('convBlock', body);
}

/**
 * packB(src, K, N, rowStride, colStride, dst, panelStride): B[k, n] = src[k·rowStride + n·colStride]
 * (element strides, so a transposed operand packs without a transpose pass) into ceil(N/8) panels
 * of [K][8] floats, panelStride bytes apart, zero-filled past N.
 */
function packB(): FunctionDef {
  const f = new Fn(['src', 'K', 'N', 'rowStride', 'colStride', 'dst', 'panelStride']);
  for (const n of ['j', 'k', 'c', 'col', 'd', 'pd', 'rs', 'cs', 'srcRow']) f.local(n);
  const body: Code[] = [
    f.s('rs', op.shl(f.g('rowStride'), op.i32(2))),
    f.s('cs', op.shl(f.g('colStride'), op.i32(2))),
    f.s('pd', f.g('dst')),
    f.s('j', op.i32(0)),
    op.block(op.loop(
      op.brIf(1, op.geS(f.g('j'), f.g('N'))),
      f.s('d', f.g('pd')),
      f.s('pd', op.add(f.g('pd'), f.g('panelStride'))),
      f.s('k', op.i32(0)),
      op.block(op.loop(
        op.brIf(1, op.geS(f.g('k'), f.g('K'))),
        f.s('srcRow', op.add(op.add(f.g('src'), op.mul(f.g('k'), f.g('rs'))), op.mul(f.g('j'), f.g('cs')))),
        op.block(
          // fast path: a full panel of contiguous columns
          op.if_(op.and(op.eqz(op.sub(f.g('colStride'), op.i32(1))), op.geS(f.g('N'), op.add(f.g('j'), op.i32(NR)))),
            op.v128Store(f.g('d'), op.v128Load(f.g('srcRow'))),
            op.v128Store(f.g('d'), op.v128Load(f.g('srcRow'), 16), 16),
            op.br(1)),
          f.s('c', op.i32(0)),
          op.block(op.loop(
            op.brIf(1, op.geS(f.g('c'), op.i32(NR))),
            f.s('col', op.add(f.g('j'), f.g('c'))),
            op.block(
              op.if_(op.ltS(f.g('col'), f.g('N')),
                op.f32Store(op.add(f.g('d'), op.shl(f.g('c'), op.i32(2))), op.f32Load(op.add(f.g('srcRow'), op.mul(f.g('c'), f.g('cs'))))),
                op.br(1)),
              op.f32Store(op.add(f.g('d'), op.shl(f.g('c'), op.i32(2))), op.f32Zero()),
            ),
            f.s('c', op.add(f.g('c'), op.i32(1))),
            op.br(0),
          )),
        ),
        f.s('d', op.add(f.g('d'), op.i32(NR * 4))),
        f.s('k', op.add(f.g('k'), op.i32(1))),
        op.br(0),
      )),
      f.s('j', op.add(f.g('j'), op.i32(NR))),
      op.br(0),
    )),
  ];
  return f.def('packB', body);
}

/** Parameters of convBlockImplicit, in order (the engine writes them to its control block). */
export const IMPLICIT_PARAMS = [
  'xpad', 'Hp', 'Wp', 'C', 'kc', 'tapTable', 'OH', 'OW', 'blocksPerImage',
  'K', 'N', 'panels', 'R', 'PB', 'panelBlocks', 'bp', 'bias', 'relu', 'out', 'scratch', 'scratchStride',
] as const;

/**
 * convBlockImplicit(...IMPLICIT_PARAMS, thread, block): a stride-1 convolution computed on the
 * padded image's grid (row pitch Wp, so the Wp − OW rightmost positions of each row are computed
 * and dropped: 3 % extra at 64 px wide, 25 % at 8 px) — row block rb (panelSplit): image n = rb /
 * blocksPerImage, grid positions [s0, s0 + R) of rows 0..OH, panels [j0, j0 + np). The valid
 * positions are written to out. K goes in chunks of kc, a multiple of C (whole taps) or a divisor
 * of C (part of one tap's channels). Scratch per thread: R·PB·8 floats of C, then R·kc floats
 * of packed A.
 */
function convBlockImplicit(): FunctionDef {
  const f = new Fn([...IMPLICIT_PARAMS, 'thread', 'block']);
  for (const n of ['rb', 'j0', 'np', 'ncols', 'n', 's0', 'rows', 'rowsPad', 'cs', 'pk', 'ldc', 'r', 's', 'oy', 'ox', 'k0', 'kcNow', 't', 'cw', 'a']) f.local(n);
  const body: Code[] = [
    ...panelSplit(f),
    f.s('n', op.divS(f.g('rb'), f.g('blocksPerImage'))),
    f.s('s0', op.mul(op.sub(f.g('rb'), op.mul(f.g('n'), f.g('blocksPerImage'))), f.g('R'))),
    ...clampRows(f, f.g('s0'), op.mul(f.g('OH'), f.g('Wp'))),
    f.s('rowsPad', op.and(op.add(f.g('rows'), op.i32(MR - 1)), op.i32(-MR))),
    f.s('cs', threadScratch(f)),
    f.s('ldc', op.shl(f.g('PB'), op.i32(5))),
    f.s('pk', op.add(f.g('cs'), op.mul(f.g('R'), f.g('ldc')))),
    f.s('a', op.add(f.g('xpad'), op.shl(op.mul(op.add(op.mul(op.mul(f.g('n'), f.g('Hp')), f.g('Wp')), f.g('s0')), f.g('C')), op.i32(2)))),
    // K in chunks of kc so a chunk of B (kc × N) stays in L2; C accumulates. A chunk is taps
    // [t, t + kcNow / cw) of cw = C channels, or channels [k0 − t·C, + kcNow) of tap t.
    f.s('k0', op.i32(0)),
    op.block(op.loop(
      op.brIf(1, op.geS(f.g('k0'), f.g('K'))),
      f.s('kcNow', op.sub(f.g('K'), f.g('k0'))),
      op.if_(op.ltS(f.g('kc'), f.g('kcNow')), f.s('kcNow', f.g('kc'))),
      f.s('t', op.divS(f.g('k0'), f.g('C'))),
      f.s('cw', f.g('C')),
      op.if_(op.ltS(f.g('kcNow'), f.g('C')), f.s('cw', f.g('kcNow'))),
      op.call(F.packA, op.add(f.g('a'), op.shl(op.sub(f.g('k0'), op.mul(f.g('t'), f.g('C'))), op.i32(2))), op.shl(f.g('C'), op.i32(2)),
        f.g('rowsPad'), f.g('tapTable'), f.g('cw'), f.g('t'), op.divS(f.g('kcNow'), f.g('cw')), f.g('pk')),
      gemmChunk(f, f.g('rowsPad'), f.g('kcNow'), f.g('k0'), f.g('pk')),
      f.s('k0', op.add(f.g('k0'), f.g('kcNow'))),
      op.br(0),
    )),
    f.s('r', op.i32(0)),
    op.block(op.loop(
      op.brIf(1, op.geS(f.g('r'), f.g('rows'))),
      f.s('s', op.add(f.g('s0'), f.g('r'))),
      f.s('oy', op.divS(f.g('s'), f.g('Wp'))),
      f.s('ox', op.sub(f.g('s'), op.mul(f.g('oy'), f.g('Wp')))),
      op.if_(op.ltS(f.g('ox'), f.g('OW')),
        op.call(F.finish, op.add(f.g('cs'), op.mul(f.g('r'), f.g('ldc'))), f.g('ldc'), op.i32(1), f.g('ncols'),
          op.add(f.g('out'), op.shl(op.add(
            op.mul(op.add(op.mul(op.add(op.mul(f.g('n'), f.g('OH')), f.g('oy')), f.g('OW')), f.g('ox')), f.g('N')),
            op.shl(f.g('j0'), op.i32(3))), op.i32(2))),
          op.i32(0), biasAt(f), f.g('relu'))),
      f.s('r', op.add(f.g('r'), op.i32(1))),
      op.br(0),
    )),
  ];
  return f.def('convBlockImplicit', body);
}

/**
 * Row m of the filter gradient's GEMM as (tap t, channel ci): channels in groups of G (a multiple
 * of 4 dividing the padded channel count), m = (group·taps + t)·G + (ci − group·G), TG = taps·G.
 * Sets the locals t and ci.
 */
function filterRow(f: Fn, m: Code): Code[] {
  return [
    f.s('t', op.divS(m, f.g('TG'))), // group
    f.s('ci', op.sub(m, op.mul(f.g('t'), f.g('TG')))), // t·G + c
    f.s('ci', op.add(op.mul(f.g('t'), f.g('G')), f.g('ci'))), // group·G + t·G + c
    f.s('t', op.divS(op.sub(f.g('ci'), op.mul(f.g('t'), f.g('G'))), f.g('G'))),
    f.s('ci', op.sub(f.g('ci'), op.mul(f.g('t'), f.g('G')))),
  ];
}

/**
 * packSegments(rows, m0, G, TG, a, kStep, tapTable, segTable, s0, segs, segLen, dst): packs rows
 * [m0, m0 + rows) of the filter gradient's A for segments [s0, s0 + segs) into dst as packA does
 * ([rows/4][segs·segLen][4]). Row m = (tap t, channel ci) (filterRow), column k = output pixel:
 * A[m, k] sits at a + tapTable[t] + segTable[s] + ci·4 + j·kStep for k = s·segLen + j (segment s =
 * one output row (n, i), j its pixel), so a tile's 4 rows are 4 adjacent channels: one 16-byte
 * copy per pixel. Why pack rather than read x's image in place: each k of a tile is another pixel,
 * another cache line and, at ≥ 1024 channels, another page; packed once per chunk, the GEMM reads
 * A sequentially for every panel.
 */
function packSegments(): FunctionDef {
  const f = new Fn(['rows', 'm0', 'G', 'TG', 'a', 'kStep', 'tapTable', 'segTable', 's0', 'segs', 'segLen', 'dst']);
  for (const n of ['i', 's', 'j', 't', 'ci', 'a0', 'ap', 'd']) f.local(n);
  const body: Code[] = [
    f.s('d', f.g('dst')),
    f.s('i', op.i32(0)),
    op.block(op.loop(
      op.brIf(1, op.geS(f.g('i'), f.g('rows'))),
      ...filterRow(f, op.add(f.g('m0'), f.g('i'))),
      f.s('a0', op.add(op.add(f.g('a'), i32Load(op.add(f.g('tapTable'), op.shl(f.g('t'), op.i32(2))))), op.shl(f.g('ci'), op.i32(2)))),
      f.s('s', f.g('s0')),
      op.block(op.loop(
        op.brIf(1, op.geS(f.g('s'), op.add(f.g('s0'), f.g('segs')))),
        f.s('ap', op.add(f.g('a0'), i32Load(op.add(f.g('segTable'), op.shl(f.g('s'), op.i32(2)))))),
        f.s('j', f.g('segLen')),
        op.loop(
          op.v128Store(f.g('d'), op.v128Load(f.g('ap'))),
          f.s('ap', op.add(f.g('ap'), f.g('kStep'))),
          f.s('d', op.add(f.g('d'), op.i32(16))),
          f.s('j', op.sub(f.g('j'), op.i32(1))),
          op.brIf(0, f.g('j')),
        ),
        f.s('s', op.add(f.g('s'), op.i32(1))),
        op.br(0),
      )),
      f.s('i', op.add(f.g('i'), op.i32(MR))),
      op.br(0),
    )),
  ];
  return f.def('packSegments', body);
}

/** Parameters of filterGradBlock, in order (the engine writes them to its control block). */
export const FILTER_GRAD_PARAMS = [
  'xpad', 'G', 'TG', 'Cin', 'kStep', 'tapTable', 'segTable', 'nSeg', 'segChunk', 'segLen', 'M4', 'N', 'panels', 'R', 'bp',
  'out', 'scratch', 'scratchStride',
] as const;

/**
 * filterGradBlock(...FILTER_GRAD_PARAMS, thread, block): filter-gradient rows [block·R,
 * min(M4, block·R + R)) of the M4 = taps·C4 rows (channels padded to C4): the nSeg segments in
 * chunks of segChunk, each packed (packSegments) and through gemm (dy packed chunk-major,
 * [chunk][panel][k][8]: a chunk is contiguous and stays in L2), accumulated in this thread's C
 * scratch, then each row of a real channel (ci < Cin) is written to out[t, ci, 0..N). Rows go
 * channel group by channel group (filterRow), all taps of a group together: a block then reads a
 * few cache lines of each pixel, not every line once per tap. Scratch per thread: R·panels·8
 * floats of C, then R·segChunk·segLen floats of packed A.
 */
function filterGradBlock(): FunctionDef {
  const f = new Fn([...FILTER_GRAD_PARAMS, 'thread', 'block']);
  for (const n of ['m0', 'rows', 'cs', 'pk', 'ldc', 's0', 'sn', 'r', 't', 'ci']) f.local(n);
  const body: Code[] = [
    f.s('m0', op.mul(f.g('block'), f.g('R'))),
    ...clampRows(f, f.g('m0'), f.g('M4')),
    f.s('cs', threadScratch(f)),
    f.s('ldc', op.shl(f.g('panels'), op.i32(5))),
    f.s('pk', op.add(f.g('cs'), op.mul(f.g('R'), f.g('ldc')))),
    f.s('s0', op.i32(0)),
    op.block(op.loop(
      op.brIf(1, op.geS(f.g('s0'), f.g('nSeg'))),
      f.s('sn', op.sub(f.g('nSeg'), f.g('s0'))),
      op.if_(op.ltS(f.g('segChunk'), f.g('sn')), f.s('sn', f.g('segChunk'))),
      op.call(F.packSegments, f.g('rows'), f.g('m0'), f.g('G'), f.g('TG'), f.g('xpad'), f.g('kStep'), f.g('tapTable'),
        f.g('segTable'), f.g('s0'), f.g('sn'), f.g('segLen'), f.g('pk')),
      op.call(F.gemm, f.g('rows'), f.g('panels'), op.mul(f.g('sn'), f.g('segLen')), f.g('pk'),
        op.add(f.g('bp'), op.mul(op.mul(f.g('s0'), f.g('segLen')), f.g('ldc'))),
        op.shl(op.mul(f.g('sn'), f.g('segLen')), op.i32(5)), f.g('cs'), f.g('ldc'), f.g('s0')),
      f.s('s0', op.add(f.g('s0'), f.g('sn'))),
      op.br(0),
    )),
    f.s('r', op.i32(0)),
    op.block(op.loop(
      op.brIf(1, op.geS(f.g('r'), f.g('rows'))),
      ...filterRow(f, op.add(f.g('m0'), f.g('r'))),
      op.if_(op.ltS(f.g('ci'), f.g('Cin')),
        op.call(F.finish, op.add(f.g('cs'), op.mul(f.g('r'), f.g('ldc'))), f.g('ldc'), op.i32(1), f.g('N'),
          op.add(f.g('out'), op.shl(op.mul(op.add(op.mul(f.g('t'), f.g('Cin')), f.g('ci')), f.g('N')), op.i32(2))),
          op.i32(0), op.i32(0), op.i32(0))),
      f.s('r', op.add(f.g('r'), op.i32(1))),
      op.br(0),
    )),
  ];
  return f.def('filterGradBlock', body);
}

/**
 * padImage(src, N, H, W, C, dst, Hp, Wp, P, C4, padT, padL): dst[n, py, px, 0..C4) = src[n, py −
 * padT, px − padL, 0..C) (NHWC), zeros outside src and in channels [C, C4); P floats per pixel
 * (channels [C4, P) are never read and left as they are). Rows past Hp / columns past Wp of src
 * are dropped. Why in wasm: per-pixel copies from JS (subarray + set) cost 26 ms for a 130²×4
 * image of 128 channels, bulk memory.copy a fraction of that.
 */
function padImage(): FunctionDef {
  const f = new Fn(['src', 'N', 'H', 'W', 'C', 'dst', 'Hp', 'Wp', 'P', 'C4', 'padT', 'padL']);
  for (const n of ['n', 'py', 'iy', 'px', 'ix', 'd', 'pb', 'cb', 'tail']) f.local(n);
  const body: Code[] = [
    f.s('pb', op.shl(f.g('P'), op.i32(2))),
    f.s('cb', op.shl(f.g('C'), op.i32(2))),
    f.s('tail', op.shl(op.sub(f.g('C4'), f.g('C')), op.i32(2))),
    f.s('d', f.g('dst')),
    f.s('n', op.i32(0)),
    op.block(op.loop(
      op.brIf(1, op.geS(f.g('n'), f.g('N'))),
      f.s('py', op.i32(0)),
      op.block(op.loop(
        op.brIf(1, op.geS(f.g('py'), f.g('Hp'))),
        f.s('iy', op.sub(f.g('py'), f.g('padT'))),
        f.s('px', op.i32(0)),
        op.block(op.loop(
          op.brIf(1, op.geS(f.g('px'), f.g('Wp'))),
          f.s('ix', op.sub(f.g('px'), f.g('padL'))),
          op.block(
            op.if_(op.and(op.ltU(f.g('iy'), f.g('H')), op.ltU(f.g('ix'), f.g('W'))),
              op.memoryCopy(f.g('d'), op.add(f.g('src'), op.mul(op.add(op.mul(op.add(op.mul(f.g('n'), f.g('H')), f.g('iy')), f.g('W')), f.g('ix')), f.g('cb'))), f.g('cb')),
              op.memoryFill(op.add(f.g('d'), f.g('cb')), op.i32(0), f.g('tail')),
              op.br(1)),
            op.memoryFill(f.g('d'), op.i32(0), op.shl(f.g('C4'), op.i32(2))),
          ),
          f.s('d', op.add(f.g('d'), f.g('pb'))),
          f.s('px', op.add(f.g('px'), op.i32(1))),
          op.br(0),
        )),
        f.s('py', op.add(f.g('py'), op.i32(1))),
        op.br(0),
      )),
      f.s('n', op.add(f.g('n'), op.i32(1))),
      op.br(0),
    )),
  ];
  return f.def('padImage', body);
}

/** The module's bytes; `relaxed` selects f32x4.relaxed_madd (FMA) over mul + add. */
export function gemmModuleBytes(relaxed: boolean): Uint8Array<ArrayBuffer> {
  const fns = [gemm(relaxed), im2col(), finish(), convBlock(), packB(), packA(), convBlockImplicit(),
    packSegments(), filterGradBlock(), padImage()];
  return encodeModule(fns);
}
