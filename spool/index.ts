export * from './errors.js';
export * from './name.js';
export * from './body.js';
export * from './wire.js';
export * from './layout.js';
export * from './safe-read.js';
export * from './task-file.js';
export { discardStagedSync, fsyncDirSync, publishStagedSync, stageTaskSync, withdrawPublishedSync, writeTask, writeTaskSync, type WriteOptions } from './protocol.js';
export * from './listing.js';
