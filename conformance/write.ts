/**
 * `npm run conformance:write`: rewrites conformance/vectors/ from the
 * TypeScript implementation. Run it after a deliberate change to the format,
 * and review the diff: every changed line is a case whose outcome changed.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateVectors, VECTOR_FILES } from './generate.js';
import { VECTORS_DIR } from './paths.js';

const vectors = await generateVectors();
for (const file of VECTOR_FILES) {
  writeFileSync(join(VECTORS_DIR, file), vectors[file]);
  console.log(`wrote ${join(VECTORS_DIR, file)}`);
}
