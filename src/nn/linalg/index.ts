export * from './matrix.js';
export * from './decompositions.js';
export * from './covariance.js';
export * from './mahalanobis.js';
