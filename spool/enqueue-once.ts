/**
 * STAND-IN for the chains helper's spool/enqueue-once.ts (issue 18 contract:
 * enqueueOnce(layout, { markerDir, marker, fileName, bytes, fsync }): 'enqueued' | 'exists').
 * Replaced by theirs when branch chains is merged: stage in the marker folder,
 * link the marker (EEXIST: enqueued before), rename the stage into incoming/.
 */
import { closeSync, constants, fsyncSync, linkSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { SpoolLayout } from './layout.js';

export interface EnqueueOnceSpec {
  markerDir: string;
  marker: string;
  fileName: string;
  bytes: Uint8Array;
  fsync?: boolean;
}

export function enqueueOnce(layout: SpoolLayout, spec: EnqueueOnceSpec): 'enqueued' | 'exists' {
  mkdirSync(spec.markerDir, { recursive: true, mode: 0o2750 });
  const stage = join(spec.markerDir, `.stage-${spec.fileName}`);
  const fd = openSync(stage, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW, 0o640);
  try {
    writeSync(fd, spec.bytes);
    if (spec.fsync === true) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(stage, join(spec.markerDir, spec.marker));
  } catch (err) {
    unlinkSync(stage);
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return 'exists';
    throw err;
  }
  renameSync(stage, join(layout.incoming, spec.fileName));
  return 'enqueued';
}
