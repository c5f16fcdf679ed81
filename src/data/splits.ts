import { ConfigError, DatasetError } from '../errors.js';
import { Rng } from '../util/rng.js';
import type { CategoryIndex, Sample } from './mvtec.js';

/**
 * Seeded train / validation / test split of one category.
 *
 * - validation: normal images held out of train (model selection, thresholds and score
 *   normalisation are fitted there, never on test; the paper, section 3.2, removed exactly that
 *   leak from the reference code).
 * - rebalance (paper section 3.2): MVTec's test sets are only 25-30 % normal, so the paper moved
 *   "a portion of normal images from the training set to the test set". It does not say how
 *   many; we move randomly chosen train/good images until normals make up `testNormalShare` of
 *   the test set (default 0.5, "a better balance"). Moving happens before the validation
 *   hold-out, so moved images are in neither train nor validation.
 */

export interface SplitOptions {
  seed: number | string;
  /** Share of the (remaining) normal train images held out for validation. Default 0.1. */
  valFraction?: number;
  /** Move train normals into test (paper section 3.2). Default false (standard MVTec protocol). */
  rebalance?: boolean;
  /** Target share of normal images in the rebalanced test set, in [0, 1). Default 0.5. */
  testNormalShare?: number;
}

export interface ResolvedSplitOptions {
  seed: string;
  valFraction: number;
  rebalance: boolean;
  testNormalShare: number;
}

export interface DatasetSplit {
  category: string;
  dir: string;
  options: ResolvedSplitOptions;
  train: Sample[];
  validation: Sample[];
  test: Sample[];
  /** Ids of train/good images that rebalancing moved into test (also listed in `test`). */
  movedToTest: string[];
  /** Share of normal images in the final test set. */
  testNormalShare: number;
  /** E.g. the target share could not be reached without emptying train. */
  warnings: string[];
}

export const DEFAULT_VAL_FRACTION = 0.1;
export const DEFAULT_TEST_NORMAL_SHARE = 0.5;

function resolveOptions(o: SplitOptions): ResolvedSplitOptions {
  const valFraction = o.valFraction ?? DEFAULT_VAL_FRACTION;
  const testNormalShare = o.testNormalShare ?? DEFAULT_TEST_NORMAL_SHARE;
  if (!(valFraction >= 0 && valFraction < 1)) {
    throw new ConfigError(`validation fraction must be in [0, 1), got ${valFraction}`);
  }
  if (!(testNormalShare >= 0 && testNormalShare < 1)) {
    throw new ConfigError(`test normal share must be in [0, 1), got ${testNormalShare}`);
  }
  return { seed: String(o.seed), valFraction, rebalance: o.rebalance ?? false, testNormalShare };
}

/** Normal images to add to a test set so that normals make up at least `share` of it. */
export function normalsToMove(testNormals: number, testAnomalies: number, share: number): number {
  if (share <= 0) return 0;
  // (n + k) / (n + a + k) >= s  <=>  k >= s * a / (1 - s) - n; the epsilon absorbs float error
  // in exact cases (s = 0.5, a = 63, n = 20 -> exactly 43).
  return Math.max(0, Math.ceil((share * testAnomalies) / (1 - share) - testNormals - 1e-9));
}

/** Validation count: `round(f * n)`, at least 1 when f > 0 and n >= 2, never all of train. */
export function validationCount(nTrain: number, valFraction: number): number {
  if (valFraction <= 0 || nTrain < 2) return 0;
  return Math.min(nTrain - 1, Math.max(1, Math.round(valFraction * nTrain)));
}

function pick(samples: readonly Sample[], count: number, rng: Rng): Set<string> {
  return new Set(rng.shuffle(samples.map((s) => s.id)).slice(0, count));
}

const shareOfNormals = (test: readonly Sample[]): number =>
  test.length === 0 ? 0 : test.filter((s) => s.label === 0).length / test.length;

export function makeSplit(index: CategoryIndex, options: SplitOptions): DatasetSplit {
  const opts = resolveOptions(options);
  // One child stream per decision: the draws of one never shift the other's.
  const rng = new Rng(opts.seed).fork(`split/${index.category}`);
  const warnings: string[] = [];
  let pool = index.train.slice();
  const test = index.test.slice();
  let moved = new Set<string>();

  if (opts.rebalance) {
    const nNormal = test.filter((s) => s.label === 0).length;
    const want = normalsToMove(nNormal, test.length - nNormal, opts.testNormalShare);
    // Keep enough for training plus one validation image.
    const keep = opts.valFraction > 0 ? 2 : 1;
    const k = Math.min(want, Math.max(0, pool.length - keep));
    if (k < want) {
      warnings.push(
        `rebalancing wanted ${want} normal train images in test but only ${k} can move without ` +
          `emptying train (${pool.length} available)`,
      );
    }
    moved = pick(pool, k, rng.fork('rebalance'));
    test.push(...pool.filter((s) => moved.has(s.id)));
    pool = pool.filter((s) => !moved.has(s.id));
  }

  const valIds = pick(pool, validationCount(pool.length, opts.valFraction), rng.fork('validation'));
  const split: DatasetSplit = {
    category: index.category,
    dir: index.dir,
    options: opts,
    // Dataset order, not draw order, so the lists read naturally and diff cleanly.
    train: pool.filter((s) => !valIds.has(s.id)),
    validation: pool.filter((s) => valIds.has(s.id)),
    test,
    movedToTest: index.train.filter((s) => moved.has(s.id)).map((s) => s.id),
    testNormalShare: shareOfNormals(test),
    warnings,
  };
  assertDisjoint(split);
  return split;
}

/** Throws if any test image is also in train or validation, or train and validation overlap. */
export function assertDisjoint(split: Pick<DatasetSplit, 'train' | 'validation' | 'test'>): void {
  const test = new Set(split.test.map((s) => s.path));
  const train = new Set(split.train.map((s) => s.path));
  for (const s of [...split.train, ...split.validation]) {
    if (test.has(s.path)) throw new Error(`split leak: test image '${s.path}' is also used for training/validation`);
  }
  for (const s of split.validation) {
    if (train.has(s.path)) throw new Error(`split leak: validation image '${s.path}' is also in train`);
  }
}

/** JSON form for a run folder's config.json: ids (`<split>/<defect>/<stem>`) relative to `dir`. */
export interface SplitJSON {
  format: 'adbench-split/1';
  category: string;
  dir: string;
  seed: string;
  valFraction: number;
  rebalance: boolean;
  targetTestNormalShare: number;
  testNormalShare: number;
  counts: {
    train: number; validation: number; test: number;
    testNormal: number; testAnomalous: number; movedToTest: number;
  };
  train: string[];
  validation: string[];
  test: string[];
  movedToTest: string[];
  warnings: string[];
}

export function splitToJSON(split: DatasetSplit): SplitJSON {
  const testNormal = split.test.filter((s) => s.label === 0).length;
  return {
    format: 'adbench-split/1',
    category: split.category,
    dir: split.dir,
    seed: split.options.seed,
    valFraction: split.options.valFraction,
    rebalance: split.options.rebalance,
    targetTestNormalShare: split.options.testNormalShare,
    testNormalShare: split.testNormalShare,
    counts: {
      train: split.train.length,
      validation: split.validation.length,
      test: split.test.length,
      testNormal,
      testAnomalous: split.test.length - testNormal,
      movedToTest: split.movedToTest.length,
    },
    train: split.train.map((s) => s.id),
    validation: split.validation.map((s) => s.id),
    test: split.test.map((s) => s.id),
    movedToTest: split.movedToTest.slice(),
    warnings: split.warnings.slice(),
  };
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

/**
 * Rebuild a split saved with `splitToJSON` against a (re-)indexed category, e.g. to evaluate a
 * trained run on exactly its test images. Throws DatasetError if an id is no longer in the data.
 */
export function splitFromJSON(json: unknown, index: CategoryIndex): DatasetSplit {
  const j = json as Partial<SplitJSON> | null;
  if (
    !j || j.format !== 'adbench-split/1' || !isStringArray(j.train) || !isStringArray(j.validation) ||
    !isStringArray(j.test) || !isStringArray(j.movedToTest) || typeof j.seed !== 'string'
  ) {
    throw new DatasetError('not a saved split (expected format adbench-split/1 with train/validation/test id lists)');
  }
  if (j.category !== index.category) {
    throw new DatasetError(`saved split is for category '${j.category}', not '${index.category}'`);
  }
  const byId = new Map([...index.train, ...index.test].map((s) => [s.id, s] as const));
  const resolveIds = (ids: string[]): Sample[] => ids.map((id) => {
    const s = byId.get(id);
    if (!s) throw new DatasetError(`saved split lists '${id}', which is not in '${index.dir}' any more`);
    return s;
  });
  const split: DatasetSplit = {
    category: index.category,
    dir: index.dir,
    options: {
      seed: j.seed,
      valFraction: j.valFraction ?? DEFAULT_VAL_FRACTION,
      rebalance: j.rebalance ?? false,
      testNormalShare: j.targetTestNormalShare ?? DEFAULT_TEST_NORMAL_SHARE,
    },
    train: resolveIds(j.train),
    validation: resolveIds(j.validation),
    test: resolveIds(j.test),
    movedToTest: j.movedToTest.slice(),
    testNormalShare: 0,
    warnings: isStringArray(j.warnings) ? j.warnings.slice() : [],
  };
  split.testNormalShare = shareOfNormals(split.test);
  assertDisjoint(split);
  return split;
}
