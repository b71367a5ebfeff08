/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`, e.g. the daemon run by
 * bench:peers with BENCH_SPOOLERD_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR"):
 * self time per function, heaviest first, and inclusive time per function.
 *
 *   node dist/bench/peers/cpuprofile-summary.js FILE [--top N] [--last-seconds S] [--skip-last-seconds S]
 *
 * --last-seconds keeps only the samples of the profile's last S seconds (the
 * backlog workload's idle minute ends when the daemon is stopped), minus the
 * final --skip-last-seconds (the shutdown itself).
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const args = process.argv.slice(2);
const file = args[0];
if (!file) {
  process.stderr.write('usage: cpuprofile-summary FILE [--top N] [--last-seconds S] [--skip-last-seconds S]\n');
  process.exit(2);
}
const option = (name: string, fallback: number): number => {
  const i = args.indexOf(name);
  return i < 0 ? fallback : Number(args[i + 1]);
};
const top = option('--top', 25);
const lastUs = option('--last-seconds', Infinity) * 1e6;
const skipUs = option('--skip-last-seconds', 0) * 1e6;

const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const label = (n: ProfileNode): string => {
  const f = n.callFrame;
  const where = f.url ? ` ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}` : '';
  return `${f.functionName || '(anonymous)'}${where}`;
};

// Sample i lasted timeDeltas[i + 1]; attribute it to the node sampled.
const timeOfNode = new Map<number, number>();
let t = profile.startTime;
const windowEnd = profile.endTime - skipUs;
const windowStart = Number.isFinite(lastUs) ? windowEnd - lastUs : -Infinity;
for (let i = 0; i < profile.samples.length; i++) {
  t += profile.timeDeltas[i] ?? 0;
  const dt = profile.timeDeltas[i + 1] ?? 0;
  if (t < windowStart || t > windowEnd) continue;
  const id = profile.samples[i]!;
  timeOfNode.set(id, (timeOfNode.get(id) ?? 0) + dt);
}

const self = new Map<string, number>();
const inclusive = new Map<string, number>();
let total = 0;
let busy = 0;
for (const [id, us] of timeOfNode) {
  const node = byId.get(id)!;
  total += us;
  if (node.callFrame.functionName !== '(idle)') busy += us;
  self.set(label(node), (self.get(label(node)) ?? 0) + us);
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const l = label(byId.get(cur)!);
    if (seen.has(l)) continue;
    seen.add(l);
    inclusive.set(l, (inclusive.get(l) ?? 0) + us);
  }
}

const print = (title: string, m: Map<string, number>): void => {
  console.log(`-- ${title}`);
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${(us / 1000).toFixed(1).padStart(9)} ms ${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}`);
  }
};
console.log(`window ${(total / 1e6).toFixed(1)} s, not idle ${(busy / 1000).toFixed(0)} ms (${((100 * busy) / total).toFixed(2)}% of one core)`);
print('self time', self);
print('inclusive time', inclusive);
