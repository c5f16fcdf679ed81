/**
 * Minimal sharp-based image IO for the augment folder (texture folders, foreground-mask folders,
 * the show-anomalies grid). Kept local because src/data/imageIO.ts was not available when this was
 * written; switch to it once it is. Texture/mask resizing here uses sharp's default kernel
 * (lanczos3, antialiased): exact Pillow parity does not matter for anomaly textures.
 */
import sharp from 'sharp';
import { DatasetError } from '../errors.js';
import type { Img } from './image.js';
import type { TextureFit } from './types.js';

/** Reads an image as RGB float32 HWC in [0, 1], optionally resized ('fill' squashes, 'cover' = shorter side + centre crop). */
export async function readRgb(path: string, h?: number, w?: number, fit: TextureFit = 'fill'): Promise<Img> {
  try {
    let p = sharp(path, { failOn: 'error' }).removeAlpha().toColourspace('srgb');
    if (h !== undefined && w !== undefined) p = p.resize(w, h, { fit: fit === 'fill' ? 'fill' : 'cover', position: 'centre' });
    const { data, info } = await p.raw().toBuffer({ resolveWithObject: true });
    return toImg(data, info.height, info.width, info.channels, 3);
  } catch (e) {
    throw new DatasetError(`cannot read image ${path}: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
  }
}

/** Reads a single-channel image (mask) as float32 in [0, 1], resized with sharp's cubic kernel to h×w. */
export async function readGray(path: string, h: number, w: number): Promise<Img> {
  try {
    const { data, info } = await sharp(path, { failOn: 'error' })
      .removeAlpha()
      .toColourspace('b-w')
      .resize(w, h, { fit: 'fill', kernel: 'cubic' })
      .raw()
      .toBuffer({ resolveWithObject: true });
    return toImg(data, info.height, info.width, info.channels, 1);
  } catch (e) {
    throw new DatasetError(`cannot read mask ${path}: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
  }
}

function toImg(data: Buffer, h: number, w: number, srcC: number, outC: number): Img {
  const out = new Float32Array(h * w * outC);
  for (let i = 0, p = 0; i < h * w; i++, p += srcC) {
    for (let k = 0; k < outC; k++) out[i * outC + k] = data[p + Math.min(k, srcC - 1)] / 255;
  }
  return { data: out, h, w, c: outC };
}

/** Writes an RGB (or gray, replicated) float image in [0, 1] as an 8-bit PNG. */
export async function writePng(path: string, img: Img): Promise<void> {
  const buf = Buffer.alloc(img.h * img.w * 3);
  for (let i = 0; i < img.h * img.w; i++) {
    for (let k = 0; k < 3; k++) {
      const v = img.data[i * img.c + Math.min(k, img.c - 1)];
      buf[i * 3 + k] = Math.max(0, Math.min(255, Math.round(v * 255)));
    }
  }
  await sharp(buf, { raw: { width: img.w, height: img.h, channels: 3 } }).png().toFile(path);
}
