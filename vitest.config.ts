import { defineConfig } from 'vitest/config';

/**
 * Most test files wait on real processes (a daemon's start, a task's end) far
 * more than they compute, so two of them run at once. Files whose assertions
 * depend on timing under load (stalls, clocks, slots, pause latency), or
 * that build the multi-host rig (network namespaces, sshfs mounts: one rig
 * at a time), run alone, after the others.
 */
const ALONE = [
  'test/multihost*.test.ts',
  'test/daemon-stall.test.ts',
  'test/daemon-clock-skew.test.ts',
  'test/daemon-periodic.test.ts',
  'test/daemon-pause.test.ts',
  'test/daemon-limits.test.ts',
  'test/daemon-io-threads.test.ts',
  'test/daemon-backlog-window.test.ts',
  'test/daemon-flood.test.ts',
  'test/owner-lock.test.ts',
];

export default defineConfig({
  test: {
    // Tests spawn real processes on real directories; give slow shared machines room.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: { name: 'shared', include: ['test/**/*.test.ts'], exclude: ALONE, maxWorkers: 2, sequence: { groupOrder: 0 } },
      },
      {
        extends: true,
        test: { name: 'alone', include: ALONE, maxWorkers: 1, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
