/** The JSON form of a spool entry, shared by `spool ls --json` and `spool show`. Keys are stable. */
import type { SpoolEntry } from '../spool/entries.js';
import { jsonForTerminal } from '../spool/printable.js';
import type { Progress } from '../spool/progress.js';

export interface EntryJson {
  id: string | null;
  name: string | null;
  state: string;
  priority: number | null;
  due: number | null;
  created: number | null;
  attempts: number | null;
  encoding: string | null;
  location: string;
  owner: string | null;
  file: string;
  path: string;
  reason: string | null;
  /** A waiting task whose name is paused (spool pause). */
  paused: boolean;
  /** A running task's last progress (ctx.progress()); the key is there only when it reported one. */
  progress?: Progress;
}

export function entryJson(e: SpoolEntry): EntryJson {
  const t = e.task;
  return {
    id: t?.id ?? null,
    name: t?.name ?? null,
    state: e.state,
    priority: t?.priority ?? null,
    due: t?.due ?? null,
    created: t?.created ?? null,
    attempts: t?.attempts ?? null,
    encoding: t?.encoding ?? null,
    location: e.location,
    owner: e.owner ?? null,
    file: e.fileName,
    path: e.path,
    reason: e.reason ?? null,
    paused: e.paused === true,
    ...(e.progress !== undefined && { progress: e.progress }),
  };
}

/**
 * toJson(entryJson(e)), written out directly: the same text, without building
 * the object or walking it (`spool ls --json` makes one per task). Strings go
 * through JSON.stringify and jsonForTerminal, so they are escaped exactly as there.
 */
export function entryJsonText(e: SpoolEntry): string {
  const t = e.task;
  const head =
    t === undefined
      ? `{"id":null,"name":null,"state":${quoted(e.state)},"priority":null,"due":null,"created":null,"attempts":null,"encoding":null`
      : `{"id":${nullable(t.id)},"name":${quotedOrNull(t.name)},"state":${quoted(e.state)},"priority":${numeric(t.priority)},"due":${numeric(t.due)},` +
        `"created":${numeric(t.created)},"attempts":${numeric(t.attempts)},"encoding":${quotedOrNull(t.encoding)}`;
  return (
    head +
    `,"location":${quoted(e.location)},"owner":${quotedOrNull(e.owner)},"file":${safeJson(e.fileName)},"path":${safeJson(e.path)},"reason":${nullable(e.reason)},"paused":${e.paused === true}` +
    (e.progress === undefined ? '}' : `,"progress":${jsonForTerminal(JSON.stringify(e.progress))}}`)
  );
}

/**
 * JSON text of a string, safe on a terminal: JSON.stringify's, through
 * jsonForTerminal (one search of a short string that almost never finds anything).
 */
function safeJson(s: string): string {
  return jsonForTerminal(JSON.stringify(s));
}

/** JSON text of a string, or null (as `?? null` then toJson). */
function nullable(s: string | null | undefined): string {
  return s == null ? 'null' : safeJson(s);
}

/** JSON text of a number, or null (as `?? null` then JSON.stringify: NaN and infinities are null too). */
function numeric(n: number | null | undefined): string {
  return n == null || !Number.isFinite(n) ? 'null' : String(n);
}

/** The JSON texts of the few strings that repeat on every line (states, locations, encodings, task names, owners). */
const QUOTED = new Map<string, string>();

function quoted(s: string): string {
  let text = QUOTED.get(s);
  if (text === undefined) {
    text = jsonForTerminal(JSON.stringify(s));
    if (QUOTED.size < 1024) QUOTED.set(s, text);
  }
  return text;
}

function quotedOrNull(s: string | null | undefined): string {
  return s == null ? 'null' : quoted(s);
}
