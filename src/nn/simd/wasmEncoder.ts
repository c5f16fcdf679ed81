/**
 * A minimal WebAssembly binary encoder: just what the GEMM kernels in gemmModule.ts need (i32
 * arithmetic, structured loops, f32/v128 loads and stores, a few f32x4 ops, relaxed madd, bulk
 * memory). The module is generated at run time so the repository holds readable source rather
 * than a committed binary, and so the relaxed-SIMD and plain-SIMD variants come from one text.
 * Opcodes: WebAssembly core spec 2.0 §5.4, SIMD proposal, relaxed-SIMD proposal (madd = 0xfd 0x105),
 * checked against wabt's wat2wasm output.
 */

export const I32 = 0x7f;
export const F32 = 0x7d;
export const V128 = 0x7b;
export type ValType = typeof I32 | typeof F32 | typeof V128;

export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function str(s: string): number[] {
  const bytes = [...Buffer.from(s, 'utf8')];
  return [...uleb(bytes.length), ...bytes];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

/** Instruction builders; each returns its bytes, so bodies are written as nested arrays. */
export type Code = number | Code[];

const simd = (op: number, ...imm: number[]): number[] => [0xfd, ...uleb(op), ...imm];

export const op = {
  block: (...body: Code[]): Code => [0x02, 0x40, body, 0x0b],
  loop: (...body: Code[]): Code => [0x03, 0x40, body, 0x0b],
  if_: (cond: Code, ...body: Code[]): Code => [cond, 0x04, 0x40, body, 0x0b],
  br: (depth: number): Code => [0x0c, ...uleb(depth)],
  brIf: (depth: number, cond: Code): Code => [cond, 0x0d, ...uleb(depth)],
  call: (fn: number, ...args: Code[]): Code => [args, 0x10, ...uleb(fn)],
  get: (i: number): Code => [0x20, ...uleb(i)],
  set: (i: number, v: Code): Code => [v, 0x21, ...uleb(i)],
  i32: (n: number): Code => [0x41, ...sleb(n | 0)],
  add: (a: Code, b: Code): Code => [a, b, 0x6a],
  sub: (a: Code, b: Code): Code => [a, b, 0x6b],
  mul: (a: Code, b: Code): Code => [a, b, 0x6c],
  divS: (a: Code, b: Code): Code => [a, b, 0x6d],
  remS: (a: Code, b: Code): Code => [a, b, 0x6f],
  eqz: (a: Code): Code => [a, 0x45],
  ltS: (a: Code, b: Code): Code => [a, b, 0x48],
  geS: (a: Code, b: Code): Code => [a, b, 0x4e],
  geU: (a: Code, b: Code): Code => [a, b, 0x4f],
  ltU: (a: Code, b: Code): Code => [a, b, 0x49],
  or: (a: Code, b: Code): Code => [a, b, 0x72],
  and: (a: Code, b: Code): Code => [a, b, 0x71],
  shl: (a: Code, b: Code): Code => [a, b, 0x74],
  shrS: (a: Code, b: Code): Code => [a, b, 0x75],
  /** f32 load/store at address + constant offset (alignment hint 4 bytes). */
  f32Load: (addr: Code, offset = 0): Code => [addr, 0x2a, 0x02, ...uleb(offset)],
  f32Store: (addr: Code, v: Code, offset = 0): Code => [addr, v, 0x38, 0x02, ...uleb(offset)],
  v128Load: (addr: Code, offset = 0): Code => [addr, simd(0x00, 0x04, ...uleb(offset))],
  v128Store: (addr: Code, v: Code, offset = 0): Code => [addr, v, simd(0x0b, 0x04, ...uleb(offset))],
  v128Load32Splat: (addr: Code, offset = 0): Code => [addr, simd(0x09, 0x02, ...uleb(offset))],
  /** i8x16.shuffle with f32 lane indices (0–3 from a, 4–7 from b) */
  f32x4Shuffle: (a: Code, b: Code, lanes: [number, number, number, number]): Code =>
    [a, b, simd(0x0d, ...lanes.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3]))],
  f32Zero: (): Code => [0x43, 0, 0, 0, 0],
  f32Add: (a: Code, b: Code): Code => [a, b, 0x92],
  f32Max: (a: Code, b: Code): Code => [a, b, 0x97],
  v128Zero: (): Code => simd(0x0c, ...new Array<number>(16).fill(0)),
  f32x4Add: (a: Code, b: Code): Code => [a, b, simd(0xe4)],
  f32x4Mul: (a: Code, b: Code): Code => [a, b, simd(0xe6)],
  f32x4Max: (a: Code, b: Code): Code => [a, b, simd(0xe9)],
  /** relaxed madd: a·b + c, fused where the hardware has FMA (relaxed-SIMD proposal). */
  f32x4RelaxedMadd: (a: Code, b: Code, c: Code): Code => [a, b, c, simd(0x105)],
  f32x4Sub: (a: Code, b: Code): Code => [a, b, simd(0xe5)],
  f32x4Div: (a: Code, b: Code): Code => [a, b, simd(0xe7)],
  f32x4Sqrt: (a: Code): Code => [a, simd(0xe3)],
  f32x4Splat: (a: Code): Code => [a, simd(0x13)],
  f32x4Eq: (a: Code, b: Code): Code => [a, b, simd(0x41)],
  f32x4Gt: (a: Code, b: Code): Code => [a, b, simd(0x44)],
  v128And: (a: Code, b: Code): Code => [a, b, simd(0x4e)],
  /** a & ~b */
  v128AndNot: (a: Code, b: Code): Code => [a, b, simd(0x4f)],
  v128Or: (a: Code, b: Code): Code => [a, b, simd(0x50)],
  v128Not: (a: Code): Code => [a, simd(0x4d)],
  f32Const: (v: number): Code => [0x43, ...new Uint8Array(new Float32Array([v]).buffer)],
  f32Sub: (a: Code, b: Code): Code => [a, b, 0x93],
  f32Mul: (a: Code, b: Code): Code => [a, b, 0x94],
  f32Div: (a: Code, b: Code): Code => [a, b, 0x95],
  f32Sqrt: (a: Code): Code => [a, 0x91],
  f32Eq: (a: Code, b: Code): Code => [a, b, 0x5b],
  f32Gt: (a: Code, b: Code): Code => [a, b, 0x5e],
  /** select(a, b, cond): a if cond ≠ 0 else b */
  select: (a: Code, b: Code, cond: Code): Code => [a, b, cond, 0x1b],
  memoryCopy: (dst: Code, src: Code, n: Code): Code => [dst, src, n, 0xfc, 0x0a, 0x00, 0x00],
  memoryFill: (dst: Code, value: Code, n: Code): Code => [dst, value, n, 0xfc, 0x0b, 0x00],
};

export interface FunctionDef {
  name: string;
  params: ValType[];
  /** Extra locals after the params, in order. */
  locals: ValType[];
  body: Code[];
}

function flatten(code: Code, out: number[]): number[] {
  if (typeof code === 'number') out.push(code);
  else for (const c of code) flatten(c, out);
  return out;
}

/**
 * Named i32/f32/v128 params and locals for one function body (local.get/set by name).
 * Params are i32 unless typed `name:f32`.
 */
export class Fn {
  private readonly names = new Map<string, number>();
  readonly params: ValType[] = [];
  readonly locals: ValType[] = [];

  constructor(paramNames: string[]) {
    for (const spec of paramNames) {
      const [n, t] = spec.split(':');
      this.names.set(n, this.params.length);
      this.params.push(t === 'f32' ? F32 : I32);
    }
  }

  local(name: string, type: ValType = I32): number {
    this.names.set(name, this.params.length + this.locals.length);
    this.locals.push(type);
    return this.names.get(name) as number;
  }

  private index(name: string): number {
    const i = this.names.get(name);
    if (i === undefined) throw new Error(`wasm function: unknown local ${name}`);
    return i;
  }

  /** local.get by name */
  g(name: string): Code {
    return op.get(this.index(name));
  }

  s(name: string, v: Code): Code {
    return op.set(this.index(name), v);
  }

  def(name: string, body: Code[]): FunctionDef {
    return { name, params: this.params, locals: this.locals, body };
  }
}

/**
 * One module importing a memory env.mem and exporting the given functions, none of which returns
 * a value. `shared` (default): a shared memory up to maxPages, so worker threads can run the same
 * code on the same data; otherwise any non-shared memory (e.g. tfjs-backend-wasm's own heap).
 */
export function encodeModule(functions: FunctionDef[], maxPages = 65536, shared = true): Uint8Array<ArrayBuffer> {
  const types = functions.map((f) => [0x60, ...uleb(f.params.length), ...f.params, 0x00]);
  const limits = shared ? [0x03, ...uleb(1), ...uleb(maxPages)] : [0x00, ...uleb(0)];
  const memImport = [...str('env'), ...str('mem'), 0x02, ...limits];
  const funcs = functions.map((_, i) => uleb(i));
  const exports = functions.map((f, i) => [...str(f.name), 0x00, ...uleb(i)]);
  const bodies = functions.map((f) => {
    const groups: number[][] = [];
    for (const t of f.locals) groups.push([...uleb(1), t]);
    const body = [...vec(groups), ...flatten(f.body, []), 0x0b];
    return [...uleb(body.length), ...body];
  });
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...section(2, vec([memImport])),
    ...section(3, vec(funcs)),
    ...section(7, vec(exports)),
    ...section(10, vec(bodies)),
  ];
  return new Uint8Array(bytes);
}
