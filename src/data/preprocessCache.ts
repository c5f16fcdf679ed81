import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ImageTransform } from './imageIO.js';
import type { LoadedSample, Sample } from './mvtec.js';

/**
 * On-disk cache of decoded + resized samples. Decoding a 900x900 PNG and resizing it with the
 * Pillow-exact filter costs ~0.1-0.2 s in JS, a minute per MVTec category and run; ablations and
 * repeated runs reuse the same preprocessing. The key covers the file (absolute path, size,
 * mtime), its mask and the whole transform, so an edited image or a new transform misses.
 * Values are stored as the exact float32 arrays (lossless); writes are atomic.
 */
const FORMAT = 'adbench-preprocessed/1';

export function defaultCacheDir(): string {
  return resolve(process.env.ADBENCH_CACHE ?? join('data', '.cache', 'preprocessed'));
}

function fileStamp(path: string): string {
  const st = statSync(path);
  return `${resolve(path)}:${st.size}:${st.mtimeMs}`;
}

export function cacheKey(sample: Sample, t: ImageTransform): string {
  const parts = [FORMAT, fileStamp(sample.path), sample.maskPath ? fileStamp(sample.maskPath) : 'nomask', JSON.stringify(t)];
  // Only when set, so that MVTec keys stay what they were.
  if (sample.maskNonZero) parts.push('mask>0');
  return createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 40);
}

export function readCached(dir: string, sample: Sample, t: ImageTransform): LoadedSample | null {
  const path = join(dir, `${cacheKey(sample, t)}.bin`);
  if (!existsSync(path)) return null;
  try {
    const buf = readFileSync(path);
    const headerLen = buf.readUInt32LE(0);
    const header = JSON.parse(buf.subarray(4, 4 + headerLen).toString('utf8')) as { format: string; h: number; w: number };
    if (header.format !== FORMAT) return null;
    const n = header.h * header.w;
    const off = 4 + headerLen;
    const pixels = new Float32Array(buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + off + n * 3 * 4));
    const mask = new Uint8Array(buf.buffer.slice(buf.byteOffset + off + n * 12, buf.byteOffset + off + n * 13));
    if (pixels.length !== n * 3 || mask.length !== n) return null;
    return { sample, image: { data: pixels, h: header.h, w: header.w, c: 3 }, mask: { data: mask, h: header.h, w: header.w } };
  } catch {
    // A damaged entry is a miss: it is rewritten below.
    return null;
  }
}

export function writeCached(dir: string, s: LoadedSample, t: ImageTransform): void {
  mkdirSync(dir, { recursive: true });
  const header = Buffer.from(JSON.stringify({ format: FORMAT, h: s.image.h, w: s.image.w, id: s.sample.id }), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(header.length, 0);
  const body = Buffer.concat([
    len,
    header,
    Buffer.from(s.image.data.buffer, s.image.data.byteOffset, s.image.data.byteLength),
    Buffer.from(s.mask.data.buffer, s.mask.data.byteOffset, s.mask.data.byteLength),
  ]);
  const path = join(dir, `${cacheKey(s.sample, t)}.bin`);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, body);
  renameSync(tmp, path);
}
