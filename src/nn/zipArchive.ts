import { inflateRawSync } from 'node:zlib';
import { WeightsError } from '../errors.js';

/**
 * A minimal read-only zip reader (PKWARE APPNOTE 6.3: central directory, stored and deflate
 * entries, zip64 sizes/offsets), enough for PyTorch's `torch.save` archives: those are written
 * by PyTorchStreamWriter with stored (uncompressed) entries, 64-byte aligned via padding in the
 * local headers' extra field. No zip package is in node_modules, and this is ~150 lines.
 */

export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate. */
  method: number;
  compressedSize: number;
  size: number;
  /** Offset of the local file header. */
  localOffset: number;
}

const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;

function u64(buf: Buffer, off: number): number {
  const v = buf.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`64-bit zip field ${v} too large`);
  return Number(v);
}

export class ZipArchive {
  readonly entries = new Map<string, ZipEntry>();

  constructor(
    private readonly buf: Buffer,
    private readonly source: string,
  ) {
    this.readCentralDirectory();
  }

  private fail(why: string): WeightsError {
    return new WeightsError(`${this.source}: not a readable zip archive (${why}); the file is corrupt or truncated, download it again`);
  }

  private readCentralDirectory(): void {
    const b = this.buf;
    // The end-of-central-directory record is 22 bytes plus a comment of at most 65535 bytes.
    let eocd = -1;
    for (let i = b.length - 22; i >= Math.max(0, b.length - 22 - 65535); i--) {
      if (b.readUInt32LE(i) === EOCD_SIG) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw this.fail('no end-of-central-directory record');
    let count = b.readUInt16LE(eocd + 10);
    let cdSize = b.readUInt32LE(eocd + 12);
    let cdOffset = b.readUInt32LE(eocd + 16);
    const loc = eocd - 20;
    if (loc >= 0 && b.readUInt32LE(loc) === ZIP64_LOCATOR_SIG) {
      const z = u64(b, loc + 8);
      if (z + 56 > b.length || b.readUInt32LE(z) !== ZIP64_EOCD_SIG) throw this.fail('bad zip64 end-of-central-directory record');
      count = u64(b, z + 32);
      cdSize = u64(b, z + 40);
      cdOffset = u64(b, z + 48);
    }
    if (cdOffset + cdSize > b.length) throw this.fail(`central directory at ${cdOffset}+${cdSize} lies beyond the end (${b.length} bytes)`);
    let p = cdOffset;
    for (let i = 0; i < count; i++) {
      if (p + 46 > b.length || b.readUInt32LE(p) !== CENTRAL_SIG) throw this.fail(`bad central directory entry ${i}`);
      const method = b.readUInt16LE(p + 10);
      let compressedSize = b.readUInt32LE(p + 20);
      let size = b.readUInt32LE(p + 24);
      const nameLen = b.readUInt16LE(p + 28);
      const extraLen = b.readUInt16LE(p + 30);
      const commentLen = b.readUInt16LE(p + 32);
      let localOffset = b.readUInt32LE(p + 42);
      const name = b.toString('utf8', p + 46, p + 46 + nameLen);
      // Zip64 extended information (header id 1): only the fields that overflowed, in this order.
      let e = p + 46 + nameLen;
      const eEnd = e + extraLen;
      while (e + 4 <= eEnd) {
        const id = b.readUInt16LE(e);
        const len = b.readUInt16LE(e + 2);
        if (id === 1) {
          let q = e + 4;
          if (size === 0xffffffff) { size = u64(b, q); q += 8; }
          if (compressedSize === 0xffffffff) { compressedSize = u64(b, q); q += 8; }
          if (localOffset === 0xffffffff) { localOffset = u64(b, q); }
        }
        e += 4 + len;
      }
      this.entries.set(name, { name, method, compressedSize, size, localOffset });
      p += 46 + nameLen + extraLen + commentLen;
    }
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** The entry's bytes; stored entries are views into the archive buffer (no copy). */
  read(name: string): Buffer {
    const ent = this.entries.get(name);
    if (!ent) throw new WeightsError(`${this.source}: zip entry '${name}' not found`);
    const b = this.buf;
    const o = ent.localOffset;
    if (o + 30 > b.length || b.readUInt32LE(o) !== LOCAL_SIG) throw this.fail(`bad local header for '${name}'`);
    const start = o + 30 + b.readUInt16LE(o + 26) + b.readUInt16LE(o + 28);
    const end = start + ent.compressedSize;
    if (end > b.length) throw this.fail(`entry '${name}' runs past the end of the file`);
    const raw = b.subarray(start, end);
    if (ent.method === 0) return raw;
    if (ent.method === 8) {
      const out = inflateRawSync(raw);
      if (out.length !== ent.size) throw this.fail(`entry '${name}' inflates to ${out.length} bytes, expected ${ent.size}`);
      return out;
    }
    throw new WeightsError(`${this.source}: zip entry '${name}' uses compression method ${ent.method}; only stored (0) and deflate (8) are supported`);
  }
}

/** True when the bytes start with a zip local file header ("PK\3\4"). */
export function isZip(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;
}
