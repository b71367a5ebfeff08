/**
 * The daemon's options are declared once (spooler/options.ts); the command
 * line, the environment, the config file and the workers' options are made
 * from that table. These check the table itself; cli-config.test.ts and
 * daemon-startup.test.ts check what spoolerd makes of it.
 */
import { availableParallelism } from 'node:os';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { DAEMON_OPTIONS, DEFAULTS, workerOptions, type DaemonOptions, type OptionDeclaration, type OptionValues, type WorkerOptions } from '../spooler/options.js';
import type { HttpAddress } from '../spooler/http-address.js';
import type { LogFormat, LogLevel } from '../spooler/logger.js';
import { InvalidOptionError } from '../spool/errors.js';

const declarations = Object.entries(DAEMON_OPTIONS) as [string, OptionDeclaration<unknown>][];
const longName = (d: OptionDeclaration<unknown>) => /--([a-z-]+)/.exec(d.flags)![1]!;

describe('the option table', () => {
  it('names each option by its long flag, camel-cased (commander’s attribute name), with an environment variable of its own', () => {
    for (const [name, d] of declarations) {
      expect(longName(d).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())).toBe(name);
      expect(d.env).toMatch(/^SPOOL(ERD)?_[A-Z_]+$/);
    }
    expect(new Set(declarations.map(([, d]) => d.env)).size).toBe(declarations.length);
    expect(new Set(declarations.map(([, d]) => longName(d))).size).toBe(declarations.length);
  });

  it('holds the defaults the daemon has always had', () => {
    expect(DEFAULTS).toEqual({
      unknownAfter: 86_400_000,
      keepDead: 0,
      keepArchive: 0,
      concurrency: 8,
      pollInterval: 250,
      scanInterval: 5000,
      staleAfter: 30_000,
      archive: false,
      keepResults: 0,
      grace: 30_000,
      settle: 5000,
      maxBytes: 16 * 1024 * 1024,
      processes: availableParallelism(),
      ioThreads: 1,
      maxTasks: 0,
      maxMemory: 0,
      taskTimeout: 0,
      killGrace: 3000,
      logLevel: 'info',
      create: false,
    });
  });

  it('parses and refuses values with a message for the user', () => {
    const parse = <T>(d: OptionDeclaration<T>, text: string, previous?: T) => d.parse!(text, previous);
    expect(parse(DAEMON_OPTIONS.scanInterval, '1m30s')).toBe(90_000);
    expect(parse(DAEMON_OPTIONS.taskTimeout, 'none')).toBe(0);
    expect(parse(DAEMON_OPTIONS.keepDead, '7d')).toBe(7 * 86_400_000);
    expect(parse(DAEMON_OPTIONS.unknownAfter, 'none')).toBe(0);
    expect(parse(DAEMON_OPTIONS.tasks, 'b,c', ['a'])).toEqual(['a', 'b', 'c']);
    expect(parse(DAEMON_OPTIONS.dir, 'b,c', ['a'])).toEqual(['a', 'b', 'c']);
    expect(parse(DAEMON_OPTIONS.http, '9090')).toEqual({ host: '127.0.0.1', port: 9090 });
    expect(() => parse(DAEMON_OPTIONS.concurrency, '0')).toThrow(new InvalidOptionError('must be a whole number ≥ 1'));
    expect(() => parse(DAEMON_OPTIONS.processes, '')).toThrow(new InvalidOptionError('must be a whole number ≥ 0'));
    expect(() => parse(DAEMON_OPTIONS.grace, 'soon')).toThrow(InvalidOptionError);
    expect(() => parse(DAEMON_OPTIONS.http, 'host:port')).toThrow(InvalidOptionError);
  });

  it('sends a worker process exactly the options marked for it, with the values the daemon runs with', () => {
    const daemon = { ...DEFAULTS, dirs: ['/s'], modules: ['/m.js'], poll: undefined, logFormat: 'json', log: undefined } as unknown as DaemonOptions;
    const marked = declarations.filter(([, d]) => d.worker === true).map(([name]) => name);
    const sent = workerOptions(daemon);
    expect(Object.keys(sent).sort()).toEqual(marked.sort());
    expect(sent).toEqual({ import: ['/m.js'], archive: false, keepResults: 0, settle: DEFAULTS.settle, maxBytes: DEFAULTS.maxBytes, taskTimeout: 0, logLevel: 'info', logFormat: 'json' });
  });

  it('gives each option the type of its value (undefined where it has no default)', () => {
    expectTypeOf<OptionValues['concurrency']>().toEqualTypeOf<number>();
    expectTypeOf<OptionValues['archive']>().toEqualTypeOf<boolean>();
    expectTypeOf<OptionValues['poll']>().toEqualTypeOf<boolean | undefined>();
    expectTypeOf<OptionValues['dir']>().toEqualTypeOf<string[] | undefined>();
    expectTypeOf<OptionValues['logLevel']>().toEqualTypeOf<LogLevel>();
    expectTypeOf<OptionValues['logFormat']>().toEqualTypeOf<LogFormat | undefined>();
    expectTypeOf<OptionValues['http']>().toEqualTypeOf<HttpAddress | undefined>();
    expectTypeOf<WorkerOptions>().toEqualTypeOf<{ import: string[]; archive: boolean; keepResults: number; settle: number; maxBytes: number; taskTimeout: number; logLevel: LogLevel; logFormat: LogFormat }>();
    expectTypeOf<DaemonOptions['group']>().toEqualTypeOf<number | undefined>();
  });
});
