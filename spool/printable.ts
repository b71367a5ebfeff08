/**
 * Text for a terminal. File names, owners, task bodies and reasons come from
 * whoever can write into the spool; printed raw, a name such as
 * `…-\x1b[2J\x1b]0;pwned\x07.json` would clear an operator's screen and set its
 * title, a newline would forge a second row, and a bidi override would show a
 * name reversed. Everything meant for people goes through printable();
 * JSON output goes through jsonForTerminal(), which keeps the value exact.
 */

/**
 * What printable() escapes: C0 controls (tab and newline too: they would break
 * a row), DEL, C1 controls (U+009B is a one-character CSI on terminals that take
 * C1), and the Unicode characters that reorder text or break lines: the Arabic
 * letter mark, LRM/RLM, the line and paragraph separators, the bidi embeddings
 * and overrides U+202A–U+202E and the isolates U+2066–U+2069.
 */
const UNSAFE = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
const UNSAFE_ALL = new RegExp(UNSAFE.source, 'g');

/**
 * `text` with every unsafe character written visibly as an escape: `\n`, `\r`,
 * `\t`, `\x1b`, `\x9b`, `\u202e`. A backslash is left as it is: the escapes are
 * for reading, and `--json` output gives the exact text.
 */
export function printable(text: string): string {
  return UNSAFE.test(text) ? text.replace(UNSAFE_ALL, escapeOne) : text;
}

function escapeOne(c: string): string {
  if (c === '\n') return '\\n';
  if (c === '\r') return '\\r';
  if (c === '\t') return '\\t';
  const code = c.charCodeAt(0);
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** The characters JSON.stringify leaves raw that printable() escapes: all but C0, which it escapes itself. */
const UNSAFE_IN_JSON = /[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
const UNSAFE_IN_JSON_ALL = new RegExp(UNSAFE_IN_JSON.source, 'g');

/**
 * JSON text (as JSON.stringify writes it) with DEL, the C1 controls and the
 * characters above written as `\u` escapes too. Those can only stand inside
 * strings, where `\u009b` means exactly U+009B: a parser reads the same value,
 * and a terminal shows the escape instead of acting on it.
 */
export function jsonForTerminal(json: string): string {
  return UNSAFE_IN_JSON.test(json) ? json.replace(UNSAFE_IN_JSON_ALL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) : json;
}
