/**
 * Values the vectors hold that plain JSON cannot: bytes, integers beyond
 * 2^53, NaN, infinities, −0, functions, and strings too long to write out.
 * Each is a JSON object with exactly one key, its tag (conformance/README.md,
 * "Value tags", is the list a kit implements):
 *
 *   { "$bytes": "00ff" }                  bytes (MessagePack bin), in lowercase hex
 *   { "$int": "9007199254740993" }        an integer, in decimal (any size)
 *   { "$float": "NaN" }                   a double: "NaN", "Infinity", "-Infinity", "-0"
 *   { "$function": "a callback" }         a function (only in a produce case's input)
 *   { "$repeat": { "text": "x", "times": 3 } }   the string "xxx" (only in input)
 *   { "$map": { "$bytes": 1 } }           a map whose keys would look like a tag
 *
 * Anything else is the JSON value it looks like.
 */

export const TAGS = ['$bytes', '$int', '$float', '$function', '$repeat', '$map'] as const;

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

/** Whether a decoded map would read as a tag if written as it is. */
const looksLikeTag = (map: Record<string, unknown>): boolean => {
  const keys = Object.keys(map);
  return keys.length === 1 && keys[0]!.startsWith('$');
};

/**
 * A decoded value (what spool/wire.ts's decodeWire returns) as tagged JSON.
 * Decoded values are plain (the reader refused everything else), so only
 * bytes, integral doubles beyond ±2^53 and maps that look like tags need a
 * tag. −0 is written as 0 (JSON.stringify does so): the sign of zero is not
 * part of the format.
 */
export function toTagged(value: unknown): unknown {
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex') };
  // A double beyond ±2^53 that happens to be integral: a reader in a language with integers must not read it as one.
  if (typeof value === 'number' && Number.isInteger(value) && !Number.isSafeInteger(value)) return { $float: String(value) };
  if (typeof value === 'bigint') return { $int: value.toString() };
  if (Array.isArray(value)) return value.map(toTagged);
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = toTagged(v);
    return looksLikeTag(value) ? { $map: out } : out;
  }
  return value;
}

/** A tagged JSON value as the JavaScript value a producer would pass (the reverse of toTagged, plus the input-only tags). */
export function fromTagged(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(fromTagged);
  if (!isPlainObject(value)) return value;
  const keys = Object.keys(value);
  if (keys.length === 1 && keys[0]!.startsWith('$')) {
    const tag = keys[0]!;
    const v = value[tag];
    switch (tag) {
      case '$bytes':
        return new Uint8Array(Buffer.from(String(v), 'hex'));
      case '$int': {
        const n = BigInt(String(v));
        return Number.isSafeInteger(Number(n)) && BigInt(Number(n)) === n ? Number(n) : n;
      }
      case '$float':
        return Number(String(v));
      case '$function':
        return function producedByAVector() {};
      case '$repeat': {
        const r = v as { text: string; times: number };
        return r.text.repeat(r.times);
      }
      case '$map':
        return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, fromTagged(x)]));
      default:
        throw new Error(`unknown value tag ${tag}`);
    }
  }
  return Object.fromEntries(Object.entries(value).map(([k, x]) => [k, fromTagged(x)]));
}

/**
 * Whether two tagged values are the same value: numbers compare by value (2
 * and 2.0 are one number), maps regardless of key order.
 */
export function sameTagged(a: unknown, b: unknown): boolean {
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => sameTagged(x, b[i]));
  if (isPlainObject(a)) {
    if (!isPlainObject(b)) return false;
    const ka = Object.keys(a);
    if (ka.length !== Object.keys(b).length) return false;
    return ka.every((k) => Object.hasOwn(b, k) && sameTagged(a[k], b[k]));
  }
  return a === b;
}
