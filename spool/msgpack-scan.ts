/**
 * A structural check of MessagePack bytes before they are decoded: only the
 * plain types SPOOL-FORMAT.md allows, every length inside the buffer, nothing
 * after the root value, integers within ±(2^53 − 1), strings that are valid
 * UTF-8 and map keys that are strings or integers. msgpackr decodes its own
 * extensions (records, typed arrays, BigInt) even with records turned off, and
 * turns invalid UTF-8 into U+FFFD without a word, so this is where both are
 * refused. The one MessagePack validator: the daemon's decode (wire.ts) and
 * `spool ls` (body.ts, isValidBody) both come through here.
 *
 * Problems are described by kind and byte offset, never by quoting the file's
 * content. Returns undefined when the bytes are plain MessagePack.
 *
 * Given a RootEntries, the scan also notes where each entry of the root map
 * is, so that the body's fields can be checked without decoding the rest
 * (body.ts, isValidBody).
 */
import { isUtf8 } from 'node:buffer';

const MAX_DEPTH = 64;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
/** Strings up to this long are first looked at byte by byte for ASCII; a native call costs more than that. */
const ASCII_LOOP_MAX = 64;

/** Whether bytes[start, start + length) are valid UTF-8 (no overlongs, surrogates or code points beyond U+10FFFF). */
function isUtf8At(bytes: Uint8Array, start: number, length: number): boolean {
  if (length <= ASCII_LOOP_MAX) {
    let i = start;
    const stop = start + length;
    while (i < stop && bytes[i]! < 0x80) i++;
    if (i === stop) return true;
  }
  return isUtf8(bytes.subarray(start, start + length));
}

const notUtf8 = (at: number): string =>
  `the string at byte ${at} is not valid UTF-8; text must be UTF-8 (send bytes as MessagePack bin, not str)`;

/**
 * Where the entries of the root map are, as findMsgpackProblem found them. An
 * entry's value runs from valueAt to the next entry's keyAt (the last one's to
 * the end of the bytes). Reused from scan to scan: its arrays only grow.
 */
export class RootEntries {
  /** Whether the root is a map; the rest is only meaningful if so. */
  isMap = false;
  count = 0;
  /** Per entry: where its key starts. */
  keyAt: number[] = [];
  /** Per entry: where its key's UTF-8 text starts, or -1 for an integer key. */
  keyText: number[] = [];
  /** Per entry: the length of its key's text in bytes. */
  keyLength: number[] = [];
  /** Per entry: where its value starts. */
  valueAt: number[] = [];
  /**
   * Whether a float anywhere is NaN or infinite. The scan lets those through:
   * the decode's value check refuses them, with the path to the value
   * (wire.ts, checkDecoded).
   */
  nonFinite = false;
}

/*
 * The containers the scan is inside, by depth (0: the root value itself): how
 * many values are still to be read in each, whether it is a map, and whether
 * its next value is a key. Shared by every scan (a scan runs to its end
 * without yielding), so that a scan allocates nothing.
 */
const remaining = new Float64Array(MAX_DEPTH + 2);
const isMap = new Uint8Array(MAX_DEPTH + 2);
const keyNext = new Uint8Array(MAX_DEPTH + 2);

const truncatedAt = (offset: number): string => `truncated: it ends inside a value at byte ${offset}`;
const u16 = (bytes: Uint8Array, at: number): number => (bytes[at]! << 8) | bytes[at + 1]!;
const u32 = (bytes: Uint8Array, at: number): number => ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;

export function findMsgpackProblem(bytes: Uint8Array, root?: RootEntries): string | undefined {
  const end = bytes.byteLength;
  if (end === 0) return 'the file is empty';
  let offset = 0;
  // The number of containers open, the root's "container" of one value included.
  let open = 1;
  remaining[0] = 1;
  isMap[0] = 0;
  keyNext[0] = 0;
  if (root !== undefined) {
    root.count = 0;
    root.nonFinite = false;
    const b0 = bytes[0]!;
    root.isMap = (b0 >= 0x80 && b0 <= 0x8f) || b0 === 0xde || b0 === 0xdf;
  }
  while (open > 0) {
    const depth = open - 1;
    if (remaining[depth] === 0) {
      open--;
      continue;
    }
    remaining[depth]!--;
    const asKey = isMap[depth] === 1 && keyNext[depth] === 1;
    if (isMap[depth] === 1) keyNext[depth] = keyNext[depth] === 1 ? 0 : 1;
    if (offset + 1 > end) return truncatedAt(offset);
    const at = offset;
    const b = bytes[offset++]!;
    let container = -1;
    let containerIsMap = false;
    let kind: 'int' | 'str' | 'other' = 'other';
    // Where a string's text starts (its length is offset - text once read).
    let text = -1;
    if (b <= 0x7f || b >= 0xe0) kind = 'int';
    else if (b <= 0x8f) {
      container = (b & 0x0f) * 2;
      containerIsMap = true;
    } else if (b <= 0x9f) container = b & 0x0f;
    else if (b <= 0xbf) {
      kind = 'str';
      text = offset;
      if (offset + (b & 0x1f) > end) return truncatedAt(offset);
      if (!isUtf8At(bytes, offset, b & 0x1f)) return notUtf8(at);
      offset += b & 0x1f;
    } else {
      switch (b) {
        case 0xc0: // nil
        case 0xc2: // false
        case 0xc3: // true
          break;
        case 0xc4:
        case 0xd9: {
          if (offset + 1 > end) return truncatedAt(offset);
          const n = bytes[offset]!;
          offset += 1;
          if (offset + n > end) return truncatedAt(offset);
          if (b === 0xd9) {
            kind = 'str';
            text = offset;
            if (!isUtf8At(bytes, offset, n)) return notUtf8(at);
          }
          offset += n;
          break;
        }
        case 0xc5:
        case 0xda: {
          if (offset + 2 > end) return truncatedAt(offset);
          const n = u16(bytes, offset);
          offset += 2;
          if (offset + n > end) return truncatedAt(offset);
          if (b === 0xda) {
            kind = 'str';
            text = offset;
            if (!isUtf8At(bytes, offset, n)) return notUtf8(at);
          }
          offset += n;
          break;
        }
        case 0xc6:
        case 0xdb: {
          if (offset + 4 > end) return truncatedAt(offset);
          const n = u32(bytes, offset);
          offset += 4;
          if (offset + n > end) return truncatedAt(offset);
          if (b === 0xdb) {
            kind = 'str';
            text = offset;
            if (!isUtf8At(bytes, offset, n)) return notUtf8(at);
          }
          offset += n;
          break;
        }
        case 0xca: // float32: NaN or infinite when the exponent is all ones
          if (offset + 4 > end) return truncatedAt(offset);
          if ((((bytes[offset]! & 0x7f) << 1) | (bytes[offset + 1]! >> 7)) === 0xff && root !== undefined) root.nonFinite = true;
          offset += 4;
          break;
        case 0xcb: // float64: likewise
          if (offset + 8 > end) return truncatedAt(offset);
          if ((((bytes[offset]! & 0x7f) << 4) | (bytes[offset + 1]! >> 4)) === 0x7ff && root !== undefined) root.nonFinite = true;
          offset += 8;
          break;
        case 0xcc:
        case 0xd0:
          if (offset + 1 > end) return truncatedAt(offset);
          offset += 1;
          kind = 'int';
          break;
        case 0xcd:
        case 0xd1:
          if (offset + 2 > end) return truncatedAt(offset);
          offset += 2;
          kind = 'int';
          break;
        case 0xce:
        case 0xd2:
          if (offset + 4 > end) return truncatedAt(offset);
          offset += 4;
          kind = 'int';
          break;
        case 0xcf:
        case 0xd3: {
          if (offset + 8 > end) return truncatedAt(offset);
          const view = new DataView(bytes.buffer, bytes.byteOffset + offset, 8);
          const big = b === 0xcf ? view.getBigUint64(0) : view.getBigInt64(0);
          offset += 8;
          // ±2^53 itself is out: 2^53 + 1 would decode to it, so it cannot be told from its neighbour.
          if (big > MAX_SAFE || big < -MAX_SAFE) return `a 64-bit integer at byte ${at} is beyond ±2^53 − 1 and cannot be represented exactly; write it as a string`;
          kind = 'int';
          break;
        }
        case 0xdc:
          if (offset + 2 > end) return truncatedAt(offset);
          container = u16(bytes, offset);
          offset += 2;
          break;
        case 0xdd:
          if (offset + 4 > end) return truncatedAt(offset);
          container = u32(bytes, offset);
          offset += 4;
          break;
        case 0xde:
          if (offset + 2 > end) return truncatedAt(offset);
          container = u16(bytes, offset) * 2;
          offset += 2;
          containerIsMap = true;
          break;
        case 0xdf:
          if (offset + 4 > end) return truncatedAt(offset);
          container = u32(bytes, offset) * 2;
          offset += 4;
          containerIsMap = true;
          break;
        case 0xc7:
        case 0xc8:
        case 0xc9:
        case 0xd4:
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8:
          return `an extension type at byte ${at}; only plain types are allowed (no timestamps, msgpackr records or other extensions)`;
        default: // 0xc1, never used
          return `byte ${at} is 0xc1, which MessagePack never uses`;
      }
    }
    if (asKey && kind === 'other' && container === -1) return `a map key at byte ${at} is neither a string nor an integer`;
    if (asKey && container !== -1) return `a map key at byte ${at} is a map or array; keys must be strings`;
    if (depth === 1 && root !== undefined && root.isMap) {
      if (asKey) {
        const n = root.count;
        root.keyAt[n] = at;
        root.keyText[n] = kind === 'str' ? text : -1;
        root.keyLength[n] = kind === 'str' ? offset - text : 0;
      } else {
        root.valueAt[root.count++] = at;
      }
    }
    if (container !== -1) {
      if (open >= MAX_DEPTH + 1) return `nested deeper than ${MAX_DEPTH} levels`;
      // Every element takes at least one byte: a count beyond what is left is a truncated (or forged) length.
      if (container > end - offset) return truncatedAt(offset);
      remaining[open] = container;
      isMap[open] = containerIsMap ? 1 : 0;
      keyNext[open] = 1;
      open++;
    }
  }
  if (offset !== end) return `${end - offset} bytes follow the map; a task file holds exactly one MessagePack map`;
  return undefined;
}

/** What scalarAt returns for a value it leaves to the full decoder. */
export const NOT_SIMPLE: unique symbol = Symbol('not a simple scalar');

/**
 * The value at bytes[start, end) that findMsgpackProblem has passed, when it is
 * one of the common scalars: nil, a boolean, an integer of up to 32 bits, or a
 * string of ASCII text; NOT_SIMPLE for anything else, which is for msgpackr to
 * decode (wire.ts). A call of msgpackr costs ~0.5 µs, several times a whole
 * body's scan: this is how `spool ls` reads a body's version and type cheaply.
 */
export function scalarAt(bytes: Uint8Array, start: number, end: number): unknown {
  const b = bytes[start]!;
  if (b <= 0x7f) return b;
  if (b >= 0xe0) return b - 0x100;
  if (b >= 0xa0 && b <= 0xbf) return asciiAt(bytes, start + 1, end);
  switch (b) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xcc:
      return bytes[start + 1]!;
    case 0xcd:
      return (bytes[start + 1]! << 8) | bytes[start + 2]!;
    case 0xce:
      return ((bytes[start + 1]! << 24) | (bytes[start + 2]! << 16) | (bytes[start + 3]! << 8) | bytes[start + 4]!) >>> 0;
    case 0xd0:
      return (bytes[start + 1]! << 24) >> 24;
    case 0xd1:
      return (((bytes[start + 1]! << 8) | bytes[start + 2]!) << 16) >> 16;
    case 0xd2:
      return (bytes[start + 1]! << 24) | (bytes[start + 2]! << 16) | (bytes[start + 3]! << 8) | bytes[start + 4]!;
    case 0xd9:
      return asciiAt(bytes, start + 2, end);
    default:
      return NOT_SIMPLE;
  }
}

/** bytes[start, end) as text if every byte is ASCII, else NOT_SIMPLE. */
function asciiAt(bytes: Uint8Array, start: number, end: number): string | typeof NOT_SIMPLE {
  let text = '';
  for (let i = start; i < end; i++) {
    const c = bytes[i]!;
    if (c >= 0x80) return NOT_SIMPLE;
    text += String.fromCharCode(c);
  }
  return text;
}
