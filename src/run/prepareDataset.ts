import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DatasetError } from '../errors.js';
import {
  ensureSyntheticCategory,
  indexCategory,
  isMvtecCategory,
  isSyntheticCategory,
  listCategoryFolders,
  makeSplit,
  resolveMvtecRoot,
  syntheticDataNotice,
  syntheticStandIn,
  indexLayoutCategory,
  type CategoryIndex,
  type DatasetLayout,
  type DatasetSplit,
} from '../data/index.js';
import { ConfigError } from '../errors.js';

export interface DatasetRequest {
  category: string;
  data?: string;
  seed: number;
  valFraction?: number;
  rebalance?: boolean;
  testNormalShare?: number;
  /** Force the synthetic dataset. */
  synthetic?: boolean;
  /** Where generated synthetic categories are cached. */
  syntheticDir?: string;
  /** Layout of the data root (default MVTec AD); the others need an explicit root (--data). */
  dataset?: DatasetLayout;
  /** VisA split CSV (default <root>/split_csv/1cls.csv). */
  splitCsv?: string;
}

export interface PreparedDataset {
  index: CategoryIndex;
  split: DatasetSplit;
  dataSource: 'real' | 'synthetic';
  /** The loud notice printed when synthetic data stands in for the requested category. */
  notice: string | null;
  requestedCategory: string;
}

/**
 * Finds the category: real data under the root when present; otherwise, only when the user named
 * no root (neither --data nor $MVTEC_ROOT) and the category is an MVTec one, the built-in
 * synthetic stand-in with a loud notice. An explicit root that lacks the category is an error
 * listing what it does contain.
 */
export async function prepareDataset(req: DatasetRequest): Promise<PreparedDataset> {
  if (req.dataset && req.dataset !== 'mvtec_ad') return prepareOtherLayout(req, req.dataset);
  const { root, source } = resolveMvtecRoot(req.data);
  const synthDir = resolve(req.syntheticDir ?? join('data', 'synthetic'));
  let useSynthetic = req.synthetic === true || isSyntheticCategory(req.category);
  if (!useSynthetic && !existsSync(join(root, req.category))) {
    if (source === 'default' && isMvtecCategory(req.category)) {
      useSynthetic = true;
    } else if (source === 'default') {
      const found = existsSync(root) ? listCategoryFolders(root) : [];
      throw new DatasetError(
        `category '${req.category}' is neither an MVTec AD category nor a folder under the default data root '${root}'` +
          `${found.length ? ` (found: ${found.join(', ')})` : ''}; pass --data DIR pointing at a folder that holds '${req.category}/train/good'`,
      );
    }
    // An explicit root: indexCategory below raises the precise error (missing root or category).
  }
  let index: CategoryIndex;
  let notice: string | null = null;
  if (useSynthetic) {
    const standIn = syntheticStandIn(req.category);
    const gen = await ensureSyntheticCategory(standIn, synthDir, { seed: 0 });
    index = indexCategory(standIn, { root: gen.root });
    if (!isSyntheticCategory(req.category)) notice = syntheticDataNotice(req.category, standIn, gen.root);
  } else {
    index = indexCategory(req.category, { root });
  }
  const split = makeSplit(index, {
    seed: req.seed,
    valFraction: req.valFraction,
    rebalance: req.rebalance,
    testNormalShare: req.testNormalShare,
  });
  return { index, split, dataSource: useSynthetic ? 'synthetic' : 'real', notice, requestedCategory: req.category };
}

/** VisA, MVTec AD 2, plain folders: real data only, from the root the user named. */
function prepareOtherLayout(req: DatasetRequest, layout: DatasetLayout): PreparedDataset {
  if (req.synthetic) throw new ConfigError(`--synthetic uses the built-in MVTec-layout data; it cannot be combined with --dataset ${layout}`);
  const root = req.data;
  if (!root) throw new ConfigError(`--dataset ${layout} needs --data DIR naming the dataset root`);
  const index = indexLayoutCategory(layout, req.category, root, { splitCsv: req.splitCsv, seed: req.seed });
  const split = makeSplit(index, { seed: req.seed, valFraction: req.valFraction, rebalance: req.rebalance, testNormalShare: req.testNormalShare });
  return { index, split, dataSource: 'real', notice: null, requestedCategory: req.category };
}
