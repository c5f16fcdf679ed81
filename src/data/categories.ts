import { ConfigError } from '../errors.js';

/**
 * The 15 MVTec AD categories and the grouping Cools et al. (2025) report results by
 * (Tables 2-4: fixed objects, rotating objects, textures). The paper names the groups but not
 * their members; the membership below is the usual one (objects whose pose varies freely in the
 * image are "rotating") and is what the group averages in our reports use.
 */
export type CategoryGroup = 'texture' | 'rotating_object' | 'fixed_object';

export const TEXTURE_CATEGORIES = ['carpet', 'grid', 'leather', 'tile', 'wood'] as const;
export const ROTATING_OBJECT_CATEGORIES = ['hazelnut', 'metal_nut', 'screw'] as const;
export const FIXED_OBJECT_CATEGORIES = [
  'bottle', 'cable', 'capsule', 'pill', 'toothbrush', 'transistor', 'zipper',
] as const;

export type MvtecCategory =
  | (typeof TEXTURE_CATEGORIES)[number]
  | (typeof ROTATING_OBJECT_CATEGORIES)[number]
  | (typeof FIXED_OBJECT_CATEGORIES)[number];

/** All 15, alphabetical (the order MVTec's own folder listing has). */
export const MVTEC_CATEGORIES: readonly MvtecCategory[] = [
  ...TEXTURE_CATEGORIES, ...ROTATING_OBJECT_CATEGORIES, ...FIXED_OBJECT_CATEGORIES,
].sort();

/** Stored as single-channel images; the loader replicates them to RGB like the reference code. */
export const GRAYSCALE_CATEGORIES: readonly MvtecCategory[] = ['grid', 'screw', 'zipper'];

/** Column order of the paper's per-class tables (A1-A4), for reports that mirror them. */
export const PAPER_CATEGORY_ORDER: readonly MvtecCategory[] = [
  'bottle', 'cable', 'hazelnut', 'pill', 'screw', 'capsule', 'carpet', 'grid', 'leather',
  'metal_nut', 'tile', 'toothbrush', 'transistor', 'wood', 'zipper',
];

export interface CategoryInfo {
  name: string;
  /** 'custom' for any folder in the MVTec layout that is not one of the 15. */
  group: CategoryGroup | 'custom';
  /** Known to be stored as grayscale; false for custom categories (the loader copes either way). */
  grayscale: boolean;
  isMvtec: boolean;
}

const GROUP_OF = new Map<string, CategoryGroup>([
  ...TEXTURE_CATEGORIES.map((c) => [c, 'texture'] as const),
  ...ROTATING_OBJECT_CATEGORIES.map((c) => [c, 'rotating_object'] as const),
  ...FIXED_OBJECT_CATEGORIES.map((c) => [c, 'fixed_object'] as const),
]);

export function isMvtecCategory(name: string): name is MvtecCategory {
  return GROUP_OF.has(name);
}

// A category is a folder name under the dataset root; anything that could walk out of the root or
// hide a path component is refused so that `<root>/<category>` is always a direct child.
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.+-]*$/;

/** Throws ConfigError for names that cannot be a category folder (empty, '..', slashes...). */
export function validateCategoryName(name: string): void {
  if (!SAFE_NAME.test(name) || name.includes('..')) {
    throw new ConfigError(
      `invalid category name '${name}': use a plain folder name (letters, digits, _ . + -), ` +
        `e.g. one of ${MVTEC_CATEGORIES.join(', ')}`,
    );
  }
}

export function categoryInfo(name: string): CategoryInfo {
  validateCategoryName(name);
  const group = GROUP_OF.get(name);
  return {
    name,
    group: group ?? 'custom',
    grayscale: (GRAYSCALE_CATEGORIES as readonly string[]).includes(name),
    isMvtec: group !== undefined,
  };
}

/** Categories of one paper group, in alphabetical order. */
export function categoriesInGroup(group: CategoryGroup): MvtecCategory[] {
  return MVTEC_CATEGORIES.filter((c) => GROUP_OF.get(c) === group);
}
