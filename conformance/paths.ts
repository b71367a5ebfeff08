/** Where the vectors are, whether this runs from the sources or from dist/. */
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
/** The repository (or package) root: above conformance/, or above dist/conformance/. */
export const ROOT = basename(dirname(here)) === 'dist' ? join(here, '..', '..') : join(here, '..');
export const VECTORS_DIR = join(ROOT, 'conformance', 'vectors');
