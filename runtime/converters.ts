/**
 * Argument converters and validation: what turns the arguments a producer sent
 * (plain JSON from a shell script, say) into what a task function takes, and its
 * return value into what is kept as its result (firexkit's ConverterRegister).
 *
 *   spooler.task(resize, {
 *     params: ['path', 'width'],                          // names for the positional arguments
 *     validate: { width: { type: 'integer', min: 1, max: 10_000 } },
 *     converters: {
 *       path: (v) => resolve(String(v)),
 *       width: { needs: ['path'], convert: (v, args) => Math.min(Number(v), maxWidthOf(args.path)) },
 *     },
 *     returns: (info) => ({ width: info.width, bytes: info.size }),
 *   });
 *
 * Arguments have names so that converters can refer to them: with `params`,
 * positional argument i is named params[i]; without it, a task with converters
 * or rules takes ONE object argument and they apply to its keys.
 *
 * When a task runs: the rules are checked against what was sent, then the
 * converters run in dependency order (a converter runs after every converter it
 * `needs`; ties keep the order they were declared in), then the function, then
 * `returns` on the value it is processed with. A rule or converter that refuses
 * an argument ends the task as failed for good (a PermanentError: a dead letter
 * at once, no retry spent) with a message naming the argument and the
 * converter. A cycle or an unknown name in `needs` is an error when the task
 * is registered (ConverterRegistrationError), never at run time.
 *
 * A task with none of params, converters, validate and returns is called as it
 * is: compileConversion() gives undefined and the runner calls the function.
 */
import { InvalidOptionError } from '../spool/errors.js';
import { PermanentError, TaskResult, processed } from './results.js';

/** A converter: the argument's value (as sent, or as converted by nothing yet) and every argument by name. */
export type ConvertFunction = (value: unknown, args: Readonly<Record<string, unknown>>) => unknown;

export interface ConverterSpec {
  /** Arguments whose converters must run first: their values in `args` are the converted ones. */
  needs?: readonly string[];
  convert: ConvertFunction;
}

export type Converter = ConvertFunction | ConverterSpec;

/** The JSON types a rule can ask for ('integer': a number with no fraction). */
export const ARGUMENT_TYPES = ['string', 'number', 'integer', 'boolean', 'object', 'array', 'null'] as const;
export type ArgumentType = (typeof ARGUMENT_TYPES)[number];

/** A declarative check of one argument, as sent (before any converter). */
export interface ArgumentRule {
  /** Its JSON type, or one of several. */
  type?: ArgumentType | readonly ArgumentType[];
  /** It must be present (not undefined; null is present). Default false: an absent argument skips the other checks. */
  required?: boolean;
  /** A number at least this; a string or array at least this long. */
  min?: number;
  /** A number at most this; a string or array at most this long. */
  max?: number;
  /** One of these values (compared with ===). */
  enum?: readonly unknown[];
  /** Your own check: true (or undefined) accepts; false or a string (what is wrong) refuses. */
  check?: (value: unknown) => boolean | string | undefined;
}

export interface ConversionOptions {
  /** Names of the positional arguments, in order, for converters and rules to refer to. */
  params?: readonly string[];
  /** Converters by argument name. */
  converters?: Readonly<Record<string, Converter>>;
  /** Rules by argument name, checked before the converters. */
  validate?: Readonly<Record<string, ArgumentRule>>;
  /** Turns the value the task is processed with (undefined when it returned nothing) into what is kept and passed on. */
  returns?: (value: unknown) => unknown;
}

/** A coding error in a task's converters, found when the task is registered. */
export class ConverterRegistrationError extends InvalidOptionError {}

/** Converters that need each other, directly or through others. */
export class ConverterCycleError extends ConverterRegistrationError {
  constructor(
    readonly taskName: string,
    readonly cycle: readonly string[],
  ) {
    super(`the converters of task ${taskName} need each other in a cycle: ${cycle.join(' -> ')}; remove one of these names from a converter's needs`);
  }
}

/** A converter needs one that is not declared. */
export class MissingConverterDependencyError extends ConverterRegistrationError {
  constructor(
    readonly taskName: string,
    readonly converter: string,
    readonly missing: string,
  ) {
    super(
      `converter "${converter}" of task ${taskName} needs "${missing}", but no converter "${missing}" is declared; ` +
        `add converters.${missing}, or remove "${missing}" from its needs (an argument without a converter is in args as it was sent)`,
    );
  }
}

/** An argument was refused by its rule or its converter: the task fails for good (no retry). */
export class ArgumentConversionError extends PermanentError {
  override name = 'ArgumentConversionError';
  constructor(
    readonly taskName: string,
    /** The argument's name. */
    readonly argument: string,
    /** What refused it: `validate.<name>` or `converters.<name>` (with the converter function's name). */
    readonly converter: string,
    problem: string,
    options?: { cause?: unknown },
  ) {
    super(`argument "${argument}" of task ${taskName} was refused by ${converter}: ${problem}`, options);
  }
}

/** The returns converter threw: the task ran, its value cannot be kept; it fails for good (running it again would repeat its work). */
export class ReturnConversionError extends PermanentError {
  override name = 'ReturnConversionError';
  constructor(
    readonly taskName: string,
    readonly converter: string,
    problem: string,
    options?: { cause?: unknown },
  ) {
    super(`the value of task ${taskName} was refused by ${converter}: ${problem}`, options);
  }
}

interface CompiledConverter {
  name: string;
  convert: ConvertFunction;
  /** converters.<name> (the function's own name), for messages. */
  label: string;
}

/** A task's conversion, checked once at registration. */
export interface Conversion {
  readonly taskName: string;
  /** Positional names, or undefined: one object argument. */
  readonly params: readonly string[] | undefined;
  /** In the order they run. */
  readonly converters: readonly CompiledConverter[];
  readonly rules: ReadonlyArray<[name: string, rule: ArgumentRule]>;
  readonly returns: ((value: unknown) => unknown) | undefined;
}

const OPTION_KEYS = ['params', 'converters', 'validate', 'returns'] as const;

/** Whether `options` asks for any conversion (the runner calls such a task through callConverted()). */
export function hasConversion(options: ConversionOptions): boolean {
  return OPTION_KEYS.some((k) => options[k] !== undefined);
}

/**
 * Checks a task's conversion options and orders its converters. Undefined when
 * it has none. Throws ConverterRegistrationError (a cycle, an unknown need) or
 * InvalidOptionError (a malformed option) saying what to fix.
 */
export function compileConversion(taskName: string, options: ConversionOptions): Conversion | undefined {
  if (!hasConversion(options)) return undefined;
  const where = `task ${taskName}`;
  const params = options.params === undefined ? undefined : checkParams(options.params, where);
  const known = (name: string, what: string) => {
    if (params !== undefined && !params.includes(name)) {
      throw new InvalidOptionError(`${what}.${name} of ${where} names no parameter; params are: ${params.join(', ') || '(none)'}`);
    }
  };
  const specs = new Map<string, { needs: readonly string[]; convert: ConvertFunction }>();
  for (const [name, c] of Object.entries(options.converters ?? {})) {
    known(name, 'converters');
    const spec = typeof c === 'function' ? { needs: [], convert: c } : c;
    if (typeof spec !== 'object' || spec === null || typeof spec.convert !== 'function') {
      throw new InvalidOptionError(`converters.${name} of ${where} must be a function, or { convert: function, needs?: [names] }`);
    }
    const needs = spec.needs ?? [];
    if (!Array.isArray(needs) || needs.some((n) => typeof n !== 'string')) throw new InvalidOptionError(`converters.${name}.needs of ${where} must be an array of argument names`);
    specs.set(name, { needs, convert: spec.convert });
  }
  const rules: Array<[string, ArgumentRule]> = [];
  for (const [name, rule] of Object.entries(options.validate ?? {})) {
    known(name, 'validate');
    rules.push([name, checkRule(rule, `validate.${name} of ${where}`)]);
  }
  if (options.returns !== undefined && typeof options.returns !== 'function') throw new InvalidOptionError(`returns of ${where} must be a function of the task's value`);
  const order = visitOrder(taskName, specs);
  return {
    taskName,
    params,
    converters: order.map((name) => {
      const convert = specs.get(name)!.convert;
      return { name, convert, label: `converters.${name}${convert.name && convert.name !== name && convert.name !== 'convert' ? ` (${convert.name})` : ''}` };
    }),
    rules,
    returns: options.returns,
  };
}

function checkParams(params: readonly string[], where: string): readonly string[] {
  if (!Array.isArray(params) || params.some((p) => typeof p !== 'string' || p === '')) throw new InvalidOptionError(`params of ${where} must be an array of argument names (non-empty strings)`);
  const dup = params.find((p, i) => params.indexOf(p) !== i);
  if (dup !== undefined) throw new InvalidOptionError(`params of ${where} names "${dup}" twice`);
  return [...params];
}

function checkRule(rule: ArgumentRule, where: string): ArgumentRule {
  if (typeof rule !== 'object' || rule === null) throw new InvalidOptionError(`${where} must be an object such as { type: 'integer', min: 1 }`);
  const types = rule.type === undefined ? [] : Array.isArray(rule.type) ? rule.type : [rule.type];
  for (const t of types) if (!ARGUMENT_TYPES.includes(t as ArgumentType)) throw new InvalidOptionError(`${where}: type ${JSON.stringify(t)} is none of ${ARGUMENT_TYPES.join(', ')}`);
  for (const k of ['min', 'max'] as const) if (rule[k] !== undefined && !Number.isFinite(rule[k])) throw new InvalidOptionError(`${where}: ${k} must be a finite number`);
  if (rule.enum !== undefined && !Array.isArray(rule.enum)) throw new InvalidOptionError(`${where}: enum must be an array of the allowed values`);
  if (rule.check !== undefined && typeof rule.check !== 'function') throw new InvalidOptionError(`${where}: check must be a function returning true, or what is wrong`);
  return rule;
}

/**
 * The converters in an order where each comes after all it needs (Kahn's
 * algorithm; among those ready, the declaration order). A need that names no
 * converter, or a cycle, is thrown.
 */
export function visitOrder(taskName: string, specs: ReadonlyMap<string, { needs: readonly string[] }>): string[] {
  for (const [name, s] of specs) for (const n of s.needs) if (!specs.has(n)) throw new MissingConverterDependencyError(taskName, name, n);
  const waitingOn = new Map<string, number>();
  for (const [name, s] of specs) waitingOn.set(name, new Set(s.needs).size);
  const order: string[] = [];
  const done = new Set<string>();
  while (order.length < specs.size) {
    let next: string | undefined;
    for (const [name, count] of waitingOn) {
      if (count === 0 && !done.has(name)) {
        next = name;
        break;
      }
    }
    if (next === undefined) throw new ConverterCycleError(taskName, findCycle(specs, done));
    done.add(next);
    order.push(next);
    for (const [name, s] of specs) if (!done.has(name) && s.needs.includes(next)) waitingOn.set(name, waitingOn.get(name)! - 1);
  }
  return order;
}

/** One cycle among the converters not yet ordered, as a path that ends where it starts. */
function findCycle(specs: ReadonlyMap<string, { needs: readonly string[] }>, done: ReadonlySet<string>): string[] {
  const start = [...specs.keys()].find((n) => !done.has(n))!;
  const path: string[] = [];
  let at = start;
  // Every converter left needs another one left, so walking its needs must come back to a name on the path.
  while (!path.includes(at)) {
    path.push(at);
    at = specs.get(at)!.needs.find((n) => !done.has(n))!;
  }
  return [...path.slice(path.indexOf(at)), at];
}

/* ------------------------------------------------------------------ running */

/**
 * Calls `fn` with `args` converted, and converts what it returns. Resolves to
 * what the task function's value is read as (results.ts outcomeOf()); rejects
 * with ArgumentConversionError or ReturnConversionError (failed for good), or
 * with what the function threw.
 */
export async function callConverted(conversion: Conversion, fn: (...args: unknown[]) => unknown, args: readonly unknown[]): Promise<unknown> {
  const converted = await convertArguments(conversion, args);
  const value = await fn(...converted);
  return conversion.returns === undefined ? value : convertReturn(conversion, value);
}

/** The arguments as the function takes them: rules checked, converters run. */
export async function convertArguments(conversion: Conversion, args: readonly unknown[]): Promise<unknown[]> {
  if (conversion.converters.length === 0 && conversion.rules.length === 0) return [...args];
  const named = namedArguments(conversion, args);
  for (const [name, rule] of conversion.rules) {
    const problem = ruleProblem(rule, named[name], Object.prototype.hasOwnProperty.call(named, name));
    if (problem !== undefined) throw new ArgumentConversionError(conversion.taskName, name, `validate.${name}`, problem);
  }
  for (const c of conversion.converters) {
    try {
      named[c.name] = await c.convert(named[c.name], named);
    } catch (err) {
      throw new ArgumentConversionError(conversion.taskName, c.name, c.label, err instanceof Error ? err.message : String(err), { cause: err });
    }
  }
  if (conversion.params === undefined) return [named, ...args.slice(1)];
  const out = [...args];
  conversion.params.forEach((p, i) => {
    if (i < out.length || named[p] !== undefined) out[i] = named[p];
  });
  return out;
}

/** The arguments by name: positional ones by params, else the one object argument (copied: converters write into it). */
function namedArguments(conversion: Conversion, args: readonly unknown[]): Record<string, unknown> {
  const named: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  if (conversion.params !== undefined) {
    conversion.params.forEach((p, i) => {
      if (i < args.length) named[p] = args[i];
    });
    return named;
  }
  const first = args[0];
  if (first === undefined) return named;
  if (typeof first !== 'object' || first === null || Array.isArray(first)) {
    throw new ArgumentConversionError(
      conversion.taskName,
      '0',
      'its converters',
      `the task declares no params, so it takes one object argument whose keys its converters and rules name; got ${describe(first)} (send an object, or declare params)`,
    );
  }
  return Object.assign(named, first);
}

async function convertReturn(conversion: Conversion, value: unknown): Promise<unknown> {
  const label = `returns${conversion.returns!.name && conversion.returns!.name !== 'returns' ? ` (${conversion.returns!.name})` : ''}`;
  const convert = async (v: unknown) => {
    try {
      return await conversion.returns!(v);
    } catch (err) {
      throw new ReturnConversionError(conversion.taskName, label, err instanceof Error ? err.message : String(err), { cause: err });
    }
  };
  if (!TaskResult.is(value)) return convert(value);
  // skipped(), rescheduled(), failed() carry no value to convert.
  return value.outcome.kind === 'processed' ? processed(await convert(value.outcome.value)) : value;
}

/** What is wrong with `value` by `rule`, or undefined. */
export function ruleProblem(rule: ArgumentRule, value: unknown, present: boolean): string | undefined {
  if (!present || value === undefined) return rule.required === true ? 'it is required but was not given' : undefined;
  if (rule.type !== undefined) {
    const types = Array.isArray(rule.type) ? rule.type : [rule.type as ArgumentType];
    if (!types.some((t) => isType(value, t))) return `it must be ${types.map((t) => (t === 'integer' || t === 'array' || t === 'object' ? `an ${t}` : t === 'null' ? 'null' : `a ${t}`)).join(' or ')}, got ${describe(value)}`;
  }
  const size = typeof value === 'number' ? value : typeof value === 'string' || Array.isArray(value) ? value.length : undefined;
  const what = typeof value === 'number' ? '' : ' long';
  if (size !== undefined && rule.min !== undefined && size < rule.min) return `it must be at least ${rule.min}${what}, got ${describe(value)}`;
  if (size !== undefined && rule.max !== undefined && size > rule.max) return `it must be at most ${rule.max}${what}, got ${describe(value)}`;
  if (rule.enum !== undefined && !rule.enum.includes(value)) return `it must be one of ${rule.enum.map((v) => JSON.stringify(v)).join(', ')}, got ${describe(value)}`;
  if (rule.check !== undefined) {
    let verdict: boolean | string | undefined;
    try {
      verdict = rule.check(value);
    } catch (err) {
      return `its check threw: ${err instanceof Error ? err.message : String(err)}`;
    }
    if (verdict === false) return `its check refused ${describe(value)}`;
    if (typeof verdict === 'string') return verdict;
  }
  return undefined;
}

function isType(value: unknown, type: ArgumentType): boolean {
  switch (type) {
    case 'string':
    case 'boolean':
      return typeof value === type;
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'integer':
      return Number.isInteger(value);
    case 'array':
      return Array.isArray(value);
    case 'null':
      return value === null;
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
  }
}

/** A short, safe rendering of a value for a message. */
function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'function') return 'a function';
  const text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return `${typeof value} ${text.length > 60 ? text.slice(0, 57) + '…' : text}`;
}
