/**
 * A file-ops thread (--io-threads): runs claim/read and unlink batches for the
 * daemon's main thread (file-ops-lane.ts), so that the system calls of one
 * batch overlap with the JavaScript of the previous one. Holds no state: every
 * request carries its paths, every reply its outcomes.
 */
import { parentPort } from 'node:worker_threads';
import { claimAndRead, unlinkAll, type FileOpsReply, type FileOpsRequest } from './file-ops.js';

const port = parentPort;
if (port === null) throw new Error('file-ops-thread.js runs as a worker thread of spoolerd');

port.on('message', (msg: FileOpsRequest) => {
  let reply: FileOpsReply;
  try {
    reply = msg.op === 'claim' ? { id: msg.id, claim: claimAndRead(msg.req) } : { id: msg.id, unlink: unlinkAll(msg.dir, msg.names) };
  } catch (err) {
    // claimAndRead and unlinkAll report per file; reaching here is a bug. The lane redoes the batch itself.
    reply = { id: msg.id, error: (err as Error).stack ?? String(err) };
  }
  port.postMessage(reply, 'claim' in reply ? [reply.claim.bytes] : []);
});
