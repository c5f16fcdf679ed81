import { ConfigError } from '../../errors.js';
import { indexCategory, type CategoryIndex } from '../mvtec.js';
import { indexFolderCategory } from './folder.js';
import { indexMvtecAd2Category } from './mvtecAd2.js';
import { indexVisaCategory } from './visa.js';

export { indexFolderCategory, FOLDER_TEST_NORMAL_SHARE } from './folder.js';
export { indexMvtecAd2Category, MVTEC_AD2_CATEGORIES } from './mvtecAd2.js';
export { indexVisaCategory, VISA_CATEGORIES, VISA_SPLIT_CSV } from './visa.js';

/** Dataset layouts train.ts reads (`--dataset`); every one yields the same CategoryIndex. */
export const DATASET_LAYOUTS = ['mvtec_ad', 'visa', 'mvtec_ad2', 'folder'] as const;
export type DatasetLayout = (typeof DATASET_LAYOUTS)[number];

export function parseDatasetLayout(value: string): DatasetLayout {
  if ((DATASET_LAYOUTS as readonly string[]).includes(value)) return value as DatasetLayout;
  throw new ConfigError(`--dataset ${value}: unknown layout; one of ${DATASET_LAYOUTS.join(', ')}`);
}

export interface LayoutOptions {
  /** VisA: the split CSV (default <root>/split_csv/1cls.csv). */
  splitCsv?: string;
  /** Folder layout: seed of the normal train/test division. */
  seed?: number | string;
}

export function indexLayoutCategory(layout: DatasetLayout, category: string, root: string, o: LayoutOptions = {}): CategoryIndex {
  switch (layout) {
    case 'mvtec_ad':
      return indexCategory(category, { root });
    case 'visa':
      return indexVisaCategory(category, root, o.splitCsv);
    case 'mvtec_ad2':
      return indexMvtecAd2Category(category, root);
    case 'folder':
      return indexFolderCategory(category, root, { seed: o.seed });
  }
}
