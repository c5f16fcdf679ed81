export * from './module.js';
export * from './scope.js';
export * from './init.js';
export * from './layers/conv.js';
export * from './layers/norm.js';
export * from './layers/linear.js';
export * from './layers/sequential.js';
export * from './gradControl.js';
export * from './layers/activations.js';
export * from './layers/dropout.js';
export * from './layers/batchnorm1d.js';
export * from './layers/attention.js';
/** Float64 linear algebra (Cholesky, solves, inverses, log-determinants, Ledoit–Wolf, Mahalanobis). */
export * as linalg from './linalg/index.js';
export * from './losses/index.js';
export * from './nearestNeighbour.js';
