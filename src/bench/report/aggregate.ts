/**
 * Statistics the report tables are made of: mean ± sample standard deviation over seeds, and
 * ranks recomputed from values (the paper's printed ranks contradict its values in places,
 * tables README I3, so ranks are never copied).
 */

export interface Stat {
  mean: number | null;
  /** Sample standard deviation (n - 1); null for fewer than two values. */
  std: number | null;
  n: number;
}

export function stat(values: ReadonlyArray<number | null>): Stat {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x));
  if (v.length === 0) return { mean: null, std: null, n: 0 };
  const mean = v.reduce((s, x) => s + x, 0) / v.length;
  if (v.length < 2) return { mean, std: null, n: v.length };
  const ss = v.reduce((s, x) => s + (x - mean) ** 2, 0);
  return { mean, std: Math.sqrt(ss / (v.length - 1)), n: v.length };
}

export function mean(values: ReadonlyArray<number>): number | null {
  return values.length === 0 ? null : values.reduce((s, x) => s + x, 0) / values.length;
}

/**
 * Standard competition ranking ("1224"): rank 1 = highest (or lowest with `lowerIsBetter`); tied
 * values share the best rank; nulls get no rank. Values equal to within 1e-9 count as ties.
 */
export function ranks(values: ReadonlyArray<number | null>, lowerIsBetter = false): Array<number | null> {
  return values.map((v) => {
    if (v === null) return null;
    let better = 0;
    for (const w of values) {
      if (w === null) continue;
      if (lowerIsBetter ? w < v - 1e-9 : w > v + 1e-9) better++;
    }
    return better + 1;
  });
}
