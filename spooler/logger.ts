/**
 * Structured logs: JSON lines for machines, readable lines for people. Every
 * record is a message plus flat fields; the format only changes how it prints.
 */
import { printable } from '../spool/printable.js';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds these fields to every record. */
  child(fields: LogFields): Logger;
  enabled(level: LogLevel): boolean;
}

export function createLogger(options: { level: LogLevel; format: LogFormat; write?: (line: string) => void }, bound: LogFields = {}): Logger {
  const threshold = LOG_LEVELS.indexOf(options.level);
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (LOG_LEVELS.indexOf(level) < threshold) return;
    const record = { ...bound, ...fields };
    write(options.format === 'json' ? jsonLine(level, msg, record) : prettyLine(level, msg, record));
  };
  return {
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
    child: (fields) => createLogger(options, { ...bound, ...fields }),
    enabled: (level) => LOG_LEVELS.indexOf(level) >= threshold,
  };
}

function jsonLine(level: LogLevel, msg: string, fields: LogFields): string {
  return JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }, errorReplacer) + '\n';
}

/**
 * One record for people. Messages and fields may hold file names from anyone who
 * can write into the spool: every part goes through printable(), so a name
 * cannot move the cursor, retitle the terminal or forge a log line.
 */
function prettyLine(level: LogLevel, msg: string, fields: LogFields): string {
  let line = `${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${printable(msg)}`;
  let stack: string | undefined;
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    if (value instanceof Error || (key === 'stack' && typeof value === 'string')) {
      stack = value instanceof Error ? value.stack : value;
      if (value instanceof Error) line += ` ${printable(key)}=${printable(JSON.stringify(value.message))}`;
      continue;
    }
    const text =
      typeof value === 'string' ? (/^[^\s"=]+$/.test(value) ? value : JSON.stringify(value)) : JSON.stringify(value, errorReplacer);
    line += ` ${printable(key)}=${printable(text ?? String(text))}`;
  }
  if (stack) line += '\n  ' + stack.split('\n').map(printable).join('\n  ');
  return line + '\n';
}

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message, stack: value.stack };
  return value;
}
