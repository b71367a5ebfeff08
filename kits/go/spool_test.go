package spool

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SPOOL-FORMAT.md, "File name": the one expression every valid name matches.
var fileName = regexp.MustCompile(`^(\d{2})-(\d{13})-(\d{13}[0-9a-f]{16})-a(0|[1-9]\d{0,5})-([A-Za-z_][A-Za-z0-9_.:-]{0,127})\.(msgpack|json)$`)

func open(t *testing.T) *Spool {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "spool"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func TestEnqueueWritesOneCompleteFileIntoIncoming(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	s := open(t)
	before := time.Now().UnixMilli()
	task, err := s.Enqueue("sendEmail", []any{"a@example.com", "hi ✓", 3, -0.0, 0.5, nil, true, map[string]any{"b": []int{1}, "a": "\"\\\n\x01"}}, Options{})
	after := time.Now().UnixMilli()
	if err != nil {
		t.Fatal(err)
	}
	if got := names(t, filepath.Join(s.Dir(), "incoming")); len(got) != 1 || got[0] != task.File {
		t.Fatalf("incoming/ holds %v, want [%s]", got, task.File)
	}
	if got := names(t, filepath.Join(s.Dir(), "tmp")); len(got) != 0 {
		t.Fatalf("tmp/ holds debris: %v", got)
	}
	m := fileName.FindStringSubmatch(task.File)
	if m == nil || m[1] != "50" || m[3] != task.ID || m[4] != "0" || m[5] != "sendEmail" || m[6] != "json" {
		t.Fatalf("bad file name %q (id %s)", task.File, task.ID)
	}
	if m[2] != task.ID[:13] || task.Due < before-50 || task.Due > after+50 {
		t.Fatalf("a task due now has due %s and creation %s, want both the time of the enqueue (%d..%d)", m[2], task.ID[:13], before, after)
	}
	path := filepath.Join(s.Dir(), "incoming", task.File)
	body, _ := os.ReadFile(path)
	want := `{"version":1,"type":"fcall","args":["a@example.com","hi ✓",3,0,0.5,null,true,{"a":"\"\\\n\u0001","b":[1]}]}`
	if string(body) != want {
		t.Fatalf("body\n got %s\nwant %s", body, want)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, want 0644 under umask 022 (the daemon must read it)", st.Mode().Perm())
	}
}

func TestOptionsGoIntoTheNameAndTheBody(t *testing.T) {
	s := open(t)
	s.Fsync = true
	before := time.Now().UnixMilli()
	task, err := s.Enqueue("cleanup", nil, Options{Priority: Int(0), Postpone: 90 * time.Second, Retries: Int(0), KeepResult: 1500 * time.Microsecond, Unique: Key("k\"1"), UniqueWhileRunning: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(task.File, "00-") || task.Due < before+90_000 || task.Due > time.Now().UnixMilli()+90_000+1100 {
		t.Fatalf("priority 0 and a 90 s postpone gave %s (enqueued at %d)", task.File, before)
	}
	body, _ := os.ReadFile(filepath.Join(s.Dir(), "incoming", task.File))
	want := `{"version":1,"type":"fcall","args":[],"retry":{"limit":0},"keepResult":2,"unique":"k\"1","uniqueWhile":"running"}`
	if string(body) != want {
		t.Fatalf("body\n got %s\nwant %s", body, want)
	}
	none, err := s.Enqueue("cleanup", nil, Options{KeepResult: KeepNoResult})
	if err != nil {
		t.Fatal(err)
	}
	if body, _ := os.ReadFile(filepath.Join(s.Dir(), "incoming", none.File)); !strings.HasSuffix(string(body), `"args":[],"keepResult":0}`) {
		t.Fatalf("KeepNoResult wrote %s", body)
	}
}

func TestFloatsAreWrittenAsJavaScriptWritesThem(t *testing.T) {
	for f, want := range map[float64]string{1e20: "100000000000000000000", 1e21: "1e+21", 1e-7: "1e-7", 1.5e-300: "1.5e-300", math.MaxFloat64: "1.7976931348623157e+308", -2.0: "-2", float64(float32(0.1)): "0.10000000149011612"} {
		got, err := appendFloat(nil, f, "x")
		if err != nil || string(got) != want {
			t.Errorf("%v: got %s (%v), want %s", f, got, err, want)
		}
	}
}

func TestRefusedInputWritesNothing(t *testing.T) {
	s := open(t)
	deep := any("leaf")
	for i := 0; i < 62; i++ {
		deep = []any{deep}
	}
	if _, err := s.Enqueue("deep", []any{deep}, Options{}); err != nil {
		t.Fatalf("an argument nested 62 deep is allowed (args is level 2): %v", err)
	}
	os.Remove(filepath.Join(s.Dir(), "incoming", names(t, filepath.Join(s.Dir(), "incoming"))[0]))
	type point struct{ X int }
	cycle := []any{nil}
	cycle[0] = cycle
	cases := []struct {
		what string
		name string
		args []any
		opts Options
		want string
	}{
		{"a space in the name", "send email", nil, Options{}, "name"},
		{"a digit first", "1task", nil, Options{}, "name"},
		{"a name of 129 characters", strings.Repeat("a", 129), nil, Options{}, "name"},
		{"priority 100", "t", nil, Options{Priority: Int(100)}, "priority"},
		{"priority -1", "t", nil, Options{Priority: Int(-1)}, "priority"},
		{"negative retries", "t", nil, Options{Retries: Int(-1)}, "retries"},
		{"a negative postpone", "t", nil, Options{Postpone: -time.Second}, "postpone"},
		{"NaN", "t", []any{1, math.NaN()}, Options{}, "task.args[1]"},
		{"+Inf in a map", "t", []any{map[string]any{"when": math.Inf(1)}}, Options{}, "task.args[0].when"},
		{"2^53", "t", []any{int64(1) << 53}, Options{}, "task.args[0]"},
		{"-2^53", "t", []any{-(int64(1) << 53)}, Options{}, "task.args[0]"},
		{"a uint64 beyond", "t", []any{uint64(math.MaxUint64)}, Options{}, "task.args[0]"},
		{"bytes", "t", []any{[]byte("x")}, Options{}, "task.args[0]"},
		{"a struct", "t", []any{point{1}}, Options{}, "task.args[0]"},
		{"a time", "t", []any{time.Now()}, Options{}, "task.args[0]"},
		{"a function", "t", []any{func() {}}, Options{}, "task.args[0]"},
		{"invalid UTF-8", "t", []any{"\xff"}, Options{}, "task.args[0]"},
		{"invalid UTF-8 in a key", "t", []any{map[string]int{"\xc0\x80": 1}}, Options{}, "task.args[0] (a key)"},
		{"a map with int keys", "t", []any{map[int]int{1: 1}}, Options{}, "task.args[0]"},
		{"nested 63 deep", "t", []any{[]any{deep}}, Options{}, "task.args[0]" + strings.Repeat("[0]", 62)},
		{"a cycle", "t", cycle, Options{}, "task.args" + strings.Repeat("[0]", 63)},
		{"a unique key of 1025 characters", "t", nil, Options{Unique: Key(strings.Repeat("é", 1025))}, "unique"},
		{"a unique key of invalid UTF-8", "t", nil, Options{Unique: Key("\xff")}, "unique"},
		{"an empty unique key", "t", nil, Options{Unique: Key("")}, "unique"},
		{"only uniqueWhileRunning", "t", nil, Options{UniqueWhileRunning: true}, "unique"},
		{"a body over the cap", "t", []any{strings.Repeat("x", DefaultMaxBytes)}, Options{}, "task"},
	}
	for _, c := range cases {
		_, err := s.Enqueue(c.name, c.args, c.opts)
		var invalid *InvalidInputError
		if !errors.As(err, &invalid) || invalid.Field != c.want {
			t.Errorf("%s: got %v, want an InvalidInputError on %s", c.what, err, c.want)
		}
	}
	if got := append(names(t, filepath.Join(s.Dir(), "incoming")), names(t, filepath.Join(s.Dir(), "tmp"))...); len(got) != 0 {
		t.Fatalf("refused enqueues left files: %v", got)
	}
	if _, err := s.EnqueueMany([]Request{{Name: "ok"}, {Name: "t", Args: []any{math.NaN()}}}); !IsInvalidInput(err) {
		t.Fatalf("EnqueueMany with a bad request: %v", err)
	}
	if got := names(t, filepath.Join(s.Dir(), "incoming")); len(got) != 0 {
		t.Fatalf("EnqueueMany with a bad request added %v", got)
	}
	tasks, err := s.EnqueueMany([]Request{{Name: "a"}, {Name: "b", Options: Options{Priority: Int(1)}}})
	if err != nil || len(tasks) != 2 || len(names(t, filepath.Join(s.Dir(), "incoming"))) != 2 {
		t.Fatalf("EnqueueMany: %v %v", tasks, err)
	}
}

func TestAUniqueKeyHeldReturnsItsHolder(t *testing.T) {
	s := open(t)
	first, err := s.Enqueue("sendEmail", []any{1}, Options{Unique: Key("a@example.com"), Priority: Int(20)})
	if err != nil || first.Existing {
		t.Fatalf("first: %+v %v", first, err)
	}
	second, err := s.Enqueue("sendEmail", []any{2}, Options{Unique: Key("a@example.com")})
	if err != nil || !second.Existing || second.ID != first.ID || second.File != first.File || second.Priority != 20 || second.Due != first.Due {
		t.Fatalf("second: %+v %v, want the holder %+v", second, err, first)
	}
	other, err := s.Enqueue("reindex", nil, Options{Unique: Key("a@example.com")})
	if err != nil || other.Existing {
		t.Fatalf("keys are per task name: %+v %v", other, err)
	}
	if got := names(t, filepath.Join(s.Dir(), "incoming")); len(got) != 2 {
		t.Fatalf("incoming/: %v", got)
	}
	if got := names(t, filepath.Join(s.Dir(), "tmp")); len(got) != 0 {
		t.Fatalf("tmp/ holds debris: %v", got)
	}
	// The key file: sha256("sendEmail\na@example.com") as SPOOL-FORMAT.md's shell line computes it.
	data, err := os.ReadFile(filepath.Join(s.Dir(), "unique", "9dee18c4a472c932028232eb7adb3313cb940cc99c845cc2da98c8fa10457556"))
	var rec map[string]any
	if err != nil || json.Unmarshal(data, &rec) != nil || rec["id"] != first.ID || rec["file"] != first.File || rec["key"] != "a@example.com" || rec["while"] != "pending" || rec["version"] != 1.0 {
		t.Fatalf("key file %s (%v)", data, err)
	}
	// Up to 1024 characters, counted as code points: 1024 emoji are 4096 bytes (a key file holds 8 KiB).
	long := strings.Repeat("😀", 1024)
	if task, err := s.Enqueue("sendEmail", nil, Options{Unique: &long}); err != nil || task.Existing {
		t.Fatalf("a key of 1024 emoji: %+v %v", task, err)
	}
	if r, err := readKeyFile(filepath.Join(s.Dir(), "unique", keyFileName("sendEmail", long))); err != nil || r.Key != long {
		t.Fatalf("the key file of 1024 emoji: %v", err)
	}
	// A key file that is not a record (a hostile directory) fails the enqueue, which adds nothing.
	os.Mkdir(filepath.Join(s.Dir(), "unique", keyFileName("t", "dir")), 0o755)
	if _, err := s.Enqueue("t", nil, Options{Unique: Key("dir")}); !errors.As(err, new(*BadKeyFileError)) {
		t.Fatalf("a directory as a key file: %v", err)
	}
	if got := names(t, filepath.Join(s.Dir(), "tmp")); len(got) != 0 {
		t.Fatalf("tmp/ holds debris: %v", got)
	}
}

func TestKeyFileNameIsTheDocumentedHash(t *testing.T) {
	// printf '%s\n%s' sendEmail a@example.com | sha256sum
	if got := keyFileName("sendEmail", "a@example.com"); got != "9dee18c4a472c932028232eb7adb3313cb940cc99c845cc2da98c8fa10457556" {
		t.Fatal(got)
	}
}

func writeResult(t *testing.T, s *Spool, id string, record string) {
	t.Helper()
	dir := filepath.Join(s.Dir(), "results")
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, id+".json"), []byte(record), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWaitReadsTheRecordAndTypesEachEnding(t *testing.T) {
	s := open(t)
	id := func(n int) string { return fmt.Sprintf("1763797190000%016x", n) }
	writeResult(t, s, id(0), `{"version":1,"id":"`+id(0)+`","name":"add","ending":"processed","value":{"sum":5},"attempts":1,"owner":"o","finishedAt":1,"keepUntil":2}`)
	r, err := s.Wait(id(0), time.Second)
	if err != nil || r.Ending != "processed" || r.Value.(map[string]any)["sum"] != 5.0 || string(r.ValueJSON) != `{"sum":5}` {
		t.Fatalf("processed: %+v %v", r, err)
	}
	endings := []struct {
		record string
		want   error
		code   string
	}{
		{`"ending":"dead","error":{"name":"TypeError","message":"boom","stack":"s"}`, ErrTaskDead, "SPOOL_TASK_DEAD"},
		{`"ending":"skipped","reason":"not today"`, ErrTaskSkipped, "SPOOL_TASK_SKIPPED"},
		{`"ending":"cancelled"`, ErrTaskCancelled, "SPOOL_TASK_CANCELLED"},
		{`"ending":"expired","reason":"not started by then"`, ErrTaskExpired, "SPOOL_TASK_EXPIRED"},
		{`"ending":"processed","valueError":"a Date cannot be encoded"`, ErrResultValueLost, "SPOOL_RESULT_VALUE_LOST"},
	}
	for i, e := range endings {
		writeResult(t, s, id(i+1), `{"version":1,"id":"`+id(i+1)+`","name":"t",`+e.record+`,"attempts":1}`)
		r, err := s.Wait(id(i+1), time.Second)
		var notProcessed *TaskNotProcessedError
		if !errors.Is(err, e.want) || !errors.As(err, &notProcessed) || notProcessed.Code != e.code || r == nil || notProcessed.Result != r {
			t.Errorf("%s: got %v (%+v)", e.record, err, r)
		}
	}
	started := time.Now()
	if _, err := s.Wait(id(9), 100*time.Millisecond); !errors.Is(err, ErrResultTimeout) || time.Since(started) < 100*time.Millisecond {
		t.Fatalf("no record: %v after %v", err, time.Since(started))
	}
	if _, err := s.Wait("../../etc/passwd", time.Second); !IsInvalidInput(err) {
		t.Fatalf("a path as an id: %v", err)
	}
	// A record that appears while Wait polls is read.
	go func() {
		time.Sleep(50 * time.Millisecond)
		writeResult(t, s, id(10), `{"version":1,"id":"`+id(10)+`","name":"t","ending":"processed","value":null}`)
	}()
	if r, err := s.Wait(id(10), 5*time.Second); err != nil || r.Value != nil {
		t.Fatalf("a record that came later: %+v %v", r, err)
	}
}

func TestSpoolTimesNeverMakeAPostponedTaskEarly(t *testing.T) {
	fine := time.UnixMilli(1_763_797_190_123).Add(456 * time.Microsecond)
	if now, due := spoolTimes(fine, 2*time.Millisecond+1, 0); now != 1_763_797_190_123 || due != now {
		t.Fatalf("due now: %d %d", now, due)
	}
	if now, due := spoolTimes(fine, 2*time.Millisecond+1, time.Second); due != now+10+3+1000 {
		t.Fatalf("postponed on a fine-grained filesystem: %d %d", now, due)
	}
	whole := time.Unix(1_763_797_190, 0)
	if now, due := spoolTimes(whole, 0, time.Second); due != now+1010+1000 {
		t.Fatalf("postponed on a whole-second filesystem: %d %d", now, due)
	}
}

func TestReadmeExampleIsTheCompiledExample(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)```go\n.*?\n\n(.*?)```").FindSubmatch(readme)
	body := regexp.MustCompile(`(?s)func Example\(\) \{\n(.*)\n\}`).FindSubmatch(example)
	if block == nil || body == nil {
		t.Fatal("README.md's go block or example_test.go's Example not found")
	}
	dedented := strings.ReplaceAll("\n"+string(body[1]), "\n\t", "\n")[1:] + "\n"
	if string(block[1]) != dedented {
		t.Fatalf("README.md's example and example_test.go's Example differ:\n%s\n---\n%s", block[1], dedented)
	}
}
