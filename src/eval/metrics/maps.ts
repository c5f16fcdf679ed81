import { ConfigError, DatasetError } from '../../errors.js';

/** A per-pixel anomaly score map, row-major: `data[y * width + x]`; higher = more anomalous. */
export interface AnomalyMap {
  readonly width: number;
  readonly height: number;
  readonly data: Float32Array;
  /** Image id used in error messages (e.g. 'bottle/test/broken_large/000'). */
  readonly id?: string;
}

/**
 * A ground-truth defect mask of the same size, row-major; any NON-ZERO value is a defect pixel
 * (MVTec AD masks store 255). `null` in a mask list stands for a defect-free image (all zeros), so
 * callers need not allocate masks for the "good" test images, which have no mask file in MVTec AD.
 */
export interface DefectMask {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
  readonly id?: string;
}

function name(i: number, id: string | undefined): string {
  return id === undefined ? `index ${i}` : `index ${i} (${id})`;
}

/** Pixel class counts over all maps. */
export interface PixelCounts {
  /** Defect pixels (mask non-zero). */
  readonly positives: number;
  /** Defect-free pixels. */
  readonly negatives: number;
}

/**
 * Checks that maps and masks pair up one-to-one with equal sizes and that every map value is
 * finite; throws DatasetError naming the image index/id (and pixel for NaN). Returns pixel counts.
 */
export function checkMapsMasks(
  maps: readonly AnomalyMap[],
  masks: readonly (DefectMask | null)[],
): PixelCounts {
  if (maps.length !== masks.length) {
    throw new DatasetError(`pixel metrics: ${maps.length} anomaly maps but ${masks.length} masks; need one mask (or null) per map`);
  }
  if (maps.length === 0) throw new DatasetError('pixel metrics: no anomaly maps given');
  let positives = 0;
  let total = 0;
  for (let i = 0; i < maps.length; i++) {
    const m = maps[i];
    const who = name(i, m.id);
    if (!Number.isInteger(m.width) || !Number.isInteger(m.height) || m.width <= 0 || m.height <= 0) {
      throw new DatasetError(`anomaly map at ${who}: invalid size ${m.width}x${m.height}`);
    }
    if (m.data.length !== m.width * m.height) {
      throw new DatasetError(`anomaly map at ${who}: ${m.data.length} values for ${m.width}x${m.height} pixels`);
    }
    const mk = masks[i];
    if (mk !== null) {
      const mwho = name(i, mk.id ?? m.id);
      if (mk.width !== m.width || mk.height !== m.height) {
        throw new DatasetError(
          `mask at ${mwho} is ${mk.width}x${mk.height} but its anomaly map is ${m.width}x${m.height}; ` +
            'resize the maps (or masks) to a common size before evaluation',
        );
      }
      if (mk.data.length !== mk.width * mk.height) {
        throw new DatasetError(`mask at ${mwho}: ${mk.data.length} values for ${mk.width}x${mk.height} pixels`);
      }
      for (let p = 0; p < mk.data.length; p++) if (mk.data[p] !== 0) positives++;
    }
    const d = m.data;
    for (let p = 0; p < d.length; p++) {
      if (!Number.isFinite(d[p])) {
        throw new DatasetError(
          `anomaly map at ${who}: value ${d[p]} at pixel (x=${p % m.width}, y=${Math.floor(p / m.width)}); maps must be finite`,
        );
      }
    }
    total += d.length;
  }
  return { positives, negatives: total - positives };
}

/** Throws ConfigError when a pixel-level ranking metric is undefined (one pixel class only). */
export function requireBothPixelClasses(counts: PixelCounts, what: string): void {
  if (counts.positives === 0) {
    throw new ConfigError(`${what}: no mask has a defect pixel; ${what} is undefined without defect pixels`);
  }
  if (counts.negatives === 0) {
    throw new ConfigError(`${what}: every pixel is a defect pixel; ${what} is undefined without defect-free pixels`);
  }
}
