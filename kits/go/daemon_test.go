package spool

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests need a built checkout of spoolerd (npm run build) at $SPOOLERD_ROOT and node on PATH;
// test/kit-go.test.ts sets SPOOLERD_ROOT, so CI runs them. Without it they skip, saying so.
func checkout(t *testing.T) string {
	t.Helper()
	root := os.Getenv("SPOOLERD_ROOT")
	if root == "" {
		t.Skip("SPOOLERD_ROOT is not set: point it at a checkout of spoolerd built with npm run build to run the daemon and the conformance checker")
	}
	if _, err := os.Stat(filepath.Join(root, "dist", "cli", "spoolerd.js")); err != nil {
		t.Fatalf("SPOOLERD_ROOT=%s has no dist/cli/spoolerd.js: run npm run build there (%v)", root, err)
	}
	return root
}

// A run of a fixture task: test/fixtures/tasks/_record.mjs appends one JSON line per run.
type run struct {
	Task string `json:"task"`
	Time int64  `json:"time"`
	Args []any  `json:"args"`
	ID   string `json:"id"`
	File string `json:"file"`
}

func readRuns(t *testing.T, path string) []run {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var runs []run
	lines := strings.Split(string(data), "\n")
	for _, line := range lines[:len(lines)-1] { // the last line may still be being written
		var r run
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("bad record %q: %v", line, err)
		}
		runs = append(runs, r)
	}
	return runs
}

// Tasks enqueued by the kit with mixed priorities, postpones and unique keys, served by a real
// spoolerd (one task at a time): each runs once, the ones due at the start in priority order, none
// before its due time; a kept result is read back with Wait.
func TestDaemonEndToEnd(t *testing.T) {
	root := checkout(t)
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "spool"))
	if err != nil {
		t.Fatal(err)
	}
	records := filepath.Join(dir, "records.jsonl")

	many, err := s.EnqueueMany([]Request{
		{Name: "echo", Args: []any{"low"}, Options: Options{Priority: Int(70)}},
		{Name: "echo", Args: []any{"high"}, Options: Options{Priority: Int(10)}},
		{Name: "echo", Args: []any{"mid"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	u1, err := s.Enqueue("echo", []any{"u1"}, Options{Priority: Int(40), Unique: Key("k")})
	if err != nil {
		t.Fatal(err)
	}
	u2, err := s.Enqueue("echo", []any{"u2"}, Options{Priority: Int(30), Unique: Key("k")})
	if err != nil || !u2.Existing || u2.ID != u1.ID {
		t.Fatalf("a second enqueue with the key held: %+v %v, want u1's id %s", u2, err, u1.ID)
	}
	add, err := s.Enqueue("add", []any{2, 3}, Options{Priority: Int(60), Unique: Key("k"), KeepResult: time.Minute})
	if err != nil || add.Existing {
		t.Fatalf("keys are per task name, add's key k is free: %+v %v", add, err)
	}
	tasks := map[string]Task{"low": many[0], "high": many[1], "mid": many[2], "u1": u1}
	if got := len(names(t, filepath.Join(s.Dir(), "incoming"))); got != 5 {
		t.Fatalf("incoming/ holds %d tasks, want 5 (u2 added nothing)", got)
	}

	var stderr bytes.Buffer
	daemon := exec.Command("node", filepath.Join(root, "dist/cli/spoolerd.js"), "--dir", s.Dir(),
		"--import", filepath.Join(root, "test/fixtures/tasks/basic.mjs"), "--import", filepath.Join(root, "test/fixtures/tasks/results.mjs"),
		"--processes", "0", "--concurrency", "1", "--scan-interval", "200ms", "--log-format", "json")
	daemon.Dir = root
	daemon.Env = append(cleanEnv(), "SPOOLERD_TEST_RECORDS="+records)
	daemon.Stderr = &stderr
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- daemon.Wait() }()
	defer func() {
		daemon.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("daemon log:\n%s", stderr.String())
		}
	}()

	result, err := s.Wait(add.ID, 30*time.Second)
	if err != nil || !reflect.DeepEqual(result.Value, map[string]any{"sum": 5.0}) || result.ID != add.ID || result.Name != "add" {
		t.Fatalf("add(2, 3)'s result: %+v %v", result, err)
	}

	waitForRuns(t, records, 4)
	// The daemon is serving now: postponed tasks enqueued from here on show whether one runs early.
	asked := map[string]int64{} // the earliest time a postponed task may run, by this host's clock
	for _, p := range []struct {
		label    string
		priority int
		postpone time.Duration
	}{{"soon", 5, 700 * time.Millisecond}, {"later", 95, 1200 * time.Millisecond}, {"now", 99, 0}} {
		before := time.Now()
		task, err := s.Enqueue("echo", []any{p.label}, Options{Priority: Int(p.priority), Postpone: p.postpone})
		if err != nil {
			t.Fatal(err)
		}
		tasks[p.label] = task
		asked[p.label] = before.Add(p.postpone).UnixMilli()
	}
	waitForRuns(t, records, len(tasks))
	// Stopped (SIGTERM, a clean exit) before the final count, so a second run of any task would be in it.
	daemon.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		exited <- nil
	case <-time.After(20 * time.Second):
		t.Fatal("the daemon did not stop within 20 s of SIGTERM")
	}
	runs := readRuns(t, records)
	order := []string{}
	seen := map[string]bool{}
	for _, r := range runs {
		label, _ := r.Args[0].(string)
		task, ok := tasks[label]
		if r.Task != "echo" || !ok || seen[label] || r.ID != task.ID {
			t.Fatalf("run %+v: not one of the tasks enqueued, or a second run (runs: %+v)", r, runs)
		}
		seen[label] = true
		if r.Time < task.Due {
			t.Errorf("%s ran at %d, before its due time %d", label, r.Time, task.Due)
		}
		if r.Time < asked[label] {
			t.Errorf("%s ran at %d, before the postpone asked for (%d)", label, r.Time, asked[label])
		}
		if _, later := asked[label]; !later {
			order = append(order, label)
		}
	}
	if want := []string{"high", "u1", "mid", "low"}; !reflect.DeepEqual(order, want) {
		t.Errorf("the tasks due at the start ran in the order %v, want priority order %v", order, want)
	}
	for _, sub := range []string{"incoming", "pending", "unique", "tmp"} {
		if got := names(t, filepath.Join(s.Dir(), sub)); len(got) != 0 {
			t.Errorf("%s/ holds %v after the drain (keys are released when a task is claimed)", sub, got)
		}
	}
}

func waitForRuns(t *testing.T, records string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(readRuns(t, records)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s only these ran: %+v", readRuns(t, records))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The environment without SPOOL_DIR and SPOOLERD_* (the daemon gets its spool from --dir only).
func cleanEnv() []string {
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SPOOL_DIR=") && !strings.HasPrefix(kv, "SPOOLERD_") {
			env = append(env, kv)
		}
	}
	return env
}
