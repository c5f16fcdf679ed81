export * from './ssim.js';
export * from './msgms.js';
export * from './focalLoss.js';
