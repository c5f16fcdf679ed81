import * as tf from '@tensorflow/tfjs';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';
import { join, resolve } from 'node:path';
import { TrainingError } from '../errors.js';
import type { RngState } from '../util/rng.js';
import { atomicWriteFile, atomicWriteWith, writeAll } from './atomicWrite.js';
import type { Hyperparameters } from './optimizers/optimizer.js';

/**
 * Training checkpoint: ONE binary file, written atomically (atomicWrite.ts).
 *
 *   bytes 0..7    magic "ADBCKPT1"
 *   bytes 8..15   header length H, uint64 little-endian (H is a multiple of 8)
 *   bytes 16..    UTF-8 JSON header (CheckpointHeader), padded with spaces to H bytes
 *   then          data: each tensor's elements as little-endian float32/int32, at
 *                 `offset` (relative to the data start), `byteLength` bytes; CRC-32 of all data
 *                 in the header.
 *
 * Independent of safetensors on purpose (no dependency on src/nn/safetensors.ts); exporting
 * weights for PyTorch is a separate step.
 */
export const CHECKPOINT_MAGIC = 'ADBCKPT1';
export const CHECKPOINT_EXT = '.adbck';
const FORMAT = 'adbench-checkpoint';
const VERSION = 1;

export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

export interface TensorEntry {
  name: string;
  dtype: 'float32' | 'int32';
  shape: number[];
  offset: number;
  byteLength: number;
}

/** Everything besides tensors; written into the header. */
export interface CheckpointMeta {
  /** Completed optimizer steps. */
  step: number;
  /** Completed epochs (⌊step / stepsPerEpoch⌋). */
  epoch: number;
  stepsPerEpoch: number;
  totalSteps: number;
  rng: { seed: string; state: RngState } | null;
  optimizers: { kind: string; lr: number; hyperparameters: Hyperparameters }[];
  /** sha256 of the run config (trainer `config`), null if none given. */
  configHash: string | null;
  /** Caller state (e.g. early-stopping counters), restored on resume. */
  extra?: JsonValue;
}

export interface CheckpointHeader extends CheckpointMeta {
  format: typeof FORMAT;
  version: number;
  createdAt: string;
  tensors: TensorEntry[];
  dataBytes: number;
  /** CRC-32 (IEEE) of the data section, 8 hex digits. */
  dataCrc32: string;
}

// ---------------------------------------------------------------- CRC-32 (IEEE 802.3)
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** Incremental CRC-32: pass the previous value (initially 0). */
export function crc32(data: Uint8Array, prev = 0): number {
  let c = ~prev >>> 0;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function assertLittleEndian(): void {
  if (endianness() !== 'LE') throw new TrainingError('checkpoints are little-endian; big-endian hosts are not supported');
}

function bytesOf(t: tf.Tensor): Uint8Array {
  const d = t.dataSync();
  if (!(d instanceof Float32Array) && !(d instanceof Int32Array)) {
    throw new TrainingError(`checkpoint: tensor of dtype ${t.dtype} cannot be stored (float32/int32 only)`);
  }
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

function encodeHeader(h: CheckpointHeader): Buffer {
  let json = JSON.stringify(h);
  const pad = (8 - (Buffer.byteLength(json, 'utf8') % 8)) % 8;
  json += ' '.repeat(pad);
  return Buffer.from(json, 'utf8');
}

/**
 * Write `tensors` and `meta` to `path` atomically (temp file + fsync + rename). Tensors are
 * streamed one at a time, so memory stays at one tensor's size. Non-float32/int32 tensors are
 * rejected.
 */
export function writeCheckpoint(path: string, tensors: ReadonlyMap<string, tf.Tensor>, meta: CheckpointMeta): void {
  assertLittleEndian();
  const entries: TensorEntry[] = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    if (t.dtype !== 'float32' && t.dtype !== 'int32') {
      throw new TrainingError(`checkpoint ${path}: tensor ${name} has dtype ${t.dtype} (float32/int32 only)`);
    }
    const byteLength = t.size * 4;
    entries.push({ name, dtype: t.dtype, shape: t.shape.slice(), offset, byteLength });
    offset += byteLength;
  }
  const header: CheckpointHeader = {
    format: FORMAT, version: VERSION, createdAt: new Date().toISOString(), ...meta,
    tensors: entries, dataBytes: offset, dataCrc32: '00000000',
  };
  const headerBytes = encodeHeader(header);
  const prefix = Buffer.alloc(16);
  prefix.write(CHECKPOINT_MAGIC, 0, 'ascii');
  prefix.writeBigUInt64LE(BigInt(headerBytes.length), 8);
  atomicWriteWith(path, (fd) => {
    writeAll(fd, prefix);
    writeAll(fd, headerBytes);
    let crc = 0;
    for (const t of tensors.values()) {
      const b = bytesOf(t);
      crc = crc32(b, crc);
      writeAll(fd, b);
    }
    // The CRC placeholder has the same length as the final value: patch it in place.
    const final = encodeHeader({ ...header, dataCrc32: hex8(crc) });
    if (final.length !== headerBytes.length) throw new Error('checkpoint header length changed while patching CRC');
    writeSync(fd, final, 0, final.length, 16);
  });
}

function corrupt(path: string, why: string): TrainingError {
  return new TrainingError(
    `checkpoint ${path} is corrupt or not a checkpoint (${why}); delete it to resume from an earlier checkpoint in the same folder, or start a new run`,
  );
}

/** Read and validate the header (magic, JSON, sizes) without loading tensors. */
export function readCheckpointHeader(path: string): CheckpointHeader {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new TrainingError(`checkpoint ${path} cannot be opened: ${(e as Error).message}`);
  }
  try {
    return readHeaderFd(fd, path).header;
  } finally {
    closeSync(fd);
  }
}

function readHeaderFd(fd: number, path: string): { header: CheckpointHeader; dataStart: number } {
  const size = fstatSync(fd).size;
  if (size < 16) throw corrupt(path, `only ${size} bytes`);
  const prefix = Buffer.alloc(16);
  readSync(fd, prefix, 0, 16, 0);
  if (prefix.toString('ascii', 0, 8) !== CHECKPOINT_MAGIC) throw corrupt(path, 'bad magic');
  const hlen = Number(prefix.readBigUInt64LE(8));
  if (hlen <= 0 || 16 + hlen > size) throw corrupt(path, `header length ${hlen} exceeds file size ${size}`);
  const hb = Buffer.alloc(hlen);
  readSync(fd, hb, 0, hlen, 16);
  let header: CheckpointHeader;
  try {
    header = JSON.parse(hb.toString('utf8')) as CheckpointHeader;
  } catch (e) {
    throw corrupt(path, `header is not JSON: ${(e as Error).message}`);
  }
  if (header.format !== FORMAT || header.version !== VERSION) {
    throw corrupt(path, `format ${String(header.format)} v${String(header.version)}, expected ${FORMAT} v${VERSION}`);
  }
  if (!Array.isArray(header.tensors) || typeof header.dataBytes !== 'number') throw corrupt(path, 'header lacks tensors/dataBytes');
  const dataStart = 16 + hlen;
  if (size !== dataStart + header.dataBytes) {
    throw corrupt(path, `file has ${size} bytes, header says ${dataStart + header.dataBytes} (truncated?)`);
  }
  for (const e of header.tensors) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    if ((e.dtype !== 'float32' && e.dtype !== 'int32') || n * 4 !== e.byteLength || e.offset < 0 || e.offset + e.byteLength > header.dataBytes) {
      throw corrupt(path, `tensor ${e.name} has an inconsistent entry`);
    }
  }
  return { header, dataStart };
}

/**
 * Read a checkpoint, verifying size and CRC. Returns new tensors (the caller disposes them).
 * Throws TrainingError naming the file when it is missing, truncated or corrupt.
 */
export function readCheckpoint(path: string): { header: CheckpointHeader; tensors: Map<string, tf.Tensor> } {
  assertLittleEndian();
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new TrainingError(`checkpoint ${path} cannot be opened: ${(e as Error).message}`);
  }
  const tensors = new Map<string, tf.Tensor>();
  try {
    const { header, dataStart } = readHeaderFd(fd, path);
    let crc = 0;
    // Tensors are laid out in order; read sequentially so the CRC runs over the data as stored.
    const sorted = header.tensors.slice().sort((a, b) => a.offset - b.offset);
    let expect = 0;
    for (const e of sorted) {
      if (e.offset !== expect) throw corrupt(path, `tensor ${e.name} at offset ${e.offset}, expected ${expect}`);
      expect += e.byteLength;
      const n = e.byteLength / 4;
      const arr = e.dtype === 'int32' ? new Int32Array(n) : new Float32Array(n);
      const bytes = new Uint8Array(arr.buffer);
      let got = 0;
      while (got < bytes.length) {
        const r = readSync(fd, bytes, got, bytes.length - got, dataStart + e.offset + got);
        if (r === 0) throw corrupt(path, `unexpected end of file in ${e.name}`);
        got += r;
      }
      crc = crc32(bytes, crc);
      tensors.set(e.name, tf.tensor(arr, e.shape, e.dtype));
    }
    if (hex8(crc) !== header.dataCrc32) throw corrupt(path, `CRC mismatch (stored ${header.dataCrc32}, computed ${hex8(crc)})`);
    return { header, tensors };
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  } finally {
    closeSync(fd);
  }
}

/** Checks that `dict` holds exactly `expected` names with the same shapes; TrainingError naming `path` otherwise. */
export function validateTensorSet(
  path: string,
  what: string,
  dict: ReadonlyMap<string, tf.Tensor>,
  expected: ReadonlyMap<string, readonly number[]>,
): void {
  const missing = [...expected.keys()].filter((k) => !dict.has(k));
  const unexpected = [...dict.keys()].filter((k) => !expected.has(k));
  const mismatched: string[] = [];
  for (const [k, shape] of expected) {
    const t = dict.get(k);
    if (t && (t.shape.length !== shape.length || t.shape.some((v, i) => v !== shape[i]))) {
      mismatched.push(`${k}: checkpoint [${t.shape}] vs model [${shape}]`);
    }
  }
  if (missing.length || unexpected.length || mismatched.length) {
    const show = (xs: string[]) => (xs.length <= 5 ? xs.join(', ') : `${xs.slice(0, 5).join(', ')}, ... (${xs.length})`);
    const parts: string[] = [];
    if (missing.length) parts.push(`missing ${show(missing)}`);
    if (unexpected.length) parts.push(`unexpected ${show(unexpected)}`);
    if (mismatched.length) parts.push(`shape mismatch ${show(mismatched)}`);
    throw new TrainingError(`checkpoint ${path} does not match ${what}: ${parts.join('; ')}. Was it written by a different model or config?`);
  }
}

// ---------------------------------------------------------------- checkpoint folder

interface LatestPointer {
  file: string;
  step: number;
}

/**
 * A folder of step checkpoints `ckpt-<step>.adbck` with an atomically updated pointer file
 * `latest.json` ({file, step}), keeping the newest `keepLast`. Named checkpoints (`best.adbck`)
 * are never pruned.
 */
export class CheckpointDir {
  readonly dir: string;
  readonly keepLast: number;

  constructor(dir: string, opts: { keepLast?: number } = {}) {
    this.dir = resolve(dir);
    this.keepLast = Math.max(1, opts.keepLast ?? 3);
  }

  static fileName(step: number): string {
    return `ckpt-${String(step).padStart(9, '0')}${CHECKPOINT_EXT}`;
  }

  private ensureDir(): void {
    mkdirSync(this.dir, { recursive: true });
  }

  /** Step checkpoints present, oldest first. */
  list(): { step: number; path: string }[] {
    if (!existsSync(this.dir)) return [];
    const out: { step: number; path: string }[] = [];
    for (const f of readdirSync(this.dir)) {
      const m = /^ckpt-(\d+)\.adbck$/.exec(f);
      if (m) out.push({ step: Number(m[1]), path: join(this.dir, f) });
    }
    return out.sort((a, b) => a.step - b.step);
  }

  /** Path of the newest checkpoint per the pointer (falling back to the newest file); null if none. */
  latest(): string | null {
    const ptr = join(this.dir, 'latest.json');
    if (existsSync(ptr)) {
      let p: LatestPointer;
      try {
        p = JSON.parse(readFileSync(ptr, 'utf8')) as LatestPointer;
      } catch (e) {
        throw new TrainingError(`checkpoint pointer ${ptr} is unreadable (${(e as Error).message}); delete it to resume from the newest ckpt-*.adbck`);
      }
      const path = join(this.dir, p.file);
      if (!existsSync(path)) throw new TrainingError(`checkpoint pointer ${ptr} names ${path}, which does not exist; delete the pointer to resume from the newest ckpt-*.adbck`);
      return path;
    }
    const all = this.list();
    return all.length > 0 ? all[all.length - 1].path : null;
  }

  /** Write the checkpoint for `meta.step`, move the pointer to it, prune old ones; returns its path. */
  save(tensors: ReadonlyMap<string, tf.Tensor>, meta: CheckpointMeta): string {
    this.ensureDir();
    const name = CheckpointDir.fileName(meta.step);
    const path = join(this.dir, name);
    writeCheckpoint(path, tensors, meta);
    atomicWriteFile(join(this.dir, 'latest.json'), `${JSON.stringify({ file: name, step: meta.step } satisfies LatestPointer)}\n`);
    const all = this.list();
    for (const old of all.slice(0, Math.max(0, all.length - this.keepLast))) {
      if (old.path !== path) rmSync(old.path, { force: true });
    }
    return path;
  }

  /** Write a named checkpoint (e.g. 'best'), not pruned and not pointed to by latest. */
  saveNamed(tag: string, tensors: ReadonlyMap<string, tf.Tensor>, meta: CheckpointMeta): string {
    if (!/^[A-Za-z0-9_.-]+$/.test(tag) || tag.startsWith('ckpt-')) throw new TrainingError(`invalid checkpoint tag '${tag}'`);
    this.ensureDir();
    const path = join(this.dir, `${tag}${CHECKPOINT_EXT}`);
    writeCheckpoint(path, tensors, meta);
    return path;
  }

  /** Remove step checkpoints and the pointer (a fresh run over an old folder with overwrite). */
  clear(): void {
    for (const c of this.list()) rmSync(c.path, { force: true });
    rmSync(join(this.dir, 'latest.json'), { force: true });
  }
}
