/** Worker thread of checkFilesInParallel (parallel-check.ts): checks blocks of task files. */
import { workerData } from 'node:worker_threads';
import { workerMain, type CheckJob } from './parallel-check.js';

workerMain(workerData as CheckJob);
