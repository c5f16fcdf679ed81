/**
 * Typed-array image helpers used by the strategies: HWC float32 planes, no tensors. Generators
 * work per sample on these (cheap, deterministic, no kernel launches) and build one tensor per
 * batch at the end.
 */

/** An HWC float32 image (values usually in [0, 1]). */
export interface Img {
  data: Float32Array;
  h: number;
  w: number;
  c: number;
}

export function makeImg(h: number, w: number, c: number, fill = 0): Img {
  const data = new Float32Array(h * w * c);
  if (fill !== 0) data.fill(fill);
  return { data, h, w, c };
}

export function cloneImg(img: Img): Img {
  return { data: img.data.slice(), h: img.h, w: img.w, c: img.c };
}

export function clamp01(v: number): number {
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

export function clampInPlace(img: Img): Img {
  const d = img.data;
  for (let i = 0; i < d.length; i++) d[i] = d[i] < 0 ? 0 : d[i] > 1 ? 1 : d[i];
  return img;
}

/** Sample i of an NHWC buffer as its own Img (a copy). */
export function sliceSample(data: Float32Array, i: number, h: number, w: number, c: number): Img {
  const size = h * w * c;
  return { data: data.slice(i * size, (i + 1) * size), h, w, c };
}

export type Interp = 'bilinear' | 'nearest';

/**
 * Rotation about the image centre by `deg` degrees (counter-clockwise on screen for positive
 * angles), constant 0 outside the source (imgaug Affine / cv2 BORDER_CONSTANT). With `expand` the
 * canvas grows to hold the whole rotated image (PIL rotate(expand=True)).
 */
export function rotate(img: Img, deg: number, interp: Interp = 'bilinear', expand = false): Img {
  const { h, w, c, data } = img;
  const a = (deg * Math.PI) / 180;
  const cos = Math.cos(a);
  const sin = Math.sin(a);
  let oh = h;
  let ow = w;
  if (expand) {
    ow = Math.max(1, Math.ceil(Math.abs(w * cos) + Math.abs(h * sin) - 1e-9));
    oh = Math.max(1, Math.ceil(Math.abs(w * sin) + Math.abs(h * cos) - 1e-9));
  }
  const out = makeImg(oh, ow, c);
  const od = out.data;
  const cxi = (w - 1) / 2;
  const cyi = (h - 1) / 2;
  const cxo = (ow - 1) / 2;
  const cyo = (oh - 1) / 2;
  for (let y = 0; y < oh; y++) {
    const dy = y - cyo;
    for (let x = 0; x < ow; x++) {
      const dx = x - cxo;
      // inverse map: output -> source (screen y points down, so this is a visual CCW rotation)
      const sx = cos * dx - sin * dy + cxi;
      const sy = sin * dx + cos * dy + cyi;
      const o = (y * ow + x) * c;
      if (interp === 'nearest') {
        const ix = Math.round(sx);
        const iy = Math.round(sy);
        if (ix < 0 || iy < 0 || ix >= w || iy >= h) continue;
        const s = (iy * w + ix) * c;
        for (let k = 0; k < c; k++) od[o + k] = data[s + k];
        continue;
      }
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      if (x0 < -1 || y0 < -1 || x0 >= w || y0 >= h) continue;
      const fx = sx - x0;
      const fy = sy - y0;
      const w00 = (1 - fx) * (1 - fy);
      const w01 = fx * (1 - fy);
      const w10 = (1 - fx) * fy;
      const w11 = fx * fy;
      const in00 = x0 >= 0 && y0 >= 0;
      const in01 = x0 + 1 < w && y0 >= 0;
      const in10 = x0 >= 0 && y0 + 1 < h;
      const in11 = x0 + 1 < w && y0 + 1 < h;
      const s00 = (y0 * w + x0) * c;
      const s10 = s00 + w * c;
      for (let k = 0; k < c; k++) {
        let v = 0;
        if (in00) v += w00 * data[s00 + k];
        if (in01) v += w01 * data[s00 + c + k];
        if (in10) v += w10 * data[s10 + k];
        if (in11) v += w11 * data[s10 + c + k];
        od[o + k] = v;
      }
    }
  }
  return out;
}

/** Bilinear resize with half-pixel centres (PyTorch align_corners=False, no antialias). */
export function resizeBilinear(img: Img, oh: number, ow: number): Img {
  const { h, w, c, data } = img;
  if (oh === h && ow === w) return cloneImg(img);
  const out = makeImg(oh, ow, c);
  const sy = h / oh;
  const sx = w / ow;
  for (let y = 0; y < oh; y++) {
    let fy = (y + 0.5) * sy - 0.5;
    if (fy < 0) fy = 0;
    const y0 = Math.min(h - 1, Math.floor(fy));
    const y1 = Math.min(h - 1, y0 + 1);
    const ty = fy - y0;
    for (let x = 0; x < ow; x++) {
      let fx = (x + 0.5) * sx - 0.5;
      if (fx < 0) fx = 0;
      const x0 = Math.min(w - 1, Math.floor(fx));
      const x1 = Math.min(w - 1, x0 + 1);
      const tx = fx - x0;
      const o = (y * ow + x) * c;
      for (let k = 0; k < c; k++) {
        const a = data[(y0 * w + x0) * c + k];
        const b = data[(y0 * w + x1) * c + k];
        const d = data[(y1 * w + x0) * c + k];
        const e = data[(y1 * w + x1) * c + k];
        out.data[o + k] = (a * (1 - tx) + b * tx) * (1 - ty) + (d * (1 - tx) + e * tx) * ty;
      }
    }
  }
  return out;
}

/** Resize the shorter side to the target and centre-crop (torchvision Resize(s) + CenterCrop). */
export function resizeCover(img: Img, oh: number, ow: number): Img {
  const scale = Math.max(oh / img.h, ow / img.w);
  const rh = Math.max(oh, Math.round(img.h * scale));
  const rw = Math.max(ow, Math.round(img.w * scale));
  const r = resizeBilinear(img, rh, rw);
  return crop(r, Math.floor((rh - oh) / 2), Math.floor((rw - ow) / 2), oh, ow);
}

export function crop(img: Img, top: number, left: number, ch: number, cw: number): Img {
  const out = makeImg(ch, cw, img.c);
  const c = img.c;
  for (let y = 0; y < ch; y++) {
    const sy = top + y;
    if (sy < 0 || sy >= img.h) continue;
    for (let x = 0; x < cw; x++) {
      const sx = left + x;
      if (sx < 0 || sx >= img.w) continue;
      const s = (sy * img.w + sx) * c;
      const o = (y * cw + x) * c;
      for (let k = 0; k < c; k++) out.data[o + k] = img.data[s + k];
    }
  }
  return out;
}

/** RGB in [0,1] → HSV with h in [0,1) (turns), s, v in [0,1]. */
export function rgbToHsv(r: number, g: number, b: number, out: Float64Array | number[]): void {
  const max = Math.max(r, g, b);
  const min = Math.min(r, g, b);
  const d = max - min;
  let hh = 0;
  if (d > 0) {
    if (max === r) hh = ((g - b) / d) % 6;
    else if (max === g) hh = (b - r) / d + 2;
    else hh = (r - g) / d + 4;
    hh /= 6;
    if (hh < 0) hh += 1;
  }
  out[0] = hh;
  out[1] = max === 0 ? 0 : d / max;
  out[2] = max;
}

export function hsvToRgb(hh: number, s: number, v: number, out: Float64Array | number[]): void {
  hh = ((hh % 1) + 1) % 1;
  const i = Math.floor(hh * 6);
  const f = hh * 6 - i;
  const p = v * (1 - s);
  const q = v * (1 - f * s);
  const t = v * (1 - (1 - f) * s);
  switch (i % 6) {
    case 0: out[0] = v; out[1] = t; out[2] = p; break;
    case 1: out[0] = q; out[1] = v; out[2] = p; break;
    case 2: out[0] = p; out[1] = v; out[2] = t; break;
    case 3: out[0] = p; out[1] = q; out[2] = v; break;
    case 4: out[0] = t; out[1] = p; out[2] = v; break;
    default: out[0] = v; out[1] = p; out[2] = q; break;
  }
}

/** ITU-R 601 luma (PIL "L" conversion weights). */
export function luma(r: number, g: number, b: number): number {
  return 0.299 * r + 0.587 * g + 0.114 * b;
}

/** Per-channel 8-bit histogram of an image in [0, 1] (values rounded like a uint8 conversion). */
export function histogram8(img: Img, channel: number): Int32Array {
  const hist = new Int32Array(256);
  const { data, c } = img;
  for (let i = channel; i < data.length; i += c) hist[to8(data[i])]++;
  return hist;
}

export function to8(v: number): number {
  const q = Math.round(v * 255);
  return q < 0 ? 0 : q > 255 ? 255 : q;
}

/** Applies a per-channel 256-entry lookup table (output in [0,1]) to channel `channel`. */
export function applyLut(img: Img, channel: number, lut: Float32Array): void {
  const { data, c } = img;
  for (let i = channel; i < data.length; i += c) data[i] = lut[to8(data[i])];
}

/** Count of non-zero entries. */
export function countNonZero(a: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== 0) n++;
  return n;
}
