/**
 * A structural check of MessagePack bytes before they are decoded: only the
 * plain types SPOOL-FORMAT.md allows, every length inside the buffer, nothing
 * after the root value, integers within ±(2^53 − 1), strings that are valid
 * UTF-8 and map keys that are strings or integers. msgpackr decodes its own
 * extensions (records, typed arrays, BigInt) even with records turned off, and
 * turns invalid UTF-8 into U+FFFD without a word, so this is where both are
 * refused. The daemon's decode and `spool ls` (whose quick check accepts ASCII
 * only and leaves the rest to the full decode) both come through here.
 *
 * Problems are described by kind and byte offset, never by quoting the file's
 * content. Returns undefined when the bytes are plain MessagePack.
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

export function findMsgpackProblem(bytes: Uint8Array): string | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.byteLength;
  if (end === 0) return 'the file is empty';
  let offset = 0;
  // remaining[i]: values still to read in the container at depth i; keyNext[i]: the next one is a map key.
  const remaining: number[] = [1];
  const isMap: boolean[] = [false];
  const keyNext: boolean[] = [false];
  const need = (n: number): boolean => offset + n <= end;
  const truncated = (): string => `truncated: it ends inside a value at byte ${offset}`;

  while (remaining.length > 0) {
    const depth = remaining.length - 1;
    if (remaining[depth] === 0) {
      remaining.pop();
      isMap.pop();
      keyNext.pop();
      continue;
    }
    remaining[depth]!--;
    const asKey = isMap[depth]! && keyNext[depth]!;
    if (isMap[depth]) keyNext[depth] = !keyNext[depth];
    if (!need(1)) return truncated();
    const at = offset;
    const b = bytes[offset++]!;
    let container = -1;
    let containerIsMap = false;
    let kind: 'int' | 'str' | 'other' = 'other';
    if (b <= 0x7f || b >= 0xe0) kind = 'int';
    else if (b <= 0x8f) {
      container = (b & 0x0f) * 2;
      containerIsMap = true;
    } else if (b <= 0x9f) container = b & 0x0f;
    else if (b <= 0xbf) {
      kind = 'str';
      if (!need(b & 0x1f)) return truncated();
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
          if (!need(1)) return truncated();
          const n = view.getUint8(offset);
          offset += 1;
          if (!need(n)) return truncated();
          if (b === 0xd9) {
            kind = 'str';
            if (!isUtf8At(bytes, offset, n)) return notUtf8(at);
          }
          offset += n;
          break;
        }
        case 0xc5:
        case 0xda: {
          if (!need(2)) return truncated();
          const n = view.getUint16(offset);
          offset += 2;
          if (!need(n)) return truncated();
          if (b === 0xda) {
            kind = 'str';
            if (!isUtf8At(bytes, offset, n)) return notUtf8(at);
          }
          offset += n;
          break;
        }
        case 0xc6:
        case 0xdb: {
          if (!need(4)) return truncated();
          const n = view.getUint32(offset);
          offset += 4;
          if (!need(n)) return truncated();
          if (b === 0xdb) {
            kind = 'str';
            if (!isUtf8At(bytes, offset, n)) return notUtf8(at);
          }
          offset += n;
          break;
        }
        case 0xca: // float32
          if (!need(4)) return truncated();
          offset += 4;
          break;
        case 0xcb: // float64
          if (!need(8)) return truncated();
          offset += 8;
          break;
        case 0xcc:
        case 0xd0:
          if (!need(1)) return truncated();
          offset += 1;
          kind = 'int';
          break;
        case 0xcd:
        case 0xd1:
          if (!need(2)) return truncated();
          offset += 2;
          kind = 'int';
          break;
        case 0xce:
        case 0xd2:
          if (!need(4)) return truncated();
          offset += 4;
          kind = 'int';
          break;
        case 0xcf:
        case 0xd3: {
          if (!need(8)) return truncated();
          const big = b === 0xcf ? view.getBigUint64(offset) : view.getBigInt64(offset);
          offset += 8;
          // ±2^53 itself is out: 2^53 + 1 would decode to it, so it cannot be told from its neighbour.
          if (big > MAX_SAFE || big < -MAX_SAFE) return `a 64-bit integer at byte ${at} is beyond ±2^53 − 1 and cannot be represented exactly; write it as a string`;
          kind = 'int';
          break;
        }
        case 0xdc:
          if (!need(2)) return truncated();
          container = view.getUint16(offset);
          offset += 2;
          break;
        case 0xdd:
          if (!need(4)) return truncated();
          container = view.getUint32(offset);
          offset += 4;
          break;
        case 0xde:
          if (!need(2)) return truncated();
          container = view.getUint16(offset) * 2;
          offset += 2;
          containerIsMap = true;
          break;
        case 0xdf:
          if (!need(4)) return truncated();
          container = view.getUint32(offset) * 2;
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
    if (container !== -1) {
      if (remaining.length >= MAX_DEPTH + 1) return `nested deeper than ${MAX_DEPTH} levels`;
      // Every element takes at least one byte: a count beyond what is left is a truncated (or forged) length.
      if (container > end - offset) return truncated();
      remaining.push(container);
      isMap.push(containerIsMap);
      keyNext.push(true);
    }
  }
  if (offset !== end) return `${end - offset} bytes follow the map; a task file holds exactly one MessagePack map`;
  return undefined;
}
