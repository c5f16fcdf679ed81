import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import sharp from 'sharp';
import { ConfigError, DatasetError } from '../errors.js';
import {
  centerCropOffsets, cropHWC, resizeBilinearNoAntialias, resizeNearest, resizePil,
} from './resample.js';

/**
 * Image and mask IO for datasets and heatmaps. Decoding and PNG encoding go through sharp; sizes
 * are changed by `resample.ts` (a port of Pillow's antialiased resize, which is what the
 * reference implementations use) unless a sharp kernel is asked for explicitly. This layer knows
 * nothing of tfjs: it hands out contiguous Float32Array batches that a higher layer wraps.
 */

/** A size: one number for a square, or [height, width]. */
export type ImageSize = number | readonly [number, number];

/**
 * Resize filter. Defaults to 'pil-bilinear', torchvision's `Resize` default on PIL images
 * (PatchCore, GLASS, Dinomaly, DDAD, DiffusionAD). CutPaste resizes with Pillow's BICUBIC,
 * DRAEM with OpenCV INTER_LINEAR ('cv2-bilinear', not antialiased). The `sharp-*` kernels are
 * native and faster (libvips, antialiased when shrinking) but match no reference implementation:
 * of them `sharp-cubic` (Catmull-Rom, the same kernel as Pillow's BICUBIC) is the closest.
 */
export type ResizeFilter =
  | 'pil-bilinear' | 'pil-bicubic' | 'pil-lanczos' | 'cv2-bilinear'
  | 'sharp-cubic' | 'sharp-lanczos3' | 'sharp-mitchell';

export interface ImageTransform {
  /** Target size after resizing; omitted = keep the decoded size. */
  size?: ImageSize;
  /**
   * With a single-number `size`: resize the shorter side to it and keep the aspect ratio
   * (torchvision `Resize(int)`, used by GLASS). Otherwise the image is resized to exactly
   * `size`, stretching non-square inputs (torchvision `Resize((h, w))`).
   */
  keepAspect?: boolean;
  /** Center crop applied after resizing (torchvision `CenterCrop`). */
  crop?: ImageSize;
  filter?: ResizeFilter;
  /** Masks only: anomalous where value > floor(maskThreshold × full scale); default 0.5 (> 127 for 8-bit). */
  maskThreshold?: number;
}

/** Decoded pixels before any transform: 8- or 16-bit, HWC. */
export interface RawImage {
  data: Uint8Array | Uint16Array;
  h: number;
  w: number;
  c: 1 | 3;
  bitDepth: 8 | 16;
  path: string;
}

/** HWC RGB in [0, 1]. */
export interface RgbImage {
  data: Float32Array;
  h: number;
  w: number;
  c: 3;
}

/** One byte per pixel, 0 (normal) or 1 (anomalous). */
export interface BinaryMask {
  data: Uint8Array;
  h: number;
  w: number;
}

/** Contiguous NHWC batch. */
export interface ImageBatch {
  data: Float32Array;
  n: number;
  h: number;
  w: number;
  c: number;
}

export const DEFAULT_RESIZE_FILTER: ResizeFilter = 'pil-bilinear';

function asHW(size: ImageSize, what: string): [number, number] {
  const [h, w] = typeof size === 'number' ? [size, size] : [size[0], size[1]];
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1) {
    throw new ConfigError(`${what} must be positive integers, got ${JSON.stringify(size)}`);
  }
  return [h, w];
}

/** Size after the resize step of a transform (before cropping). */
export function resizedSize(h: number, w: number, t: ImageTransform = {}): [number, number] {
  if (t.size === undefined) return [h, w];
  if (t.keepAspect && typeof t.size === 'number') {
    // torchvision: short side = size, long side = int(size * long / short).
    const s = t.size;
    return h <= w ? [s, Math.floor((s * w) / h)] : [Math.floor((s * h) / w), s];
  }
  return asHW(t.size, 'size');
}

/** Final size after resize and crop. */
export function transformedSize(h: number, w: number, t: ImageTransform = {}): [number, number] {
  const [rh, rw] = resizedSize(h, w, t);
  if (t.crop === undefined) return [rh, rw];
  const [ch, cw] = asHW(t.crop, 'crop');
  if (ch > rh || cw > rw) {
    throw new ConfigError(`crop ${ch}x${cw} is larger than the resized image ${rh}x${rw}`);
  }
  return [ch, cw];
}

async function readBytes(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? String(e)})`;
    throw new DatasetError(`${what} '${path}' ${why}`);
  }
}

function corrupt(path: string, what: string, e: unknown): DatasetError {
  const msg = e instanceof Error ? e.message : String(e);
  return new DatasetError(
    `cannot decode ${what} '${path}': ${msg}. The file is corrupt or not a PNG/JPEG image; ` +
      're-extract or re-download it.',
  );
}

/**
 * Decode to raw channels. Colour channels are kept as stored (no ICC conversion), alpha is
 * dropped without compositing: both as Pillow's `convert('RGB')`, which the reference loaders call.
 */
async function decodeRaw(path: string, what: string): Promise<{
  data: Uint8Array | Uint16Array; h: number; w: number; c: number; bitDepth: 8 | 16; hasAlpha: boolean;
}> {
  const bytes = await readBytes(path, what);
  try {
    const img = sharp(bytes, { failOn: 'error' });
    const meta = await img.metadata();
    const bitDepth: 8 | 16 = meta.depth === 'ushort' ? 16 : 8;
    // sharp's typings list fewer space names than libvips reports ('b-w', 'grey16').
    const storedSpace = String(meta.space ?? '');
    const grey = ['b-w', 'bw', 'grey16'].includes(storedSpace) || (meta.channels ?? 3) <= 2;
    // Name the output space explicitly: by default sharp converts to 8-bit sRGB, which would
    // silently truncate 16-bit images (and triple grey ones). CMYK JPEGs become sRGB as in Pillow.
    const space = grey ? (bitDepth === 16 ? 'grey16' : 'b-w') : bitDepth === 16 ? 'rgb16' : 'srgb';
    const { data, info } = await img
      .toColourspace(space)
      .raw({ depth: bitDepth === 16 ? 'ushort' : 'uchar' })
      .toBuffer({ resolveWithObject: true });
    const pixels = bitDepth === 16
      ? new Uint16Array(data.buffer, data.byteOffset, data.length / 2)
      : new Uint8Array(data.buffer, data.byteOffset, data.length);
    const hasAlpha = info.channels === 2 || info.channels === 4;
    return { data: pixels, h: info.height, w: info.width, c: info.channels, bitDepth, hasAlpha };
  } catch (e) {
    throw corrupt(path, what, e);
  }
}

/** Decode a PNG/JPEG (RGB, RGBA, grey, grey+alpha, 8 or 16 bit) to 3-channel HWC. */
export async function decodeImage(path: string): Promise<RawImage> {
  const r = await decodeRaw(path, 'image');
  if (r.c === 3) return { data: r.data, h: r.h, w: r.w, c: 3, bitDepth: r.bitDepth, path };
  const n = r.h * r.w;
  const colour = r.c >= 3;
  const out = r.bitDepth === 16 ? new Uint16Array(n * 3) : new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const s = i * r.c;
    // Grey is replicated to R=G=B (what `convert('RGB')` does for grid, screw and zipper).
    out[i * 3] = r.data[s];
    out[i * 3 + 1] = r.data[colour ? s + 1 : s];
    out[i * 3 + 2] = r.data[colour ? s + 2 : s];
  }
  return { data: out, h: r.h, w: r.w, c: 3, bitDepth: r.bitDepth, path };
}

/**
 * Decode a mask to one channel. Masks are normally single-channel; for a colour mask the
 * brightest channel is used, so a mark drawn in any colour counts.
 */
export async function decodeMask(path: string): Promise<RawImage> {
  const r = await decodeRaw(path, 'mask');
  const n = r.h * r.w;
  const colourChannels = r.c >= 3 ? 3 : 1;
  const out = r.bitDepth === 16 ? new Uint16Array(n) : new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let m = 0;
    for (let ch = 0; ch < colourChannels; ch++) m = Math.max(m, r.data[i * r.c + ch]);
    out[i] = m;
  }
  return { data: out, h: r.h, w: r.w, c: 1, bitDepth: r.bitDepth, path };
}

async function resizeSharp(
  raw: RawImage, outH: number, outW: number, kernel: 'cubic' | 'lanczos3' | 'mitchell',
): Promise<Uint8Array | Uint16Array> {
  const { data, info } = await sharp(raw.data, { raw: { width: raw.w, height: raw.h, channels: raw.c } })
    .resize(outW, outH, { fit: 'fill', kernel })
    .raw({ depth: raw.bitDepth === 16 ? 'ushort' : 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== raw.c) throw new Error(`sharp returned ${info.channels} channels, expected ${raw.c}`);
  return raw.bitDepth === 16
    ? new Uint16Array(data.buffer, data.byteOffset, data.length / 2)
    : new Uint8Array(data.buffer, data.byteOffset, data.length);
}

/** Resize + center crop a decoded image and scale it to [0, 1]. */
export async function transformImage(raw: RawImage, t: ImageTransform = {}): Promise<RgbImage> {
  const [rh, rw] = resizedSize(raw.h, raw.w, t);
  const [oh, ow] = transformedSize(raw.h, raw.w, t);
  let px: Uint8Array | Uint16Array | Float32Array = raw.data;
  if (rh !== raw.h || rw !== raw.w) {
    const filter = t.filter ?? DEFAULT_RESIZE_FILTER;
    switch (filter) {
      case 'pil-bilinear': px = resizePil(raw.data, raw.h, raw.w, raw.c, rh, rw, 'bilinear'); break;
      case 'pil-bicubic': px = resizePil(raw.data, raw.h, raw.w, raw.c, rh, rw, 'bicubic'); break;
      case 'pil-lanczos': px = resizePil(raw.data, raw.h, raw.w, raw.c, rh, rw, 'lanczos'); break;
      case 'cv2-bilinear': px = resizeBilinearNoAntialias(raw.data, raw.h, raw.w, raw.c, rh, rw); break;
      case 'sharp-cubic': px = await resizeSharp(raw, rh, rw, 'cubic'); break;
      case 'sharp-lanczos3': px = await resizeSharp(raw, rh, rw, 'lanczos3'); break;
      case 'sharp-mitchell': px = await resizeSharp(raw, rh, rw, 'mitchell'); break;
      default: throw new RangeError(`unknown resize filter '${String(filter)}'`);
    }
  }
  if (oh !== rh || ow !== rw) {
    const [top, left] = centerCropOffsets(rh, rw, oh, ow);
    px = cropHWC(px, rw, raw.c, top, left, oh, ow);
  }
  const scale = 1 / (raw.bitDepth === 16 ? 65535 : 255);
  const out = new Float32Array(oh * ow * 3);
  // Float paths can overshoot slightly (negative lobes of cubic/lanczos): clamp like 8-bit does.
  for (let i = 0; i < out.length; i++) out[i] = Math.min(1, Math.max(0, px[i] * scale));
  return { data: out, h: oh, w: ow, c: 3 };
}

/**
 * Resize (nearest, so labels never blur) + center crop a decoded mask and binarise it at
 * `maskThreshold` of full scale (default half: > 127 for 8-bit).
 */
export function transformMask(raw: RawImage, t: ImageTransform = {}): BinaryMask {
  if (raw.c !== 1) throw new RangeError(`transformMask expects a 1-channel mask, got ${raw.c}`);
  const [rh, rw] = resizedSize(raw.h, raw.w, t);
  const [oh, ow] = transformedSize(raw.h, raw.w, t);
  let px: Uint8Array | Uint16Array = raw.data;
  if (rh !== raw.h || rw !== raw.w) px = resizeNearest(px, raw.h, raw.w, 1, rh, rw);
  if (oh !== rh || ow !== rw) {
    const [top, left] = centerCropOffsets(rh, rw, oh, ow);
    px = cropHWC(px, rw, 1, top, left, oh, ow);
  }
  const level = Math.floor((t.maskThreshold ?? 0.5) * (raw.bitDepth === 16 ? 65535 : 255));
  const out = new Uint8Array(oh * ow);
  for (let i = 0; i < out.length; i++) out[i] = px[i] > level ? 1 : 0;
  return { data: out, h: oh, w: ow };
}

/** Decode + transform. Throws DatasetError naming the file if it is missing or corrupt. */
export async function readImage(path: string, t: ImageTransform = {}): Promise<RgbImage> {
  return transformImage(await decodeImage(path), t);
}

export async function readMask(path: string, t: ImageTransform = {}): Promise<BinaryMask> {
  return transformMask(await decodeMask(path), t);
}

/** Header-only size read (no pixel decode). */
export async function readImageSize(path: string): Promise<{ h: number; w: number }> {
  const bytes = await readBytes(path, 'image');
  try {
    const m = await sharp(bytes).metadata();
    if (!m.width || !m.height) throw new Error('no dimensions in header');
    return { h: m.height, w: m.width };
  } catch (e) {
    throw corrupt(path, 'image', e);
  }
}

/** All-normal mask, for test/good images (they have no ground-truth file). */
export function emptyMask(h: number, w: number): BinaryMask {
  return { data: new Uint8Array(h * w), h, w };
}

/**
 * Write an 8-bit PNG (heatmaps, overlays, synthetic data). Float32Array values are taken as
 * [0, 1] and clamped; Uint8Array values are written as they are. Parent folders are created.
 */
export async function writePng(
  path: string, data: Float32Array | Uint8Array, w: number, h: number, channels: 1 | 3 | 4,
): Promise<void> {
  if (data.length !== w * h * channels) {
    throw new RangeError(`writePng(${path}): ${data.length} values for ${w}x${h}x${channels}`);
  }
  let bytes: Uint8Array;
  if (data instanceof Uint8Array) {
    bytes = data;
  } else {
    bytes = new Uint8Array(data.length);
    for (let i = 0; i < data.length; i++) bytes[i] = Math.round(Math.min(1, Math.max(0, data[i])) * 255);
  }
  let img = sharp(bytes, { raw: { width: w, height: h, channels } });
  // Without this sharp would store one-channel input as RGB; masks must stay single channel.
  if (channels === 1) img = img.toColourspace('b-w');
  // Fixed encoder settings: identical input gives identical bytes (synthetic data determinism).
  const png = await img.png({ compressionLevel: 6, adaptiveFiltering: false, palette: false }).toBuffer();
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, png);
}

/** Stack equally sized images into one contiguous NHWC Float32Array. */
export function stackImages(images: readonly RgbImage[]): ImageBatch {
  if (images.length === 0) throw new RangeError('stackImages: no images');
  const { h, w, c } = images[0];
  const per = h * w * c;
  const data = new Float32Array(images.length * per);
  images.forEach((im, i) => {
    if (im.h !== h || im.w !== w || im.c !== c) {
      throw new DatasetError(
        `cannot batch image ${i} of size ${im.h}x${im.w}x${im.c} with images of ${h}x${w}x${c}: ` +
          'give the loader a resize `size` so that all images share one size',
      );
    }
    data.set(im.data, i * per);
  });
  return { data, n: images.length, h, w, c };
}
