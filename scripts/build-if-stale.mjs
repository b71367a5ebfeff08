#!/usr/bin/env node
/**
 * Builds (npm run build) only when a TypeScript source is newer than what it
 * compiles to in dist/, or has nothing there yet, or tsconfig.json or
 * package.json changed since: `npm run demo` starts at once on a built clone.
 * tsc rewrites every output on each build, so an output's mtime is the time
 * of the last build that covered its source.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const SOURCE_DIRS = JSON.parse((await import('node:fs')).readFileSync(join(root, 'tsconfig.json'), 'utf8')).include;

const mtime = (path) => {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
};

/** The first source whose output is missing or older, or undefined when dist/ is up to date. */
function staleSource() {
  const built = mtime(join(root, 'dist/cli/spoolerd.js'));
  if (built === undefined) return 'dist/ (not built yet)';
  for (const config of ['tsconfig.json', 'package.json']) if (mtime(join(root, config)) > built) return config;
  for (const dir of SOURCE_DIRS) {
    for (const entry of readdirSync(join(root, dir), { recursive: true, withFileTypes: true })) {
      if (!entry.isFile() || !entry.name.endsWith('.ts') || entry.name.endsWith('.d.ts')) continue;
      const source = join(entry.parentPath ?? entry.path, entry.name);
      const output = join(root, 'dist', relative(root, source)).replace(/\.ts$/, '.js');
      const outTime = mtime(output);
      if (outTime === undefined || mtime(source) > outTime) return relative(root, source);
    }
  }
  return undefined;
}

const stale = staleSource();
if (stale !== undefined) {
  process.stderr.write(`building… (${stale} changed since the last build)\n`);
  const r = spawnSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
