export * from './schedule.js';
export * from './process.js';
export * from './timestepEmbedding.js';
export * from './unetPlan.js';
export * from './unet.js';
export * from './costs.js';
