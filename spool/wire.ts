/**
 * Encoding task bodies. Bodies are plain MessagePack (or JSON) so any language
 * can read and write them, which means only values every decoder agrees on:
 * null, booleans, finite numbers (integers within ±(2^53 − 1); a number beyond
 * is a double and is written as one), strings of valid Unicode, byte arrays
 * (MessagePack only), arrays and plain objects with string keys, of any size
 * the file cap allows. SPOOL-FORMAT.md, "Values", is the contract.
 *
 * Anything else (undefined, functions, symbols, BigInt, Date, Map, Set, class
 * instances, sparse arrays, circular references) would be dropped or silently
 * changed by some encoder or decoder, so it is refused with the path to the
 * offending value. Decoded bodies are checked by the same rules, which also
 * rejects MessagePack extension types written by other producers.
 */
import { isUtf8 } from 'node:buffer';
import { Packr, Unpackr } from 'msgpackr';
import { UnencodableValueError } from './errors.js';
import { findMsgpackProblem } from './msgpack-scan.js';
import type { Encoding } from './name.js';

/** A value that survives a round trip through both encodings (bytes: MessagePack only). */
export type PlainValue = null | boolean | number | string | Uint8Array | PlainValue[] | { [key: string]: PlainValue };

const MAX_DEPTH = 64;
/** Integers beyond uint32/int32 are written as 64-bit integers; msgpackr alone would write them as float64. */
const INT32_MIN = -(2 ** 31);
const UINT32_MAX = 2 ** 32 - 1;

// Records and structures are msgpackr extensions other languages cannot read: turn them off.
// variableMapSize: maps of 65,536 keys and more are written as map32 (without it msgpackr throws),
// and small ones as fixmap.
const packr = new Packr({ useRecords: false, moreTypes: false, variableMapSize: true });
// 'auto': 64-bit integers within ±2^53 decode as numbers, larger ones as BigInt (which the check then refuses).
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'auto' as 'number' });

/**
 * Checks that `value` is a plain value for `encoding` and returns the form to hand
 * to the encoder (the same object unless a large integer had to be widened).
 * Throws UnencodableValueError naming the path of the first bad value.
 */
export function toWire(value: unknown, encoding: Encoding, path = 'value'): unknown {
  return walk(value, encoding, path, 0, new Set());
}

function walk(value: unknown, encoding: Encoding, path: string, depth: number, seen: Set<object>): unknown {
  switch (typeof value) {
    case 'string':
      // A lone surrogate has no UTF-8 form: MessagePack would store U+FFFD in its place.
      if (!(value as string & { isWellFormed(): boolean }).isWellFormed()) {
        throw new UnencodableValueError(path, 'the string holds a lone UTF-16 surrogate, which UTF-8 cannot carry; it would be replaced by U+FFFD');
      }
      return value;
    case 'boolean':
      return value;
    case 'number':
      if (!Number.isFinite(value)) {
        throw new UnencodableValueError(path, `${value} is not a finite number; JSON and most languages cannot carry it (use null or a string)`);
      }
      // A safe integer is written as an integer (beyond 32 bits as int64, which msgpackr only does
      // for a BigInt). Any other finite number, 1e20 and 2^53 included, is a double and written as
      // float64 (JSON: as JSON.stringify writes it), which carries its value exactly. −0 is written
      // as 0: the sign of zero is not part of the format.
      if (encoding === 'msgpack' && (value < INT32_MIN || value > UINT32_MAX) && Number.isSafeInteger(value)) return BigInt(value);
      return value;
    case 'undefined':
      throw new UnencodableValueError(path, 'undefined cannot be stored (MessagePack would turn it into an extension type, JSON would drop it); use null or leave the property out');
    case 'bigint':
      throw new UnencodableValueError(path, 'a BigInt would come back as a number or not at all; pass it as a string');
    case 'function':
      throw new UnencodableValueError(path, 'a function cannot be stored in a task; register it as a task and pass its name instead');
    case 'symbol':
      throw new UnencodableValueError(path, 'a symbol cannot be stored in a task');
  }
  if (value === null) return null;
  const obj = value as object;
  if (depth >= MAX_DEPTH) throw new UnencodableValueError(path, `nested deeper than ${MAX_DEPTH} levels`);
  if (seen.has(obj)) throw new UnencodableValueError(path, 'circular reference: the value contains itself');
  if (obj instanceof Uint8Array) {
    if (encoding === 'json') {
      throw new UnencodableValueError(path, 'bytes cannot be stored in a JSON task; use the msgpack encoding or pass them as base64 text');
    }
    return obj;
  }
  seen.add(obj);
  try {
    if (Array.isArray(obj)) return walkArray(obj, encoding, path, depth, seen);
    const proto = Object.getPrototypeOf(obj) as object | null;
    if (proto !== Object.prototype && proto !== null) {
      throw new UnencodableValueError(path, `${describeObject(obj)} is not a plain object and would lose its type; ${hintFor(obj)}`);
    }
    if (Object.getOwnPropertySymbols(obj).length > 0) {
      throw new UnencodableValueError(path, 'symbol keys cannot be stored; use string keys');
    }
    let out: Record<string, unknown> | undefined;
    const record = obj as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      if (!(key as string & { isWellFormed(): boolean }).isWellFormed()) {
        throw new UnencodableValueError(`${path}.${key}`, 'the key holds a lone UTF-16 surrogate, which UTF-8 cannot carry; it would be replaced by U+FFFD');
      }
      const item = record[key];
      const converted = walk(item, encoding, `${path}.${key}`, depth + 1, seen);
      if (converted !== item) {
        out ??= { ...record };
        out[key] = converted;
      }
    }
    return out ?? obj;
  } finally {
    seen.delete(obj);
  }
}

function walkArray(arr: unknown[], encoding: Encoding, path: string, depth: number, seen: Set<object>): unknown[] {
  let out: unknown[] | undefined;
  for (let i = 0; i < arr.length; i++) {
    if (!(i in arr)) throw new UnencodableValueError(`${path}[${i}]`, 'the array has a hole here; fill it with null');
    const item = arr[i];
    const converted = walk(item, encoding, `${path}[${i}]`, depth + 1, seen);
    if (converted !== item) {
      out ??= arr.slice();
      out[i] = converted;
    }
  }
  return out ?? arr;
}

function describeObject(obj: object): string {
  const ctor = (obj as { constructor?: { name?: string } }).constructor?.name;
  return ctor ? `a ${ctor}` : 'an object with a custom prototype';
}

function hintFor(obj: object): string {
  if (obj instanceof Date) return 'pass date.getTime() (ms) or date.toISOString()';
  if (obj instanceof Map) return 'pass Object.fromEntries(map) or [...map]';
  if (obj instanceof Set) return 'pass [...set]';
  if (ArrayBuffer.isView(obj) || obj instanceof ArrayBuffer) return 'pass a Uint8Array or Buffer';
  if (obj instanceof Error) return 'pass { message: err.message, stack: err.stack }';
  return 'pass a plain object with its fields';
}

/** Encodes a checked value. The value must already have gone through toWire. */
export function encodeWire(value: unknown, encoding: Encoding): Buffer {
  if (encoding === 'json') return Buffer.from(JSON.stringify(value), 'utf8');
  return packr.pack(value);
}

/**
 * Decodes bytes and checks the result is plain. Throws Error for undecodable
 * input and UnencodableValueError for values the format does not allow. No
 * message quotes the content.
 */
export function decodeWire(bytes: Uint8Array, encoding: Encoding): unknown {
  let value: unknown;
  let text: string | undefined;
  if (encoding === 'json') {
    // toString() would turn invalid UTF-8 into U+FFFD without a word, and JSON.parse a "\ud800"
    // escape into a lone surrogate: the task would run with text that is not what was sent.
    if (!isUtf8(bytes)) throw new Error('the text is not valid UTF-8');
    if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) throw new Error('the text starts with a byte order mark (U+FEFF); write UTF-8 without one');
    text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
    try {
      value = JSON.parse(text);
    } catch (err) {
      // V8's message quotes the text around the error; keep only where it is.
      const message = (err as Error).message;
      const position = /position (\d+)/.exec(message)?.[1];
      if (bytes.byteLength === 0) throw new Error('the file is empty');
      if (/end of JSON input/.test(message)) throw new Error('truncated: the text ends inside a value');
      throw new Error(`bad syntax${position ? ` at character ${position}` : ''}`);
    }
  } else {
    const problem = findMsgpackProblem(bytes);
    if (problem !== undefined) throw new Error(problem);
    value = unpackr.unpack(bytes);
  }
  checkDecoded(value, encoding, 'body', 0);
  // Only escapes can make a lone surrogate (the bytes are valid UTF-8), so only text with an
  // escaped surrogate needs its strings looked at.
  if (encoding === 'json' && SURROGATE_ESCAPE.test(text!)) checkWellFormed(value, 'body', 0);
  return value;
}

/**
 * Decodes MessagePack bytes that findMsgpackProblem has passed (a whole body, or
 * one value inside one), as decodeWire does but without its checks.
 */
export function decodeScannedMsgpack(bytes: Uint8Array): unknown {
  return unpackr.unpack(bytes);
}

/** A \uD800–\uDFFF escape in JSON text. */
const SURROGATE_ESCAPE = /\\u[dD][89abcdefABCDEF]/;

/** Refuses strings (values and keys) holding a lone UTF-16 surrogate, which no UTF-8 producer can have meant. */
function checkWellFormed(value: unknown, path: string, depth: number): void {
  if (typeof value === 'string') {
    if (!(value as string & { isWellFormed(): boolean }).isWellFormed()) {
      throw new UnencodableValueError(path, 'the string holds a lone UTF-16 surrogate (an unpaired \\uD800–\\uDFFF escape), which is not text');
    }
    return;
  }
  if (typeof value !== 'object' || value === null) return;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) checkWellFormed(value[i], `${path}[${i}]`, depth + 1);
    return;
  }
  let position = 0;
  for (const [key, item] of Object.entries(value)) {
    if (!(key as string & { isWellFormed(): boolean }).isWellFormed()) {
      throw new UnencodableValueError(`${path}{key #${position}}`, 'the key holds a lone UTF-16 surrogate (an unpaired \\uD800–\\uDFFF escape), which is not text');
    }
    checkWellFormed(item, depth === 0 ? `${path}.${key}` : `${path}{key #${position}}`, depth + 1);
    position++;
  }
}

/**
 * Like walk, for decoded values: no conversion, and a cheaper pass (decoders
 * cannot make cycles). For MessagePack, findMsgpackProblem has already refused
 * every other thing this refuses, so the only values that reach here and fail
 * are NaN and infinities (which it refuses here, with their path): body.ts's
 * isValidBody relies on that.
 */
function checkDecoded(value: unknown, encoding: Encoding, path: string, depth: number): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value)) throw new UnencodableValueError(path, 'NaN and infinities are not allowed');
      return;
    case 'bigint':
      throw new UnencodableValueError(path, 'an integer beyond ±2^53 cannot be represented exactly; write it as a string');
    case 'object':
      break;
    default:
      throw new UnencodableValueError(path, `${typeof value} is not a plain MessagePack value (an extension type?)`);
  }
  // Bytes are a scalar: like every scalar, they do not count towards the nesting limit (SPOOL-FORMAT.md, "Values").
  if (value === null || value instanceof Uint8Array) return;
  if (depth >= MAX_DEPTH) throw new UnencodableValueError(path, `nested deeper than ${MAX_DEPTH} levels`);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) checkDecoded(value[i], encoding, `${path}[${i}]`, depth + 1);
    return;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype) {
    throw new UnencodableValueError(path, `${describeObject(value)} is not a plain value (MessagePack extension types are not allowed)`);
  }
  // Top-level keys are the body's field names; deeper keys are the producer's data, which a
  // reason must not echo, so they are named by position.
  let position = 0;
  for (const [key, item] of Object.entries(value)) {
    checkDecoded(item, encoding, depth === 0 ? `${path}.${key}` : `${path}{key #${position}}`, depth + 1);
    position++;
  }
}
