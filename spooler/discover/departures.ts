/**
 * The names this process moved out of incoming/ (claims, and moves to
 * pending/), so that the watch event each departure causes is not taken for
 * an arrival (incoming.ts onWatchEvent()). Only a watch reports departures:
 * while incoming/ is not watched (start-up, or too crowded to watch: mode.ts)
 * nothing is recorded. Recorded then, every claim of a crowded incoming/ stayed
 * here until the next listing cleared the set, which the listing pace spaces by
 * 50 times a listing's cost: with a million tasks queued, ~50 s of claims,
 * hundreds of thousands of names (~100 B each).
 */
export class Departures extends Set<string> {
  private recording = false;

  /** incoming/ is watched (or its watch is being set up) from now on: departures are recorded. */
  record(): void {
    this.recording = true;
  }

  /** incoming/ is not watched from now on: nothing is recorded, and what was is dropped. */
  ignore(): void {
    this.recording = false;
    this.clear();
  }

  override add(fileName: string): this {
    if (this.recording) super.add(fileName);
    return this;
  }
}
