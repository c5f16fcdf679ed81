import * as tf from '@tensorflow/tfjs';
import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { WeightsError } from '../errors.js';

/**
 * safetensors (https://github.com/huggingface/safetensors) reader and writer.
 *
 * Layout: 8-byte little-endian u64 N, then N bytes of JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {string: string}}`,
 * then the data buffer; offsets are relative to the start of the data buffer.
 *
 * Tensors are returned in the file's own layout (PyTorch's for torchvision/timm checkpoints) and
 * always as float32: F16/BF16/F64 are converted, integer tensors (num_batches_tracked is I64) are
 * cast. We only ever write F32.
 */

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const ITEM_SIZE: Record<SafetensorsDtype, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

export interface SafetensorsEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Byte range inside the data buffer. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** Tensor entries in header order. */
  entries: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
  /** Absolute file offset where the data buffer starts (8 + header length). */
  dataStart: number;
  fileSize: number;
}

/** Largest header we accept; real checkpoints have a few hundred KB. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

function corrupt(path: string, why: string): WeightsError {
  return new WeightsError(
    `${path}: not a valid safetensors file (${why}). The file is corrupt or truncated: delete it and download it again.`,
  );
}

function readExactly(fd: number, buf: Uint8Array, position: number, path: string): void {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, position + done);
    if (n === 0) throw corrupt(path, `unexpected end of file at byte ${position + done}`);
    done += n;
  }
}

function parseHeader(fd: number, path: string): SafetensorsHeader {
  const fileSize = fstatSync(fd).size;
  if (fileSize < 8) throw corrupt(path, `file is ${fileSize} bytes, shorter than the 8-byte header length`);
  const lenBuf = new Uint8Array(8);
  readExactly(fd, lenBuf, 0, path);
  const n = new DataView(lenBuf.buffer).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) throw corrupt(path, `header length ${n} bytes is implausible`);
  const headerLen = Number(n);
  if (8 + headerLen > fileSize) {
    throw corrupt(path, `header says ${headerLen} bytes but the file has only ${fileSize - 8} after the length field`);
  }
  const hb = new Uint8Array(headerLen);
  readExactly(fd, hb, 8, path);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(hb));
  } catch (e) {
    throw corrupt(path, `header is not valid UTF-8 JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw corrupt(path, 'header is not a JSON object');
  const dataStart = 8 + headerLen;
  const dataLen = fileSize - dataStart;
  const entries = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  let maxEnd = 0;
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw === 'object' && raw !== null) {
        metadata = Object.fromEntries(Object.entries(raw as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
      }
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) throw corrupt(path, `entry ${name} is not an object`);
    if (typeof e.dtype !== 'string' || !(e.dtype in ITEM_SIZE)) {
      throw new WeightsError(`${path}: tensor ${name} has unsupported dtype ${String(e.dtype)}; supported: ${Object.keys(ITEM_SIZE).join(', ')}`);
    }
    const dtype = e.dtype as SafetensorsDtype;
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw corrupt(path, `tensor ${name} has an invalid shape ${JSON.stringify(e.shape)}`);
    }
    const shape = e.shape as number[];
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isInteger(o) && o >= 0) || offs[1] < offs[0]) {
      throw corrupt(path, `tensor ${name} has invalid data_offsets ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    const numel = shape.reduce((a, b) => a * b, 1);
    if (end - begin !== numel * ITEM_SIZE[dtype]) {
      throw corrupt(path, `tensor ${name}: ${end - begin} bytes for ${dtype}[${shape}] (expected ${numel * ITEM_SIZE[dtype]})`);
    }
    maxEnd = Math.max(maxEnd, end);
    entries.set(name, { dtype, shape, begin, end });
  }
  if (maxEnd > dataLen) {
    throw corrupt(path, `truncated: tensors need ${maxEnd} bytes of data but the file holds ${dataLen}`);
  }
  return { entries, metadata, dataStart, fileSize };
}

/** Header only (names, dtypes, shapes, metadata); cheap even for large files. */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const fd = openOrThrow(path);
  try {
    return parseHeader(fd, path);
  } finally {
    closeSync(fd);
  }
}

function openOrThrow(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new WeightsError(`${path}: cannot open weights file (${code ?? String(e)})`);
  }
}

/** IEEE half -> float (exact). */
function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** Decode raw little-endian bytes of one tensor into float32. */
export function decodeToFloat32(bytes: Uint8Array, dtype: SafetensorsDtype): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength / ITEM_SIZE[dtype];
  switch (dtype) {
    case 'F32': {
      if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, n);
      // A copy (not bytes.slice(): on a Node Buffer that is a view of the whole pool/file).
      return new Float32Array(new Uint8Array(bytes).buffer);
    }
    case 'F16': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = halfToFloat(dv.getUint16(2 * i, true));
      return out;
    }
    case 'BF16': {
      const out = new Float32Array(n);
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = dv.getUint16(2 * i, true) << 16;
      return out;
    }
    case 'F64': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true);
      return out;
    }
    case 'I64': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = Number(dv.getBigInt64(8 * i, true));
      return out;
    }
    case 'I32': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getInt32(4 * i, true);
      return out;
    }
    case 'I16': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getInt16(2 * i, true);
      return out;
    }
    case 'I8': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getInt8(i);
      return out;
    }
    case 'U8':
    case 'BOOL':
      return Float32Array.from(bytes);
  }
}

export interface ReadSafetensorsOptions {
  /** Only read tensors whose name passes (e.g. skip layer4/fc of a backbone that stops at layer3). */
  filter?: (name: string) => boolean;
}

/**
 * Reads every tensor of a safetensors file as float32, in the file's layout (PyTorch's for
 * torchvision/timm files). The caller owns (and disposes) the returned tensors. Reads tensor by
 * tensor, so memory peaks at the model size, not twice it.
 */
export function readSafetensors(path: string, opts: ReadSafetensorsOptions = {}): Map<string, tf.Tensor> {
  const fd = openOrThrow(path);
  const out = new Map<string, tf.Tensor>();
  try {
    const header = parseHeader(fd, path);
    for (const [name, e] of header.entries) {
      if (opts.filter && !opts.filter(name)) continue;
      const bytes = new Uint8Array(e.end - e.begin);
      readExactly(fd, bytes, header.dataStart + e.begin, path);
      out.set(name, tf.tensor(decodeToFloat32(bytes, e.dtype), e.shape, 'float32'));
    }
    return out;
  } catch (err) {
    for (const t of out.values()) t.dispose();
    throw err;
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes tensors as F32 safetensors, atomically: the data goes to `<path>.tmp-<pid>-<n>`, is
 * fsynced, then renamed over `path`, so readers never see a half-written file.
 */
export function writeSafetensors(path: string, tensors: Map<string, tf.Tensor>, metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const [name, t] of tensors) {
    if (name === '__metadata__') throw new WeightsError(`${path}: '__metadata__' is reserved and cannot be a tensor name`);
    const bytes = t.size * 4;
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let hb = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - (hb.length % 8)) % 8;
  if (pad > 0) {
    const padded = new Uint8Array(hb.length + pad).fill(0x20);
    padded.set(hb);
    hb = padded;
  }
  const tmp = `${path}.tmp-${process.pid}-${tmpCounter++}`;
  const fd = openSync(tmp, 'w');
  try {
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(hb.length), true);
    writeAll(fd, len);
    writeAll(fd, hb);
    for (const t of tensors.values()) {
      const data = t.dtype === 'float32' ? (t.dataSync() as Float32Array) : Float32Array.from(t.dataSync());
      writeAll(fd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
    rmSync(tmp, { force: true });
    throw e;
  }
}

let tmpCounter = 0;

function writeAll(fd: number, buf: Uint8Array): void {
  let done = 0;
  while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done);
}
