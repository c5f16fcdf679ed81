export * from './optimizers/index.js';
export * from './schedules.js';
export * from './clipGradients.js';
export * from './atomicWrite.js';
export * from './checkpoint.js';
export * from './progress.js';
export * from './trainer.js';
