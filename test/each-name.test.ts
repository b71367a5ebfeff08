/**
 * eachName (spool/read-names.ts): a directory's names streamed a batch at a
 * time (the queue's refills list a million names without holding them), the
 * same names readNames gives, each once.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { eachName, readNames } from '../spool/read-names.js';
import { tempDir } from './helpers/cli.js';

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir('spoolerd-each-name-')));
afterEach(() => cleanup());

it('gives every name of a directory larger than one batch once, as readNames does', () => {
  const folder = join(dir, 'incoming');
  mkdirSync(folder);
  for (let i = 0; i < 3000; i++) writeFileSync(join(folder, `task-${i}`), '');
  const streamed = [...eachName(folder)];
  expect(streamed).toHaveLength(3000);
  expect(new Set(streamed).size).toBe(3000);
  expect(streamed.sort()).toEqual(readNames(folder).sort());
});

it('is lazy: a partly read listing can be closed', () => {
  const folder = join(dir, 'incoming');
  mkdirSync(folder);
  for (let i = 0; i < 10; i++) writeFileSync(join(folder, `task-${i}`), '');
  const names = eachName(folder);
  expect(names.next().done).toBe(false);
  expect(names.return(undefined).done).toBe(true);
});
