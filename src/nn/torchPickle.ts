import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { WeightsError } from '../errors.js';
import { decodeToFloat32, type SafetensorsDtype } from './safetensors.js';
import { isZip, ZipArchive } from './zipArchive.js';

/**
 * Reader for PyTorch `.pth`/`.pt` files: the zip format (`torch.save` default since 1.6) and the
 * legacy pre-1.6 stream (openLegacyArchive below). Zip:
 * `<top>/data.pkl` (pickle, protocol 2 by default) + `<top>/data/<key>` raw storages
 * (+ `<top>/byteorder`, 'little' unless written on a big-endian host). `<top>` is the archive
 * name torch chose ('archive', or the file's stem in older versions).
 *
 * The pickle runs on a small VM that knows only the opcodes torch emits and only the globals a
 * tensor state_dict needs (tensor rebuild functions, storage types, OrderedDict): anything else
 * is a WeightsError, so a malicious checkpoint cannot execute code (unlike Python's
 * `pickle.load`). Tensors come back as float32 in PyTorch's layout, like readSafetensors.
 */

/** torch storage type -> element type (torch/storage.py _dtype_to_storage_type_map). */
const STORAGE_DTYPES: Readonly<Record<string, SafetensorsDtype>> = {
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  DoubleStorage: 'F64',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};
const ITEM_BYTES: Readonly<Record<SafetensorsDtype, number>> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

const REBUILD_FUNCTIONS = new Set(['torch._utils._rebuild_tensor_v2', 'torch._utils._rebuild_parameter', 'torch._utils._rebuild_parameter_with_state']);

class PyGlobal {
  constructor(readonly qualified: string) {}
}
class PyTuple {
  constructor(readonly items: unknown[]) {}
}
class PyDict {
  readonly map = new Map<unknown, unknown>();
}
class StorageRef {
  constructor(
    readonly dtype: SafetensorsDtype,
    readonly key: string,
  ) {}
}
/** A tensor as `_rebuild_tensor_v2(storage, offset, size, stride, ...)` describes it. */
export class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}
const MARK = Symbol('mark');

function asInts(v: unknown, what: string, fail: (w: string) => WeightsError): number[] {
  const items = v instanceof PyTuple ? v.items : Array.isArray(v) ? v : null;
  if (!items || !items.every((x) => typeof x === 'number' && Number.isInteger(x))) throw fail(`${what} is not a tuple of ints`);
  return items as number[];
}

/**
 * Runs a torch pickle. `persistentLoad` resolves BINPERSID ids (storages). Returns the
 * unpickled object in the VM's own representation (PyDict, PyTuple, arrays, TensorRef, ...).
 */
function unpickle(bytes: Uint8Array, source: string, persistentLoad: (pid: unknown) => unknown, start = 0): { value: unknown; end: number } {
  const fail = (why: string): WeightsError =>
    new WeightsError(`${source}: cannot read this pickle (${why}). Only PyTorch tensor state_dicts saved with torch.save are supported.`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dec = new TextDecoder('utf-8');
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  let pos = start;
  const need = (n: number): void => {
    if (pos + n > bytes.length) throw fail(`truncated at byte ${pos}`);
  };
  const u8 = (): number => { need(1); return bytes[pos++]; };
  const u16 = (): number => { need(2); const v = dv.getUint16(pos, true); pos += 2; return v; };
  const u32 = (): number => { need(4); const v = dv.getUint32(pos, true); pos += 4; return v; };
  const i32 = (): number => { need(4); const v = dv.getInt32(pos, true); pos += 4; return v; };
  const u64 = (): number => { need(8); const v = Number(dv.getBigUint64(pos, true)); pos += 8; return v; };
  const take = (n: number): Uint8Array => { need(n); const b = bytes.subarray(pos, pos + n); pos += n; return b; };
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) throw fail('unterminated text line');
    const s = dec.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = (): unknown => {
    if (stack.length === 0) throw fail('stack underflow');
    return stack.pop();
  };
  const popMark = (): unknown[] => {
    const m = stack.lastIndexOf(MARK);
    if (m < 0) throw fail('MARK not found');
    const items = stack.splice(m + 1);
    stack.pop();
    return items;
  };
  const top = (): unknown => {
    if (stack.length === 0) throw fail('stack underflow');
    return stack[stack.length - 1];
  };
  const global = (module: string, name: string): PyGlobal => {
    const q = `${module}.${name}`;
    const allowed = REBUILD_FUNCTIONS.has(q) || q === 'collections.OrderedDict' || (module === 'torch' && name in STORAGE_DTYPES);
    if (!allowed) throw fail(`it references the Python global '${q}', which is not a tensor type; refusing to run it`);
    return new PyGlobal(q);
  };
  const setItems = (target: unknown, kv: unknown[]): void => {
    if (!(target instanceof PyDict)) throw fail('SETITEM(S) on a non-dict');
    for (let i = 0; i + 1 < kv.length; i += 2) target.map.set(kv[i], kv[i + 1]);
  };
  const append = (target: unknown, items: unknown[]): void => {
    if (!Array.isArray(target)) throw fail('APPEND(S) on a non-list');
    target.push(...items);
  };
  const call = (fn: unknown, args: unknown): unknown => {
    if (!(fn instanceof PyGlobal)) throw fail('REDUCE on a non-callable');
    const a = args instanceof PyTuple ? args.items : [];
    switch (fn.qualified) {
      case 'collections.OrderedDict': {
        const d = new PyDict();
        const init = a[0];
        if (Array.isArray(init)) for (const kv of init) if (kv instanceof PyTuple) d.map.set(kv.items[0], kv.items[1]);
        return d;
      }
      case 'torch._utils._rebuild_tensor_v2': {
        const [storage, offset, size, stride] = a;
        if (!(storage instanceof StorageRef) || typeof offset !== 'number') throw fail('_rebuild_tensor_v2 without a storage');
        return new TensorRef(storage, offset, asInts(size, 'tensor size', fail), asInts(stride, 'tensor stride', fail));
      }
      case 'torch._utils._rebuild_parameter':
      case 'torch._utils._rebuild_parameter_with_state':
        return a[0];
      default:
        throw fail(`calling ${fn.qualified} is not supported`);
    }
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: u8(); break; // PROTO
      case 0x95: u64(); break; // FRAME (protocol 4): framing only
      case 0x2e: return { value: pop(), end: pos }; // STOP
      case 0x28: stack.push(MARK); break; // MARK
      case 0x7d: stack.push(new PyDict()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push(new PyTuple([])); break; // EMPTY_TUPLE
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4a: stack.push(i32()); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: { // LONG1: little-endian two's complement
        const n = u8();
        const b = take(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
        if (n > 0 && b[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        stack.push(Number(v));
        break;
      }
      case 0x47: { need(8); stack.push(dv.getFloat64(pos, false)); pos += 8; break; } // BINFLOAT (big-endian)
      case 0x58: stack.push(dec.decode(take(u32()))); break; // BINUNICODE
      case 0x8c: stack.push(dec.decode(take(u8()))); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(dec.decode(take(u64()))); break; // BINUNICODE8
      case 0x54: stack.push(dec.decode(take(u32()))); break; // BINSTRING
      case 0x55: stack.push(dec.decode(take(u8()))); break; // SHORT_BINSTRING
      case 0x42: stack.push(take(u32())); break; // BINBYTES
      case 0x43: stack.push(take(u8())); break; // SHORT_BINBYTES
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: case 0x6a: { // BINGET, LONG_BINGET
        const k = op === 0x68 ? u8() : u32();
        if (!memo.has(k)) throw fail(`memo key ${k} missing`);
        stack.push(memo.get(k));
        break;
      }
      case 0x74: stack.push(new PyTuple(popMark())); break; // TUPLE
      case 0x85: stack.push(new PyTuple([pop()])); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push(new PyTuple([a, b])); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push(new PyTuple([a, b, c])); break; } // TUPLE3
      case 0x6c: stack.push(popMark()); break; // LIST
      case 0x64: { const d = new PyDict(); setItems(d, popMark()); stack.push(d); break; } // DICT
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const kv = popMark(); setItems(top(), kv); break; } // SETITEMS
      case 0x61: { const v = pop(); append(top(), [v]); break; } // APPEND
      case 0x65: { const items = popMark(); append(top(), items); break; } // APPENDS
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x63: { const module = line(); const name = line(); stack.push(global(module, name)); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw fail('STACK_GLOBAL without strings');
        stack.push(global(module, name));
        break;
      }
      case 0x52: { const args = pop(); const fn = pop(); stack.push(call(fn, args)); break; } // REDUCE
      case 0x62: pop(); break; // BUILD: state of an OrderedDict (its _metadata) or a tensor; not needed
      case 0x51: stack.push(persistentLoad(pop())); break; // BINPERSID
      default:
        throw fail(`unsupported pickle opcode 0x${op.toString(16)} at byte ${pos - 1}`);
    }
  }
}

export interface TorchArchive {
  /** The pickled object: dicts become PyDict-backed Maps via `stateDictTensors`. */
  root: unknown;
  /** Raw bytes of storage `key` (`<top>/data/<key>`), byte order normalised to little-endian. */
  storageBytes(key: string, dtype: SafetensorsDtype): Uint8Array;
  source: string;
}

function openTorchArchive(path: string): TorchArchive {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new WeightsError(`${path}: cannot read (${code === 'ENOENT' ? 'does not exist' : (code ?? String(e))})`);
  }
  if (!isZip(buf)) {
    if (isLegacyTorch(buf)) return openLegacyArchive(buf, path);
    throw new WeightsError(`${path}: neither a zip-format nor a legacy PyTorch checkpoint (not written by torch.save); safetensors files need the .safetensors reader`);
  }
  const zip = new ZipArchive(buf, path);
  const pkl = zip.names().find((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (!pkl) throw new WeightsError(`${path}: zip archive without <name>/data.pkl; not a torch.save file`);
  const prefix = pkl.slice(0, -'data.pkl'.length);
  let bigEndian = false;
  if (zip.has(`${prefix}byteorder`)) {
    const order = zip.read(`${prefix}byteorder`).toString('ascii').trim();
    if (order !== 'little' && order !== 'big') throw new WeightsError(`${path}: unknown byteorder '${order}'`);
    bigEndian = order === 'big';
  }
  const storageBytes = (key: string, dtype: SafetensorsDtype): Uint8Array => {
    const raw = zip.read(`${prefix}data/${key}`);
    return bigEndian ? swapBytes(raw, ITEM_BYTES[dtype]) : raw;
  };
  const persistentLoad = (pid: unknown): unknown => {
    // ('storage', storage_type, key, location, numel) — torch/serialization.py _save.persistent_id.
    const items = pid instanceof PyTuple ? pid.items : [];
    const [kind, type, key] = items;
    if (kind !== 'storage' || !(type instanceof PyGlobal) || typeof key !== 'string') {
      throw new WeightsError(`${path}: unsupported persistent id in data.pkl (expected a storage)`);
    }
    const dtype = STORAGE_DTYPES[type.qualified.slice('torch.'.length)];
    if (!zip.has(`${prefix}data/${key}`)) throw new WeightsError(`${path}: storage ${prefix}data/${key} missing from the archive (truncated file?)`);
    return new StorageRef(dtype, key);
  };
  const root = unpickle(zip.read(pkl), path, persistentLoad).value;
  return { root, storageBytes, source: path };
}

function swapBytes(raw: Uint8Array, size: number): Uint8Array {
  if (size === 1) return raw;
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i += size) for (let j = 0; j < size; j++) out[i + j] = raw[i + size - 1 - j];
  return out;
}

/** A legacy torch.save stream starts with PROTO n, LONG1 of 10 bytes (the magic number). */
export function isLegacyTorch(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x80 && head[1] >= 2 && head[1] <= 5 && head[2] === 0x8a && head[3] === 0x0a;
}

/** torch/serialization.py MAGIC_NUMBER and PROTOCOL_VERSION of the legacy format. */
const LEGACY_MAGIC = Number(0x1950a86a20f9469cfc6cn);
const LEGACY_PROTOCOL = 1001;

/**
 * The pre-1.6 format (`_legacy_save`, still what many published files use, e.g. torchvision's
 * older weights): five pickles in a row — magic number, protocol version, sys_info, the object
 * (storages as persistent ids ('storage', type, key, location, numel, view_metadata)), the
 * sorted list of storage keys — then, per key in that order, an int64 element count and the raw
 * elements in the writer's byte order.
 */
function openLegacyArchive(buf: Buffer, path: string): TorchArchive {
  const bad = (why: string): WeightsError => new WeightsError(`${path}: not a readable legacy torch.save file (${why}); re-save it with torch >= 1.6 or convert it to safetensors`);
  const noPid = (): never => {
    throw bad('persistent id in a header pickle');
  };
  const magic = unpickle(buf, path, noPid, 0);
  if (magic.value !== LEGACY_MAGIC) throw bad('wrong magic number');
  const proto = unpickle(buf, path, noPid, magic.end);
  if (proto.value !== LEGACY_PROTOCOL) throw bad(`protocol ${String(proto.value)}, expected ${LEGACY_PROTOCOL}`);
  const sys = unpickle(buf, path, noPid, proto.end);
  const bigEndian = sys.value instanceof PyDict && sys.value.map.get('little_endian') === false;
  const dtypes = new Map<string, SafetensorsDtype>();
  const obj = unpickle(buf, path, (pid) => {
    const items = pid instanceof PyTuple ? pid.items : [];
    const [kind, type, key, , , view] = items;
    if (kind !== 'storage' || !(type instanceof PyGlobal) || typeof key !== 'string') throw bad('unsupported persistent id');
    if (view !== null && view !== undefined) throw bad('storage views (torch < 0.4 files) are not supported');
    const dtype = STORAGE_DTYPES[type.qualified.slice('torch.'.length)];
    dtypes.set(key, dtype);
    return new StorageRef(dtype, key);
  }, sys.end);
  const keys = unpickle(buf, path, noPid, obj.end);
  if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === 'string')) throw bad('no storage key list');
  const where = new Map<string, { start: number; end: number }>();
  let pos = keys.end;
  for (const key of keys.value as string[]) {
    const dtype = dtypes.get(key);
    if (dtype === undefined) throw bad(`storage ${key} listed but never used`);
    if (pos + 8 > buf.length) throw bad(`truncated before storage ${key}`);
    const numel = Number(bigEndian ? buf.readBigInt64BE(pos) : buf.readBigInt64LE(pos));
    const start = pos + 8;
    const end = start + numel * ITEM_BYTES[dtype];
    if (end > buf.length) throw bad(`storage ${key} (${numel} elements) runs past the end of the file: truncated`);
    where.set(key, { start, end });
    pos = end;
  }
  const storageBytes = (key: string, dtype: SafetensorsDtype): Uint8Array => {
    const w = where.get(key);
    if (!w) throw bad(`storage ${key} missing`);
    const raw = buf.subarray(w.start, w.end);
    return bigEndian ? swapBytes(raw, ITEM_BYTES[dtype]) : raw;
  };
  return { root: obj.value, storageBytes, source: path };
}

/** Gathers a strided view into a dense row-major Float32Array. */
function materialize(ref: TensorRef, arch: TorchArchive, name: string): Float32Array {
  const raw = arch.storageBytes(ref.storage.key, ref.storage.dtype);
  const all = decodeToFloat32(raw, ref.storage.dtype);
  const n = ref.shape.reduce((a, b) => a * b, 1);
  const rank = ref.shape.length;
  let maxIndex = ref.offset;
  for (let d = 0; d < rank; d++) if (ref.shape[d] > 0) maxIndex += (ref.shape[d] - 1) * ref.stride[d];
  if (n > 0 && maxIndex >= all.length) {
    throw new WeightsError(`${arch.source}: tensor '${name}' (shape [${ref.shape}], offset ${ref.offset}) reaches past its storage of ${all.length} elements`);
  }
  let contiguous = true;
  for (let d = rank - 1, s = 1; d >= 0; d--) {
    if (ref.shape[d] !== 1 && ref.stride[d] !== s) contiguous = false;
    s *= ref.shape[d];
  }
  if (contiguous) return all.slice(ref.offset, ref.offset + n);
  const out = new Float32Array(n);
  const idx = new Array<number>(rank).fill(0);
  let src = ref.offset;
  for (let i = 0; i < n; i++) {
    out[i] = all[src];
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      src += ref.stride[d];
      if (idx[d] < ref.shape[d]) break;
      src -= idx[d] * ref.stride[d];
      idx[d] = 0;
    }
  }
  return out;
}

/** The dict holding the tensors: the root itself, or one nested under a conventional key. */
function findStateDict(root: unknown, source: string): PyDict {
  const hasTensors = (d: PyDict): boolean => [...d.map.values()].some((v) => v instanceof TensorRef);
  if (root instanceof PyDict) {
    if (hasTensors(root)) return root;
    for (const key of ['state_dict', 'model', 'model_state_dict', 'module', 'net', 'params']) {
      const v = root.map.get(key);
      if (v instanceof PyDict && hasTensors(v)) return v;
    }
    const keys = [...root.map.keys()].map(String).slice(0, 8).join(', ');
    throw new WeightsError(`${source}: a dict without tensors (keys: ${keys}); expected a state_dict, or one under 'state_dict' / 'model'`);
  }
  throw new WeightsError(`${source}: the pickle holds a ${root === null ? 'None' : typeof root} object, not a state_dict (save model.state_dict(), not the model)`);
}

export interface ReadTorchOptions {
  /** Only materialise tensors whose name passes. */
  filter?: (name: string) => boolean;
}

/**
 * Reads a torch.save'd state_dict (zip or legacy format) into float32 tensors in PyTorch's layout. Entries
 * that are not tensors are skipped. Caller disposes the tensors.
 */
export function readTorchStateDict(path: string, opts: ReadTorchOptions = {}): Map<string, tf.Tensor> {
  const arch = openTorchArchive(path);
  const dict = findStateDict(arch.root, path);
  const out = new Map<string, tf.Tensor>();
  try {
    for (const [k, v] of dict.map) {
      if (typeof k !== 'string' || !(v instanceof TensorRef)) continue;
      if (opts.filter && !opts.filter(k)) continue;
      out.set(k, tf.tensor(materialize(v, arch, k), v.shape, 'float32'));
    }
  } catch (e) {
    for (const t of out.values()) t.dispose();
    throw e;
  }
  return out;
}
