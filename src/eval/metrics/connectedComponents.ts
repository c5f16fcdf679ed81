/**
 * Connected components of a binary mask with 8-connectivity, the convention of the official MVTec
 * AD evaluation code (`scipy.ndimage.label(gt_map, structure=np.ones((3, 3)))` in `compute_pro`,
 * Bergmann et al., IJCV 2021): two defect pixels touching only at a corner are ONE region.
 */
export interface Components {
  /** Per pixel: 0 for background, 1..count for the region it belongs to. */
  readonly labels: Int32Array;
  readonly count: number;
  /** sizes[r] = number of pixels of region r (index 0 unused). */
  readonly sizes: Int32Array;
}

/**
 * Labels the non-zero pixels of a row-major `width x height` mask (flood fill with an explicit
 * stack; regions are numbered in raster order of their first pixel, like scipy).
 */
export function labelComponents8(mask: Uint8Array, width: number, height: number): Components {
  const n = width * height;
  const labels = new Int32Array(n);
  const stack = new Int32Array(n);
  const sizes: number[] = [0];
  let count = 0;
  for (let start = 0; start < n; start++) {
    if (mask[start] === 0 || labels[start] !== 0) continue;
    count++;
    let size = 0;
    let top = 0;
    stack[top++] = start;
    labels[start] = count;
    while (top > 0) {
      const p = stack[--top];
      size++;
      const x = p % width;
      const y = (p - x) / width;
      const y0 = y > 0 ? y - 1 : y;
      const y1 = y < height - 1 ? y + 1 : y;
      const x0 = x > 0 ? x - 1 : x;
      const x1 = x < width - 1 ? x + 1 : x;
      for (let yy = y0; yy <= y1; yy++) {
        for (let xx = x0; xx <= x1; xx++) {
          const q = yy * width + xx;
          if (mask[q] !== 0 && labels[q] === 0) {
            labels[q] = count;
            stack[top++] = q; // each pixel is pushed once, so the stack never exceeds n
          }
        }
      }
    }
    sizes.push(size);
  }
  return { labels, count, sizes: Int32Array.from(sizes) };
}
