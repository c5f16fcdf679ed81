export * from './generate.js';
export { SYNTHETIC_DEFECTS, type SyntheticDefect } from './defects.js';
