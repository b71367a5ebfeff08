/** The JSON form of a spool entry, shared by `spool ls --json` and `spool show`. Keys are stable. */
import type { SpoolEntry } from '../spool/listing.js';

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
  };
}
