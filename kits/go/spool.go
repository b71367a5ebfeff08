// Package spool enqueues tasks into a spoolerd spool and reads their results,
// following SPOOL-FORMAT.md ("File name", "Body", "Enqueueing", "Unique keys",
// "Results", "Clocks") with the standard library only. Bodies are JSON.
//
//	s, err := spool.Open("/var/spool/app")
//	task, err := s.Enqueue("sendEmail", []any{"a@example.com", "hi"}, spool.Options{})
//
// An enqueue writes the whole task file into tmp/ (O_CREAT|O_EXCL), takes the
// spool's time from that file's mtime (the filesystem's clock, which every
// daemon of the spool goes by), optionally fsyncs it, and renames it into
// incoming/ under its task name: a reader sees no file or the whole file.
package spool

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"syscall"
	"time"
	"unicode/utf8"
)

const (
	// DefaultPriority is the priority of a task whose Options leave it out: lower runs first.
	DefaultPriority = 50
	// DefaultMaxBytes is the daemon's default size cap of a task file (its --max-bytes).
	DefaultMaxBytes = 16 << 20
	// KeepNoResult as Options.KeepResult keeps no result, whatever the daemon's --keep-results.
	KeepNoResult time.Duration = -1
	// The last time a file name can hold: 13 digits of ms.
	maxTime = 9_999_999_999_999
)

// Spool is a spool directory to enqueue into.
type Spool struct {
	dir string
	// Fsync makes each enqueue fsync the task file before its rename and incoming/ after it,
	// so the task survives a power loss (about 1 ms per task).
	Fsync bool
	// MaxBytes is the largest task file Enqueue writes: the daemon's --max-bytes (default DefaultMaxBytes).
	MaxBytes int
}

// Options of one enqueue. The zero value enqueues a task due now at the default priority.
type Options struct {
	// Priority from 0 (runs first) to 99; nil: DefaultPriority. spool.Int(10) makes a pointer.
	Priority *int
	// Postpone makes the task due this long from now (never earlier). 0: due now.
	Postpone time.Duration
	// Retries after the first attempt (0: the first failure makes a dead letter); nil: the daemon's default.
	Retries *int
	// Unique is a unique key (per task name): while a task holding it waits, an enqueue of the same
	// name and key adds nothing and returns the holder's id (Task.Existing). nil: no key.
	// spool.Key("k") makes a pointer; an empty key is refused (not taken for "no key").
	Unique *string
	// UniqueWhileRunning holds the key until the task has ended, not only while it waits.
	UniqueWhileRunning bool
	// KeepResult keeps the task's result in results/<id>.json this long after it ends (whole ms),
	// for Wait. 0: the daemon's --keep-results; KeepNoResult: none.
	KeepResult time.Duration
}

// Int returns a pointer to n, for Options.Priority and Options.Retries.
func Int(n int) *int { return &n }

// Key returns a pointer to key, for Options.Unique.
func Key(key string) *string { return &key }

// Task is an enqueued task (or, with Existing, the task that holds the unique key asked for).
type Task struct {
	ID       string // 13 digits of creation time (ms) and 16 hex digits of randomness
	Name     string // the registered task name
	File     string // the task's file name in incoming/ when it was enqueued
	Priority int
	Due      int64 // ms since the epoch, spool clock
	Existing bool  // a unique key was held: nothing was added, this is its holder
}

// Request is one task of EnqueueMany.
type Request struct {
	Name    string
	Args    []any
	Options Options
}

// Open returns the spool at dir, creating dir, tmp/ and incoming/ if they are missing
// (a producer may; on a spool shared between users let spoolerd create them).
func Open(dir string) (*Spool, error) {
	for _, sub := range []string{"tmp", "incoming"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o777); err != nil {
			return nil, fmt.Errorf("spool: cannot open the spool %s: %w", dir, err)
		}
	}
	return &Spool{dir: dir, MaxBytes: DefaultMaxBytes}, nil
}

// Dir is the spool's directory.
func (s *Spool) Dir() string { return s.dir }

// Enqueue adds a call of the task registered as name with args. It returns the task;
// with a unique key that is held, the holder (Existing set) and nothing is added.
// Bad input is refused with an *InvalidInputError before anything is written.
func (s *Spool) Enqueue(name string, args []any, opts Options) (Task, error) {
	p, err := s.prepare(name, args, opts)
	if err != nil {
		return Task{}, err
	}
	return s.enqueue(p)
}

// EnqueueMany adds several tasks. Every request is checked first, so bad input adds
// none of them; then each is enqueued in order. On a failure while writing, the tasks
// returned are those enqueued before it.
func (s *Spool) EnqueueMany(requests []Request) ([]Task, error) {
	prepared := make([]prepared, len(requests))
	for i, r := range requests {
		p, err := s.prepare(r.Name, r.Args, r.Options)
		if err != nil {
			return nil, fmt.Errorf("request %d: %w", i, err)
		}
		prepared[i] = p
	}
	tasks := make([]Task, 0, len(requests))
	for _, p := range prepared {
		t, err := s.enqueue(p)
		if err != nil {
			return tasks, err
		}
		tasks = append(tasks, t)
	}
	return tasks, nil
}

// prepared is a checked request: its body is encoded, only the times and the id are to come.
type prepared struct {
	name     string
	priority int
	postpone time.Duration
	body     []byte
	unique   *string
	while    string
}

func (s *Spool) prepare(name string, args []any, opts Options) (prepared, error) {
	if err := checkTaskName(name); err != nil {
		return prepared{}, err
	}
	p := prepared{name: name, priority: DefaultPriority, postpone: opts.Postpone, while: "pending"}
	if opts.Priority != nil {
		if *opts.Priority < 0 || *opts.Priority > 99 {
			return prepared{}, refused("priority", fmt.Sprintf("must be an integer from 0 (runs first) to 99, got %d", *opts.Priority))
		}
		p.priority = *opts.Priority
	}
	if opts.Postpone < 0 {
		return prepared{}, refused("postpone", "must not be negative")
	}
	if ceilMs(opts.Postpone) > maxTime-time.Now().UnixMilli() {
		return prepared{}, refused("postpone", "the due time would pass the year 2286 (13 digits of ms)")
	}
	body := []byte(`{"version":1,"type":"fcall","args":`)
	if args == nil {
		args = []any{}
	}
	body, err := appendValue(body, reflect.ValueOf(args), 1, "task.args")
	if err != nil {
		return prepared{}, err
	}
	if opts.Retries != nil {
		if *opts.Retries < 0 {
			return prepared{}, refused("retries", fmt.Sprintf("must be a non-negative integer, got %d", *opts.Retries))
		}
		body = append(body, `,"retry":{"limit":`...)
		body = append(strconv.AppendInt(body, int64(*opts.Retries), 10), '}')
	}
	switch {
	case opts.KeepResult == KeepNoResult:
		body = append(body, `,"keepResult":0`...)
	case opts.KeepResult < 0:
		return prepared{}, refused("keepResult", "must not be negative (KeepNoResult keeps none)")
	case opts.KeepResult > 0:
		body = append(body, `,"keepResult":`...)
		body = strconv.AppendInt(body, ceilMs(opts.KeepResult), 10)
	}
	if opts.UniqueWhileRunning && opts.Unique == nil {
		return prepared{}, refused("unique", "UniqueWhileRunning needs a unique key (Options.Unique)")
	}
	if opts.Unique != nil {
		if err := checkUniqueKey(*opts.Unique); err != nil {
			return prepared{}, err
		}
		key := *opts.Unique // a copy: the caller may change its string before EnqueueMany writes
		p.unique = &key
		body = append(body, `,"unique":`...)
		body, _ = appendString(body, *opts.Unique, "unique")
		if opts.UniqueWhileRunning {
			p.while = "running"
			body = append(body, `,"uniqueWhile":"running"`...)
		}
	}
	p.body = append(body, '}')
	if limit := s.maxBytes(); len(p.body) > limit {
		return prepared{}, refused("task", fmt.Sprintf("the body is %d bytes, over the size cap of %d bytes (the daemon's --max-bytes): pass large data by reference, e.g. a path", len(p.body), limit))
	}
	return p, nil
}

func (s *Spool) maxBytes() int {
	if s.MaxBytes > 0 {
		return s.MaxBytes
	}
	return DefaultMaxBytes
}

func (s *Spool) enqueue(p prepared) (Task, error) {
	if p.unique != nil {
		return s.enqueueUnique(p)
	}
	staged, task, err := s.stage(p)
	if err != nil {
		return Task{}, err
	}
	if err := s.publish(staged, task.File); err != nil {
		return Task{}, err
	}
	return task, nil
}

// stage writes the body to a new file in tmp/ (O_EXCL: never shared with another writer) and
// names the task by the spool's clock, read from that file's mtime (SPOOL-FORMAT.md, "Clocks",
// foreign producers). Returns the staged path and the task it is to become.
func (s *Spool) stage(p prepared) (string, Task, error) {
	random, err := randomHex(8)
	if err != nil {
		return "", Task{}, err
	}
	staged := filepath.Join(s.dir, "tmp", ".task-"+random)
	t0 := time.Now()
	f, err := os.OpenFile(staged, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o666)
	if err != nil {
		return "", Task{}, fmt.Errorf("spool: cannot stage a task in %s: %w", filepath.Join(s.dir, "tmp"), err)
	}
	_, err = f.Write(p.body)
	if err == nil && s.Fsync {
		err = f.Sync()
	}
	var st os.FileInfo
	if err == nil {
		st, err = f.Stat()
	}
	t1 := time.Now()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(staged)
		return "", Task{}, fmt.Errorf("spool: cannot stage a task in %s: %w", filepath.Join(s.dir, "tmp"), err)
	}
	now, due := spoolTimes(st.ModTime(), t1.Sub(t0), p.postpone)
	if due > maxTime {
		os.Remove(staged)
		return "", Task{}, refused("postpone", "the due time would pass the year 2286 (13 digits of ms)")
	}
	id := fmt.Sprintf("%013d%s", now, random)
	file := fmt.Sprintf("%02d-%013d-%s-a0-%s.json", p.priority, due, id, p.name)
	return staged, Task{ID: id, Name: p.name, File: file, Priority: p.priority, Due: due}, nil
}

// spoolTimes gives the creation time and due time of a task from its staged file's mtime, which the
// filesystem stamped at some instant of `took`. Now is the mtime (never ahead of the spool's clock);
// a postponed due time is stamped at the upper end (the mtime may lag the clock by a timer tick, or
// by up to a second where the filesystem keeps whole seconds), so it is never due early.
func spoolTimes(mtime time.Time, took time.Duration, postpone time.Duration) (now, due int64) {
	now = mtime.UnixMilli()
	if postpone == 0 {
		return now, now
	}
	lag := int64(10)
	if mtime.Nanosecond() == 0 {
		lag = 1010
	}
	return now, now + lag + ceilMs(took) + ceilMs(postpone)
}

// publish renames a staged task into incoming/ (atomic: same filesystem), with fsync of incoming/ if asked.
func (s *Spool) publish(staged, file string) error {
	if err := os.Rename(staged, filepath.Join(s.dir, "incoming", file)); err != nil {
		os.Remove(staged)
		return fmt.Errorf("spool: cannot enqueue %s: %w", file, err)
	}
	if s.Fsync {
		if err := syncDir(filepath.Join(s.dir, "incoming")); err != nil {
			return fmt.Errorf("spool: enqueued %s, but fsync of incoming/ failed: %w", file, err)
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("spool: no randomness for a task id: %w", err)
	}
	if n == 8 {
		return fmt.Sprintf("%016x", binary.BigEndian.Uint64(b)), nil
	}
	return fmt.Sprintf("%x", b), nil
}

func ceilMs(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// checkTaskName applies `[A-Za-z_][A-Za-z0-9_.:-]{0,127}` (SPOOL-FORMAT.md, "File name").
func checkTaskName(name string) error {
	if len(name) == 0 || len(name) > 128 {
		return refused("name", fmt.Sprintf("the task name %q must be 1 to 128 characters", name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		letter := c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '.' || c == ':' || c == '-')) {
			return refused("name", fmt.Sprintf("the task name %q must be the name the function was registered under: a letter or _ first, then letters, digits, _ . : -", name))
		}
	}
	return nil
}

// checkUniqueKey: 1 to 1024 characters of valid UTF-8 (SPOOL-FORMAT.md, "Body").
func checkUniqueKey(key string) error {
	if !utf8.ValidString(key) {
		return refused("unique", "the key is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(key); n == 0 || n > 1024 {
		return refused("unique", fmt.Sprintf("a key must be 1 to 1024 characters, got %d", n))
	}
	return nil
}

// InvalidInputError refuses an enqueue before anything is written: Field names the
// option or value (e.g. "task.args[1].when"), Reason says what is wrong with it.
type InvalidInputError struct {
	Field  string
	Reason string
}

func (e *InvalidInputError) Error() string { return "spool: " + e.Field + ": " + e.Reason }

func refused(field, reason string) error { return &InvalidInputError{Field: field, Reason: reason} }

// IsInvalidInput tells whether err refused the input of an enqueue.
func IsInvalidInput(err error) bool {
	var e *InvalidInputError
	return errors.As(err, &e)
}
