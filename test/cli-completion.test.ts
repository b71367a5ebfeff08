/**
 * `spool completion bash|zsh` and `spoolerd completion bash|zsh` (README,
 * "Shell completion"): scripts written from the commands' definitions. The
 * bash ones are run in a real bash, as bash runs them on Tab; the zsh ones are
 * checked by zsh's parser and by registering them with compinit (zsh cannot
 * be made to complete without a terminal here).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SPOOL_BIN, tempDir } from './helpers/cli.js';
import { SPOOLERD_BIN } from './helpers/daemon.js';

let dir: string;
let cleanup: () => void;
beforeEach(() => {
  ({ dir, cleanup } = tempDir('spoolerd-completion-'));
});
afterEach(() => cleanup());

const BIN = { spool: SPOOL_BIN, spoolerd: SPOOLERD_BIN };
type Program = keyof typeof BIN;

function script(program: Program, shell: string) {
  return spawnSync(process.execPath, [BIN[program], 'completion', shell], { encoding: 'utf8' });
}

/** What bash offers for the command line `words`, the last word being completed. */
function complete(program: Program, words: string[]): string[] {
  const path = join(dir, `${program}.bash`);
  const s = script(program, 'bash');
  expect(s.status, s.stderr).toBe(0);
  writeFileSync(path, s.stdout);
  const quoted = [program, ...words].map((w) => `'${w}'`).join(' ');
  const r = spawnSync(
    'bash',
    ['--norc', '-c', `source '${path}'; COMP_WORDS=(${quoted}); COMP_CWORD=${words.length}; _${program}_complete; printf '%s\\n' "\${COMPREPLY[@]}"`],
    { encoding: 'utf8', cwd: dir },
  );
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return r.stdout.split('\n').filter(Boolean);
}

function helpOptions(program: Program, command?: string): string[] {
  const r = spawnSync(process.execPath, [BIN[program], ...(command ? [command] : []), '--help'], { encoding: 'utf8' });
  // The option column only: lines that start with an option, before its description.
  return [...new Set(r.stdout.split('\n').flatMap((l) => [...(/^ {2}(-[^ ].*?)(?: {2,}|$)/.exec(l)?.[1]?.matchAll(/--?[A-Za-z][\w-]*/g) ?? [])].map((m) => m[0])))].sort();
}

describe('bash completion', () => {
  it('completes spool commands, their options and option values', () => {
    expect(complete('spool', ['l'])).toEqual(['ls']);
    expect(complete('spool', [''])).toEqual(['ls', 'show', 'add', 'rm', 'cancel', 'retry', 'wait', 'purge', 'stats', 'schedules', 'pause', 'resume', 'completion', 'top', 'dashboard']);
    expect(complete('spool', ['ls', '--st'])).toEqual(['--state']);
    expect(complete('spool', ['ls', '--state', 'd'])).toEqual(['due', 'dead']);
    expect(complete('spool', ['add', '--encoding', ''])).toEqual(['msgpack', 'json']);
    expect(complete('spool', ['completion', ''])).toEqual(['bash', 'zsh']);
    // An option value that is not a path offers nothing, not the subcommand's options.
    expect(complete('spool', ['ls', '--limit', ''])).toEqual([]);
  });

  it('completes file names after --dir and spoolerd options with their choices', () => {
    mkdirSync(join(dir, 'spool-one'));
    mkdirSync(join(dir, 'spool-two'));
    expect(complete('spool', ['ls', '--dir', 'spool-'])).toEqual(['spool-one', 'spool-two']);
    expect(complete('spoolerd', ['--dir', 'spool-t'])).toEqual(['spool-two']);
    expect(complete('spoolerd', ['--sc'])).toEqual(['--schedule', '--scan-interval']);
    expect(complete('spoolerd', ['--log-level', ''])).toEqual(['debug', 'info', 'warn', 'error']);
    expect(complete('spoolerd', ['--dir', 'x', '--con'])).toEqual(['--concurrency', '--config']);
  });

  it('offers every option that --help lists, for spoolerd and for each spool command', () => {
    expect(complete('spoolerd', ['-']).sort()).toEqual(helpOptions('spoolerd'));
    for (const command of ['ls', 'show', 'add', 'rm', 'retry', 'stats']) {
      expect(complete('spool', [command, '-']).sort(), command).toEqual(helpOptions('spool', command));
    }
  });
});

describe('zsh completion', () => {
  const zsh = spawnSync('zsh', ['--version']).status === 0;
  if (!zsh) console.log('zsh completion: skipped, zsh is not installed (apt-get install -y zsh)');
  it.skipIf(!zsh)('parses, and registers with compinit for its command', () => {
    for (const program of ['spool', 'spoolerd'] as const) {
      const path = join(dir, `_${program}`);
      const s = script(program, 'zsh');
      expect(s.status).toBe(0);
      writeFileSync(path, s.stdout);
      expect(spawnSync('zsh', ['-n', path], { encoding: 'utf8' }).stderr).toBe('');
      const r = spawnSync('zsh', ['-f', '-c', `autoload -U compinit && compinit -u -d '${dir}/zcompdump' && source '${path}' && print -r -- $_comps[${program}]`], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe(`_${program}_complete`);
    }
  });
});

describe('a shell that is not supported', () => {
  it('is a usage error naming the ones that are', () => {
    const a = script('spool', 'fish');
    expect(a.status).toBe(2);
    expect(a.stderr).toContain('Allowed choices are bash, zsh');
    const b = script('spoolerd', 'fish');
    expect(b.status).toBe(2);
    expect(b.stderr).toContain('usage: spoolerd completion bash|zsh');
  });
});
