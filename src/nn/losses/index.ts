export * from './ssim.js';
export * from './msgms.js';
export * from './focalLoss.js';
export * from './bce.js';
export * from './crossEntropy.js';
export * from './l2Norm.js';
