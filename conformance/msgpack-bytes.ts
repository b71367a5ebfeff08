/**
 * A MessagePack writer for the body vectors, with every format chosen by hand
 * where a case needs it (str8 for a short string, map32 for a small map,
 * uint64 for a small integer…). msgpackr picks the smallest format and refuses
 * to write what a vector must hold (invalid UTF-8, extension types, lengths
 * that lie), so the vectors are written byte by byte here and read back by
 * the real reader (spool/wire.ts).
 */

/** Bytes written as they are. */
export class Raw {
  constructor(readonly bytes: Uint8Array) {}
}

export const raw = (hex: string): Raw => new Raw(Buffer.from(hex.replace(/\s+/g, ''), 'hex'));

const be = (n: number | bigint, size: number): Buffer => {
  const b = Buffer.alloc(size);
  if (size === 1) b.writeUInt8(Number(n));
  else if (size === 2) b.writeUInt16BE(Number(n));
  else if (size === 4) b.writeUInt32BE(Number(n));
  else b.writeBigUInt64BE(BigInt.asUintN(64, BigInt(n)));
  return b;
};

const cat = (...parts: (Uint8Array | number[])[]): Raw => new Raw(Buffer.concat(parts.map((p) => (p instanceof Uint8Array ? p : Buffer.from(p)))));

export const u64 = (n: bigint | number): Raw => cat([0xcf], be(n, 8));
export const i64 = (n: bigint | number): Raw => cat([0xd3], be(n, 8));
export const u32 = (n: number): Raw => cat([0xce], be(n, 4));
export const f32 = (n: number): Raw => {
  const b = Buffer.alloc(4);
  b.writeFloatBE(n);
  return cat([0xca], b);
};
export const f64 = (n: number): Raw => {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(n);
  return cat([0xcb], b);
};
/** A string in a chosen format, from its UTF-8 bytes (which may be invalid on purpose). */
export const str = (format: 'fix' | 'str8' | 'str16' | 'str32', bytes: Uint8Array | string): Raw => {
  const b = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
  if (format === 'fix') return cat([0xa0 | b.length], b);
  if (format === 'str8') return cat([0xd9], be(b.length, 1), b);
  if (format === 'str16') return cat([0xda], be(b.length, 2), b);
  return cat([0xdb], be(b.length, 4), b);
};
export const bin = (format: 'bin8' | 'bin16' | 'bin32', bytes: Uint8Array): Raw =>
  format === 'bin8' ? cat([0xc4], be(bytes.length, 1), bytes) : format === 'bin16' ? cat([0xc5], be(bytes.length, 2), bytes) : cat([0xc6], be(bytes.length, 4), bytes);

/** A map from entries (keys and values packed with pack()), with a header of a chosen format and count (a lying count makes a truncated map). */
export const mapOf = (entries: [unknown, unknown][], format: 'fix' | 'map16' | 'map32' = 'fix', count = entries.length): Raw => {
  const head = format === 'fix' ? [0x80 | count] : format === 'map16' ? [0xde, ...be(count, 2)] : [0xdf, ...be(count, 4)];
  return cat(head, ...entries.flatMap(([k, v]) => [pack(k), pack(v)]));
};
export const arrayOf = (items: unknown[], format: 'fix' | 'array16' | 'array32' = 'fix', count = items.length): Raw => {
  const head = format === 'fix' ? [0x90 | count] : format === 'array16' ? [0xdc, ...be(count, 2)] : [0xdd, ...be(count, 4)];
  return cat(head, ...items.map(pack));
};

/**
 * Packs a value: null, booleans, integers in the smallest format, other
 * numbers as float64, strings (smallest format), Uint8Array as bin, arrays,
 * plain objects as maps (in key order), Raw as it is.
 */
export function pack(v: unknown): Uint8Array {
  if (v instanceof Raw) return v.bytes;
  if (v === null) return Buffer.from([0xc0]);
  if (v === false) return Buffer.from([0xc2]);
  if (v === true) return Buffer.from([0xc3]);
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || Object.is(v, -0)) return f64(v).bytes;
    if (v >= 0) {
      if (v < 128) return Buffer.from([v]);
      if (v < 256) return cat([0xcc], be(v, 1)).bytes;
      if (v < 65536) return cat([0xcd], be(v, 2)).bytes;
      if (v < 2 ** 32) return u32(v).bytes;
      return u64(BigInt(v)).bytes;
    }
    if (v >= -32) return Buffer.from([v & 0xff]);
    if (v >= -128) return cat([0xd0], be(v & 0xff, 1)).bytes;
    if (v >= -32768) return cat([0xd1], be(v & 0xffff, 2)).bytes;
    if (v >= -(2 ** 31)) return cat([0xd2], be(v >>> 0, 4)).bytes;
    return i64(BigInt(v)).bytes;
  }
  if (typeof v === 'string') {
    const b = Buffer.from(v, 'utf8');
    return str(b.length < 32 ? 'fix' : b.length < 256 ? 'str8' : b.length < 65536 ? 'str16' : 'str32', b).bytes;
  }
  if (v instanceof Uint8Array) return bin(v.length < 256 ? 'bin8' : v.length < 65536 ? 'bin16' : 'bin32', v).bytes;
  if (Array.isArray(v)) return arrayOf(v, v.length < 16 ? 'fix' : v.length < 65536 ? 'array16' : 'array32').bytes;
  if (typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>);
    return mapOf(entries, entries.length < 16 ? 'fix' : entries.length < 65536 ? 'map16' : 'map32').bytes;
  }
  throw new Error(`cannot pack ${typeof v}`);
}
