export * from './module.js';
export * from './scope.js';
export * from './init.js';
export * from './layers/conv.js';
export * from './layers/norm.js';
export * from './layers/linear.js';
export * from './layers/sequential.js';
