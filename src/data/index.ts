export * from './categories.js';
export * from './imageIO.js';
export * from './mvtec.js';
export * from './splits.js';
export * from './synthetic/index.js';
export { defaultCacheDir } from './preprocessCache.js';
export * from './layouts/index.js';
