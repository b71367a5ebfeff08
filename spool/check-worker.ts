/** Worker thread of BodyChecks (parallel-check.ts): checks the segments of task files it is sent. */
import { parentPort } from 'node:worker_threads';
import { checkSegmentMessage, type SegmentMessage } from './parallel-check.js';

const scratch = Buffer.allocUnsafe(64 * 1024);
const port = parentPort!;
// Segments come in the order they filled; null says there are no more.
port.on('message', (message: SegmentMessage | null) => {
  if (message === null) port.close();
  else checkSegmentMessage(message, scratch);
});
