/**
 * `spoolerd --config <file>`: a JSON object whose keys are the long option
 * names as written on the command line (`"scan-interval": "10s"`). It is
 * read through the options' own definitions (parser, choices), so every
 * option of the command can be set there, options added later included.
 * Precedence: flags, then environment variables, then the file, then the
 * defaults; commander has already applied the first two (and the defaults)
 * when the file is read, so a key is applied only where the value is still a
 * default.
 */
import { readFileSync } from 'node:fs';
import { type Command, InvalidArgumentError, type Option } from 'commander';

/** A config file that cannot be used: the message says which file, which key and what to write instead. */
export class ConfigFileError extends Error {
  override name = 'ConfigFileError';
}

export interface ConfigApplied {
  /** Keys whose values came from the file. */
  applied: string[];
  /** Keys in the file that a flag or environment variable overrode. */
  overridden: string[];
}

/** Applies the file's values of `options` (by key: the long name without "--") where no flag or environment variable set them. */
export function applyConfigFile(command: Command, path: string, options: ReadonlyMap<string, Option>): ConfigApplied {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigFileError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (err) {
    throw new ConfigFileError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new ConfigFileError(`config file ${path} must hold a JSON object of option names and values, e.g. {"dir": "/var/spool/app", "concurrency": 4}`);
  }
  const valid = () => [...options.keys()].join(', ');
  // Every key is checked before any is applied: a file with a typo changes nothing.
  const entries = Object.entries(config as Record<string, unknown>).map(([key, value]) => {
    const option = options.get(key);
    if (option === undefined) {
      const kebab = key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
      const hint = kebab !== key && options.has(kebab) ? ` (keys are written as the options are: "${kebab}")` : '';
      throw new ConfigFileError(`config file ${path}: unknown key "${key}"${hint}; valid keys: ${valid()}`);
    }
    return { key, option, value: parseValue(path, key, option, value) };
  });
  const result: ConfigApplied = { applied: [], overridden: [] };
  for (const { key, option, value } of entries) {
    const source = command.getOptionValueSource(option.attributeName());
    if (source === 'cli' || source === 'env') {
      result.overridden.push(key);
      continue;
    }
    command.setOptionValueWithSource(option.attributeName(), value, 'config');
    result.applied.push(key);
  }
  return result;
}

/** The value as the option's parser makes it from the command line: an array is the option repeated. */
function parseValue(path: string, key: string, option: Option, value: unknown): unknown {
  const where = `config file ${path}: "${key}"`;
  const takesValue = option.required || option.optional;
  if (!takesValue) {
    if (typeof value !== 'boolean') throw new ConfigFileError(`${where} is a switch: write true or false`);
    return value;
  }
  const items = Array.isArray(value) ? value : [value];
  let parsed: unknown = undefined;
  for (const item of items) {
    if (typeof item !== 'string' && typeof item !== 'number') {
      throw new ConfigFileError(`${where} must be a string or a number${Array.isArray(value) ? ', or an array of them' : ''} (got ${JSON.stringify(item)})`);
    }
    try {
      parsed = option.parseArg ? option.parseArg(String(item), parsed) : String(item);
    } catch (err) {
      if (err instanceof InvalidArgumentError || err instanceof Error) throw new ConfigFileError(`${where}: ${err.message}`);
      throw err;
    }
  }
  return parsed;
}
