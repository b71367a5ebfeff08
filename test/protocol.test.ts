/**
 * The spool protocol (spool/protocol.ts) on real temp directories: what each
 * transition does; the claim race between two processes; and, for each step of
 * the crash table, a crash simulated after each of its system calls (the calls
 * before it done by hand, the rest never), followed by the recovery the table
 * names (reclaim, the tmp/ and record sweeps; the start-up scan of a real
 * daemon last), after which the task is in exactly one place and not lost.
 *
 * claim() on ENOENT: a lost race and a claim directory that is gone both make
 * rename(2) fail with ENOENT, and must not be confused. Taken for lost races,
 * the claims of a daemon whose claim directory was reclaimed failed silently
 * forever (issue 13).
 */
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SpoolLayout } from '../spool/layout.js';
import { formatTaskName, parseTaskName, taskIds } from '../spool/name.js';
import {
  buryUnclaimed,
  expire,
  accept,
  bury,
  claim,
  DEBRIS_AGE_MS,
  finish,
  ownerLockPath,
  publishStagedSync,
  quarantine,
  reclaimOwner,
  RECORD_STAGING_PREFIX,
  release,
  removeClaimed,
  retryLater,
  REVOKED_PREFIX,
  revive,
  revoke,
  stageTaskSync,
  sweepRecordDebris,
  sweepTmp,
  writeFailureRecord,
  writeJsonAtomic,
  writeTaskSync,
  type FailureRecord,
} from '../spool/protocol.js';
import { QUARANTINE_REASON_SUFFIX } from '../spool/layout.js';
import { ROOT, tempDir } from './helpers/cli.js';
import { describeSpool, killLeftoverDaemons, readRecords, startServing, waitFor } from './helpers/daemon.js';

let dir: string;
let cleanup: () => void;
let sources: { incoming: string; pending: string };
let ownerDir: string;
let layout: SpoolLayout;
const OWNER = 'host-1-abcdef';
beforeEach(() => {
  ({ dir, cleanup } = tempDir('spoolerd-protocol-'));
  layout = new SpoolLayout(join(dir, 'spool')).ensure();
  sources = { incoming: layout.incoming, pending: layout.pending };
  ownerDir = join(layout.active, OWNER);
  mkdirSync(ownerDir);
  // The owner's liveness lock (proper-lockfile's directory); reclaim removes it.
  mkdirSync(ownerLockPath(layout, OWNER));
});
afterEach(async () => {
  await killLeftoverDaemons();
  cleanup();
});

interface Task {
  key: string;
  id: string;
  fileName: string;
  bytes: Buffer;
}

/** A valid task (fcall of basic.mjs's echo with the key as its argument), not written anywhere yet. */
function newTask(key: string, change: { due?: number; attempts?: number } = {}): Task {
  const [id, created] = taskIds.next();
  const fileName = formatTaskName({ priority: 50, due: change.due ?? created, id, attempts: change.attempts ?? 0, name: 'echo', encoding: 'json' });
  return { key, id, fileName, bytes: Buffer.from(JSON.stringify({ version: 1, type: 'fcall', args: [key] })) };
}

/** Writes the task straight into `folder` (a spool folder or a claim directory), as an earlier step would have left it. */
function place(task: Task, folder: string): string {
  const path = join(folder, task.fileName);
  writeFileSync(path, task.bytes);
  return path;
}

/**
 * Every file that holds the task, as "<folder>/<name>" (claim directories as
 * "active/<owner>/<name>"): found by its id in the name, or, for names that
 * carry no id (tmp/.revoked-*, quarantined bad names), by its key in the content.
 */
function whereIs(task: Task): string[] {
  const found: string[] = [];
  const look = (rel: string): void => {
    const abs = join(layout.root, rel);
    if (!existsSync(abs)) return;
    for (const n of readdirSync(abs)) {
      const path = join(abs, n);
      const st = lstatSync(path);
      if (st.isDirectory() && rel === 'active') look(`active/${n}`);
      else if (st.isDirectory()) {
        if (treeHolds(path, task.key)) found.push(`${rel}/${n}`);
      } else if (st.isFile() && !n.endsWith(QUARANTINE_REASON_SUFFIX) && (n.includes(task.id) || readFileSync(path).includes(task.key))) found.push(`${rel}/${n}`);
    }
  };
  for (const d of ['tmp', 'incoming', 'pending', 'active', 'dead', 'quarantine', 'archive']) look(d);
  return found;
}

/** Whether a file under the directory `path` (a quarantined or revoked directory) holds `key`. */
function treeHolds(path: string, key: string): boolean {
  return readdirSync(path, { withFileTypes: true }).some((e) => (e.isDirectory() ? treeHolds(join(path, e.name), key) : e.isFile() && readFileSync(join(path, e.name)).includes(key)));
}

/** Where the task is in the spool proper (tmp/ is not in it: nothing there ever runs). */
const inSpool = (task: Task): string[] => whereIs(task).filter((p) => !p.startsWith('tmp/'));

/** Recovery: reclaim the claims of OWNER, taken for dead (its lock stale or gone). */
function reclaim(now = Date.now()): string[] {
  return reclaimOwner(layout, ownerDir, existsSync(ownerDir) ? readdirSync(ownerDir) : [], now);
}

/** Recovery: the tmp/ and record sweeps, as a daemon runs them `aged` ms from now. */
function sweep(aged: number): void {
  const now = Date.now() + aged;
  sweepTmp(layout, readdirSync(layout.tmp), now);
  for (const d of [layout.state, layout.quarantine]) sweepRecordDebris(d, readdirSync(d), now);
}
const AN_HOUR_ON = DEBRIS_AGE_MS + 60_000;

/** Files of a folder whose name starts with `prefix`. */
const debris = (folder: string, prefix: string): string[] => readdirSync(folder).filter((n) => n.startsWith(prefix));

function failureRecord(task: Task, attempts: number): FailureRecord {
  return { id: task.id, name: 'echo', attempts, at: Date.now(), error: { name: 'Error', message: `boom ${task.key}` } };
}

describe('each transition', () => {
  it('enqueue: the whole file lands in incoming/ by way of tmp/, which it leaves empty', () => {
    const t = newTask('enqueued');
    expect(writeTaskSync(layout, t.fileName, t.bytes, { fsync: true })).toBe(join(layout.incoming, t.fileName));
    expect(readFileSync(join(layout.incoming, t.fileName))).toEqual(t.bytes);
    expect(readdirSync(layout.tmp)).toEqual([]);
    // A second writer of the same name never shares the staging file (O_EXCL).
    stageTaskSync(layout, t.fileName, t.bytes);
    expect(() => stageTaskSync(layout, t.fileName, t.bytes)).toThrow(/EEXIST/);
  });

  it('accept: incoming/ to pending/ under the same name; false once it is gone', () => {
    const t = newTask('accepted', { due: Date.now() + 60_000 });
    place(t, layout.incoming);
    expect(accept(layout, t.fileName)).toBe(true);
    expect(whereIs(t)).toEqual([`pending/${t.fileName}`]);
    expect(accept(layout, t.fileName)).toBe(false);
  });

  it('claim: from incoming/, or from pending/ when another daemon accepted it meanwhile', () => {
    const a = newTask('claim-a');
    const b = newTask('claim-b');
    place(a, layout.incoming);
    place(b, layout.pending);
    expect(claim(layout, ownerDir, a.fileName, 'incoming')).toEqual({ claimed: true, path: join(ownerDir, a.fileName), from: 'incoming' });
    expect(claim(layout, ownerDir, b.fileName, 'incoming')).toEqual({ claimed: true, path: join(ownerDir, b.fileName), from: 'pending' });
    expect([...whereIs(a), ...whereIs(b)]).toEqual([`active/${OWNER}/${a.fileName}`, `active/${OWNER}/${b.fileName}`]);
  });

  it('release: back to incoming/ unchanged (attempt not counted)', () => {
    const t = newTask('released', { attempts: 2 });
    expect(release(place(t, ownerDir), layout)).toBe(true);
    expect(whereIs(t)).toEqual([`incoming/${t.fileName}`]);
    expect(release(join(ownerDir, t.fileName), layout)).toBe(false);
  });

  it('finish: unlinked, or kept in archive/; false once the claim is gone', () => {
    const done = newTask('finished');
    const kept = newTask('archived');
    expect(finish(place(done, ownerDir), layout, false)).toBe(true);
    expect(finish(place(kept, ownerDir), layout, true)).toBe(true);
    expect(whereIs(done)).toEqual([]);
    expect(whereIs(kept)).toEqual([`archive/${kept.fileName}`]);
    expect(finish(join(ownerDir, done.fileName), layout, false)).toBe(false);
    expect(removeClaimed(join(ownerDir, kept.fileName))).toBe(false);
  });

  it('retry later: to pending/ with the new due time and one more attempt', () => {
    const t = newTask('retried', { attempts: 1 });
    const due = Date.now() + 30_000;
    const next = retryLater(place(t, ownerDir), layout, due)!;
    expect(parseTaskName(next)).toEqual(expect.objectContaining({ id: t.id, due, attempts: 2 }));
    expect(whereIs(t)).toEqual([`pending/${next}`]);
    expect(retryLater(join(ownerDir, t.fileName), layout, due)).toBeUndefined();
  });

  it('bury: to dead/ with its failure record in state/<id>.json', () => {
    const t = newTask('buried', { attempts: 3 });
    const record = failureRecord(t, 4);
    const next = bury(place(t, ownerDir), layout, record)!;
    expect(parseTaskName(next)).toEqual(expect.objectContaining({ id: t.id, attempts: 4 }));
    expect(whereIs(t)).toEqual([`dead/${next}`]);
    expect(JSON.parse(readFileSync(join(layout.state, `${t.id}.json`), 'utf8'))).toEqual(record);
    expect(debris(layout.state, RECORD_STAGING_PREFIX)).toEqual([]);
  });

  it('quarantine: renamed (a link never followed) beside its reason; nothing left when the file was gone', () => {
    const target = join(dir, 'secret');
    writeFileSync(target, 'not to be read');
    symlinkSync(target, join(layout.incoming, 'a-link'));
    const to = quarantine(layout, join(layout.incoming, 'a-link'), 'a-link', 'a symbolic link', 'incoming', 1234)!;
    expect(lstatSync(to).isSymbolicLink()).toBe(true);
    expect(JSON.parse(readFileSync(to + QUARANTINE_REASON_SUFFIX, 'utf8'))).toEqual({ reason: 'a symbolic link', from: 'incoming', file: 'a-link', at: 1234 });
    expect(readdirSync(layout.incoming)).toEqual([]);
    expect(quarantine(layout, join(layout.incoming, 'gone'), 'gone', 'whatever', 'incoming', 1234)).toBeUndefined();
    expect(readdirSync(layout.quarantine).sort()).toEqual([to.slice(layout.quarantine.length + 1), to.slice(layout.quarantine.length + 1) + QUARANTINE_REASON_SUFFIX]);
  });

  it('revoke: takes the entry out with its reason and failure record, follows it into pending/, never touches a claim', () => {
    const queued = newTask('revoke-queued');
    place(queued, layout.pending); // accepted after it was listed in incoming/
    writeFailureRecord(layout, failureRecord(queued, 1));
    expect(revoke(layout, { paths: [join(layout.incoming, queued.fileName), join(layout.pending, queued.fileName)], quarantined: false, id: queued.id })).toEqual({ kind: 'revoked' });
    expect(whereIs(queued)).toEqual([]);
    expect(existsSync(join(layout.state, `${queued.id}.json`))).toBe(false);

    // A quarantined directory (dropped into incoming/ whole), with its reason.
    const bad = join(layout.quarantine, 'dropped-dir');
    mkdirSync(join(bad, 'inner'), { recursive: true });
    writeFileSync(join(bad, 'inner', 'f'), 'x');
    writeFileSync(bad + QUARANTINE_REASON_SUFFIX, '{}');
    expect(revoke(layout, { paths: [bad], quarantined: true })).toEqual({ kind: 'revoked' });
    expect(readdirSync(layout.quarantine)).toEqual([]);

    const running = newTask('revoke-running');
    place(running, ownerDir);
    expect(revoke(layout, { paths: [join(layout.incoming, running.fileName), join(layout.pending, running.fileName)], quarantined: false, id: running.id })).toEqual({ kind: 'absent' });
    expect(whereIs(running)).toEqual([`active/${OWNER}/${running.fileName}`]);
    expect(readdirSync(layout.tmp)).toEqual([]);
  });

  it('bury a task no daemon runs: claimed, its record written, dead/ with its attempts unchanged; nothing written when another process took it first', () => {
    const t = newTask('ghost', { attempts: 2 });
    place(t, layout.incoming);
    const record = { ...failureRecord(t, 2), error: { name: 'UnknownTaskError', message: 'no daemon runs it' } };
    expect(buryUnclaimed(layout, ownerDir, t.fileName, 'incoming', record)).toBe(t.fileName);
    expect(whereIs(t)).toEqual([`dead/${t.fileName}`]);
    expect(JSON.parse(readFileSync(join(layout.state, `${t.id}.json`), 'utf8')).error.name).toBe('UnknownTaskError');
    const gone = newTask('ghost-gone');
    expect(buryUnclaimed(layout, ownerDir, gone.fileName, 'incoming', failureRecord(gone, 0))).toBeUndefined();
    expect(existsSync(join(layout.state, `${gone.id}.json`))).toBe(false);
  });

  it('expire: deletes a dead letter and then its record; false (the record left alone) once the file is gone', () => {
    const t = newTask('old', { attempts: 3 });
    place(t, layout.dead);
    writeFailureRecord(layout, failureRecord(t, 3));
    expect(expire(layout, join(layout.dead, t.fileName), t.id)).toBe(true);
    expect(whereIs(t)).toEqual([]);
    expect(existsSync(join(layout.state, `${t.id}.json`))).toBe(false);
    writeFailureRecord(layout, failureRecord(t, 3));
    expect(expire(layout, join(layout.dead, t.fileName), t.id)).toBe(false);
    expect(existsSync(join(layout.state, `${t.id}.json`))).toBe(true);
  });

  it('revive: a dead letter back to incoming/, due now, attempts 0, its record deleted (it starts afresh); false once gone; an error without incoming/', () => {
    const t = newTask('revived', { attempts: 5 });
    place(t, layout.dead);
    writeFailureRecord(layout, failureRecord(t, 5));
    const now = Date.now();
    expect(revive(layout, join(layout.dead, t.fileName), parseTaskName(t.fileName)!, now)).toBe(true);
    const [at] = whereIs(t);
    expect(parseTaskName(at!.slice('incoming/'.length))).toEqual(expect.objectContaining({ id: t.id, due: now, attempts: 0 }));
    expect(existsSync(join(layout.state, `${t.id}.json`))).toBe(false);
    expect(revive(layout, join(layout.dead, t.fileName), parseTaskName(t.fileName)!, now)).toBe(false);

    const u = newTask('revive-nowhere');
    place(u, layout.dead);
    rmSync(layout.incoming, { recursive: true });
    expect(() => revive(layout, join(layout.dead, u.fileName), parseTaskName(u.fileName)!, now)).toThrow(/ENOENT/);
    expect(whereIs(u)).toEqual([`dead/${u.fileName}`]);
  });

  it("reclaim: a dead owner's claims to incoming/, due now, attempt counted; a bad name as it is; its directory and lock removed", () => {
    const t = newTask('reclaimed', { attempts: 1, due: Date.now() + 60_000 });
    place(t, ownerDir);
    writeFileSync(join(ownerDir, 'not-a-task'), 'x');
    const now = Date.now();
    const names = reclaim(now);
    expect(names.sort()).toEqual([formatTaskName({ ...parseTaskName(t.fileName)!, due: now, attempts: 2 }), 'not-a-task'].sort());
    expect(readdirSync(layout.incoming).sort()).toEqual(names.sort());
    expect(existsSync(ownerDir)).toBe(false);
    expect(existsSync(ownerLockPath(layout, OWNER))).toBe(false);
  });
});

describe('claim on ENOENT', () => {
  it('claims a file that is there', () => {
    writeFileSync(join(sources.incoming, 't1'), 'x');
    expect(claim(sources, ownerDir, 't1', 'incoming')).toEqual({ claimed: true, path: join(ownerDir, 't1'), from: 'incoming' });
  });

  it('a file gone from incoming/ and pending/ is a lost race, nothing more', () => {
    expect(claim(sources, ownerDir, 't1', 'incoming')).toEqual({ claimed: false });
  });

  it('says so when its own claim directory is gone, and leaves the file where it was', () => {
    writeFileSync(join(sources.incoming, 't1'), 'x');
    rmdirSync(ownerDir);
    expect(claim(sources, ownerDir, 't1', 'incoming')).toEqual({ claimed: false, ownerGone: true });
    expect(existsSync(join(sources.incoming, 't1'))).toBe(true);
  });
});

describe('the claim race', () => {
  it('two processes claiming the same 2,000 files: each file is claimed by exactly one, none is lost', async () => {
    const names = Array.from({ length: 2000 }, (_, i) => newTask(`race-${i}`).fileName);
    for (const n of names) writeFileSync(join(layout.incoming, n), 'x');
    const other = join(layout.active, 'host-2-fedcba');
    mkdirSync(other);
    const list = join(dir, 'names.json');
    writeFileSync(list, JSON.stringify(names));
    // Each claimer says it is ready, then waits for a go file, so both are loaded and race at once:
    // one from the first name on, the other from the last name back, so they must meet.
    const go = join(dir, 'go');
    const script = `
      import { existsSync, readFileSync, writeFileSync } from 'node:fs';
      const { claim } = await import(process.argv[1]);
      const [layout, ownerDir, list, ready, go, backwards] = JSON.parse(process.argv[2]);
      const names = JSON.parse(readFileSync(list, 'utf8'));
      if (backwards) names.reverse();
      writeFileSync(ready, '');
      while (!existsSync(go));
      let won = 0;
      for (const n of names) if (claim(layout, ownerDir, n, 'incoming').claimed) won++;
      process.stdout.write(String(won));
    `;
    const claimer = (owner: string, ready: string, backwards: boolean) =>
      new Promise<number>((done, fail) => {
        const args = JSON.stringify([sources, owner, list, ready, go, backwards]);
        const child = spawn(process.execPath, ['--input-type=module', '-e', script, join(ROOT, 'dist/spool/protocol.js'), args], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        child.on('close', (code) => (code === 0 ? done(Number(out)) : fail(new Error(`claimer exited ${code}`))));
      });
    const ready = [join(dir, 'ready-a'), join(dir, 'ready-b')];
    const both = Promise.all([claimer(ownerDir, ready[0]!, false), claimer(other, ready[1]!, true)]);
    await waitFor(() => ready.every((r) => existsSync(r)), { what: 'both claimers loaded' });
    writeFileSync(go, '');
    const [wonA, wonB] = await both;
    const inA = readdirSync(ownerDir);
    const inB = readdirSync(other);
    expect(wonA + wonB).toBe(names.length);
    expect([inA.length, inB.length]).toEqual([wonA, wonB]);
    expect([...inA, ...inB].sort()).toEqual([...names].sort());
    expect(readdirSync(layout.incoming)).toEqual([]);
    // Both took part: they raced, rather than one claiming everything before the other started.
    expect(Math.min(wonA, wonB), `won: ${wonA} and ${wonB}`).toBeGreaterThan(0);
  });
});

/**
 * A crash after call k of a step: calls 1..k done by hand, the rest never.
 * Then the recovery of the table's "who picks it up" column runs, and the task
 * must be in exactly one place (or done, where the step ended it).
 */
describe('a crash after each system call of each step, then its recovery', () => {
  it('enqueue 1 (tmp/ written): not enqueued; a fresh staging file is left alone, one over an hour old is swept', () => {
    const t = newTask('enqueue-1');
    stageTaskSync(layout, t.fileName, t.bytes);
    expect(inSpool(t)).toEqual([]);
    sweep(0);
    expect(whereIs(t)).toEqual([`tmp/${t.fileName}`]);
    sweep(AN_HOUR_ON);
    expect(whereIs(t)).toEqual([]);
  });

  it('enqueue 2 (renamed): in incoming/, whole', () => {
    const t = newTask('enqueue-2');
    stageTaskSync(layout, t.fileName, t.bytes);
    publishStagedSync(layout, t.fileName);
    sweep(AN_HOUR_ON);
    expect(whereIs(t)).toEqual([`incoming/${t.fileName}`]);
    expect(readFileSync(join(layout.incoming, t.fileName))).toEqual(t.bytes);
  });

  it('claim: the dead owner\'s claim is reclaimed to incoming/ with the attempt counted', () => {
    const t = newTask('claim');
    place(t, layout.pending);
    claim(layout, ownerDir, t.fileName, 'pending');
    expect(inSpool(t)).toEqual([`active/${OWNER}/${t.fileName}`]);
    const [next] = reclaim();
    expect(inSpool(t)).toEqual([`incoming/${next}`]);
    expect(parseTaskName(next!)!.attempts).toBe(1);
  });

  it('release, accept, retry later, revive, finish: one rename (or unlink) each, whose result is the recovery state', () => {
    const released = newTask('release', { attempts: 1 });
    release(place(released, ownerDir), layout);
    const accepted = newTask('accept', { due: Date.now() + 60_000 });
    place(accepted, layout.incoming);
    accept(layout, accepted.fileName);
    const retried = newTask('retry');
    const retriedAs = retryLater(place(retried, ownerDir), layout, Date.now() + 1000)!;
    const revived = newTask('revive', { attempts: 4 });
    revive(layout, place(revived, layout.dead), parseTaskName(revived.fileName)!, Date.now());
    const finished = newTask('finish');
    finish(place(finished, ownerDir), layout, false);
    // The dead owner's reclaim finds nothing of theirs left to move.
    expect(reclaim()).toEqual([]);
    sweep(AN_HOUR_ON);
    expect(inSpool(released)).toEqual([`incoming/${released.fileName}`]);
    expect(inSpool(accepted)).toEqual([`pending/${accepted.fileName}`]);
    expect(inSpool(retried)).toEqual([`pending/${retriedAs}`]);
    expect(inSpool(revived)).toHaveLength(1);
    expect(inSpool(revived)[0]).toMatch(/^incoming\/.*-a0-echo\.json$/);
    expect(whereIs(finished)).toEqual([]);
  });

  it('bury 1 (record staged, not renamed): reclaimed, attempt counted; the staged record swept once old', () => {
    const t = newTask('bury-1', { attempts: 2 });
    place(t, ownerDir);
    const staged = join(layout.state, `${RECORD_STAGING_PREFIX}999-0badcafe`);
    writeFileSync(staged, '{"id":'); // cut short
    const [next] = reclaim();
    expect(inSpool(t)).toEqual([`incoming/${next}`]);
    expect(parseTaskName(next!)!.attempts).toBe(3);
    sweep(0);
    expect(existsSync(staged)).toBe(true); // may be a write under way
    sweep(AN_HOUR_ON);
    expect(debris(layout.state, RECORD_STAGING_PREFIX)).toEqual([]);
    expect(inSpool(t)).toEqual([`incoming/${next}`]);
  });

  it('bury 2 (record in place, not moved to dead/): reclaimed with its record, which the next failure rewrites', () => {
    const t = newTask('bury-2', { attempts: 2 });
    place(t, ownerDir);
    writeFailureRecord(layout, failureRecord(t, 3));
    const [next] = reclaim();
    expect(inSpool(t)).toEqual([`incoming/${next}`]);
    expect(existsSync(join(layout.state, `${t.id}.json`))).toBe(true);
  });

  it('bury 3 (moved to dead/): a dead letter with its record; reclaim leaves it alone', () => {
    const t = newTask('bury-3', { attempts: 2 });
    const next = bury(place(t, ownerDir), layout, failureRecord(t, 3))!;
    expect(reclaim()).toEqual([]);
    expect(inSpool(t)).toEqual([`dead/${next}`]);
  });

  it('quarantine 1 and 2 (reason staged, or in place, file not moved): the next scan quarantines it again, once', () => {
    // A bad name: each quarantine gives it a fresh prefix, so an orphan reason of the cut-short try stays (harmless).
    const bad = newTask('quarantine-bad');
    writeFileSync(join(layout.incoming, 'no-task-name.txt'), bad.bytes);
    writeFileSync(join(layout.quarantine, `${RECORD_STAGING_PREFIX}999-00000001`), '{"reason":'); // call 1
    writeJsonAtomic(join(layout.quarantine, `1-abcdef-no-task-name.txt${QUARANTINE_REASON_SUFFIX}`), { reason: 'cut short' }); // call 2
    expect(inSpool(bad)).toEqual(['incoming/no-task-name.txt']);
    const to = quarantine(layout, join(layout.incoming, 'no-task-name.txt'), 'no-task-name.txt', 'bad file name', 'incoming', Date.now())!;
    sweep(AN_HOUR_ON);
    expect(inSpool(bad)).toEqual([`quarantine/${to.slice(layout.quarantine.length + 1)}`]);
    expect(existsSync(to + QUARANTINE_REASON_SUFFIX)).toBe(true);
    expect(debris(layout.quarantine, RECORD_STAGING_PREFIX)).toEqual([]);

    // A valid name (a body that does not decode): it keeps its name, so its reason is overwritten.
    const undecodable = newTask('quarantine-body');
    const path = place(undecodable, layout.pending);
    writeJsonAtomic(join(layout.quarantine, undecodable.fileName + QUARANTINE_REASON_SUFFIX), { reason: 'cut short' }); // call 2
    quarantine(layout, path, undecodable.fileName, 'body does not decode', 'pending', Date.now());
    expect(inSpool(undecodable)).toEqual([`quarantine/${undecodable.fileName}`]);
    expect(JSON.parse(readFileSync(join(layout.quarantine, undecodable.fileName + QUARANTINE_REASON_SUFFIX), 'utf8')).reason).toBe('body does not decode');
  });

  it('revoke 1 (taken out into tmp/, not deleted): out of the spool at once; swept once old, a directory too', () => {
    const t = newTask('revoke-1');
    place(t, layout.incoming);
    renameSync(join(layout.incoming, t.fileName), join(layout.tmp, `${REVOKED_PREFIX}999-000000000001`));
    // A revoked quarantined directory (dropped into incoming/ whole).
    const d = newTask('dir-revoked');
    const revokedDir = join(layout.tmp, `${REVOKED_PREFIX}999-000000000002`);
    mkdirSync(join(revokedDir, 'sub'), { recursive: true });
    writeFileSync(join(revokedDir, 'sub', 'f'), d.bytes);
    writeFileSync(join(revokedDir, 'g'), d.bytes);
    expect(inSpool(t)).toEqual([]);
    sweep(0);
    expect(whereIs(t)).toEqual([`tmp/${REVOKED_PREFIX}999-000000000001`]);
    expect(whereIs(d)).toEqual([`tmp/${REVOKED_PREFIX}999-000000000002`]);
    sweep(AN_HOUR_ON);
    expect(whereIs(t)).toEqual([]);
    expect(whereIs(d)).toEqual([]);
    expect(readdirSync(layout.tmp)).toEqual([]);
  });

  it('revoke 2 and 3 (reason or file deleted, failure record not): gone; the orphan record is all that is left', () => {
    const t = newTask('revoke-3', { attempts: 1 });
    place(t, layout.dead);
    writeFailureRecord(layout, failureRecord(t, 1));
    const revoked = join(layout.tmp, `${REVOKED_PREFIX}999-000000000003`);
    renameSync(join(layout.dead, t.fileName), revoked);
    unlinkSync(revoked);
    expect(whereIs(t)).toEqual([]);
    expect(existsSync(join(layout.state, `${t.id}.json`))).toBe(true);
  });

  it('reclaim 1 (some files moved, not all): the next reclaim moves the rest, each attempt counted once', () => {
    const moved = newTask('reclaim-moved', { attempts: 1 });
    const left = newTask('reclaim-left', { attempts: 1 });
    place(moved, ownerDir);
    place(left, ownerDir);
    const now = Date.now();
    const movedAs = formatTaskName({ ...parseTaskName(moved.fileName)!, due: now, attempts: 2 });
    renameSync(join(ownerDir, moved.fileName), join(layout.incoming, movedAs));
    const [leftAs] = reclaim(now);
    expect(inSpool(moved)).toEqual([`incoming/${movedAs}`]);
    expect(inSpool(left)).toEqual([`incoming/${leftAs}`]);
    expect(parseTaskName(leftAs!)!.attempts).toBe(2);
    expect(existsSync(ownerDir) || existsSync(ownerLockPath(layout, OWNER))).toBe(false);
  });

  it('reclaim 2 (claim directory removed, lock not): no task is left behind; the lock is orphaned debris', () => {
    const t = newTask('reclaim-2');
    place(t, ownerDir);
    renameSync(join(ownerDir, t.fileName), join(layout.incoming, t.fileName));
    rmdirSync(ownerDir);
    expect(inSpool(t)).toEqual([`incoming/${t.fileName}`]);
    expect(statSync(ownerLockPath(layout, OWNER)).isDirectory()).toBe(true);
  });

  it("a real daemon's start-up scan and reclaim pick up every state a crash can leave, and each task runs exactly once", async () => {
    const records = join(dir, 'records.jsonl');
    const tasks: Array<{ task: Task; attempt: number }> = [];
    const add = (key: string, attempt: number, leave: (t: Task) => void): void => {
      const task = newTask(key, { attempts: attempt > 0 ? attempt - 1 : 0 });
      leave(task);
      tasks.push({ task, attempt });
    };
    add('after-enqueue', 0, (t) => writeTaskSync(layout, t.fileName, t.bytes));
    add('after-accept', 0, (t) => {
      place(t, layout.incoming);
      accept(layout, t.fileName);
    });
    add('after-release', 0, (t) => release(place(t, ownerDir), layout));
    add('after-retry-later', 1, (t) => retryLater(place(t, ownerDir), layout, Date.now()));
    add('after-revive', 0, (t) => revive(layout, place(t, layout.dead), parseTaskName(t.fileName)!, Date.now()));
    // Left claimed by a dead owner (its lock gone): after the claim, after bury's record.
    add('after-claim', 1, (t) => {
      place(t, layout.incoming);
      claim(layout, ownerDir, t.fileName, 'incoming');
    });
    add('after-bury-record', 1, (t) => {
      place(t, ownerDir);
      writeFailureRecord(layout, failureRecord(t, 1));
    });
    rmdirSync(ownerLockPath(layout, OWNER));
    const daemon = await startServing({ dir: layout.root, imports: ['basic'], records, args: ['--stale-after', '2s', '--scan-interval', '200ms', '--processes', '0'] });
    const ran = await waitFor(
      () => {
        const r = readRecords(records).filter((x) => x.task === 'echo');
        return r.length >= tasks.length && r;
      },
      { what: 'every task to run', explain: () => `${describeSpool(layout.root)}\n${daemon.describe()}` },
    );
    // A later task, enqueued now, run after those: the daemon went past them, and ran none twice.
    const last = newTask('last');
    writeTaskSync(layout, last.fileName, last.bytes);
    await waitFor(() => readRecords(records).some((x) => (x.args as unknown[])[0] === 'last'), { what: 'the last task to run' });
    const runs = readRecords(records).filter((x) => x.task === 'echo' && (x.args as unknown[])[0] !== 'last');
    expect(runs.map((x) => (x.args as unknown[])[0]).sort()).toEqual(tasks.map((t) => t.task.key).sort());
    for (const { task, attempt } of tasks) expect(ran.find((x) => x.id === task.id), task.key).toEqual(expect.objectContaining({ attempt }));
    for (const { task } of tasks) expect(inSpool(task), task.key).toEqual([]);
    expect(existsSync(ownerDir)).toBe(false);
  });
});
