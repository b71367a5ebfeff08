package spool

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Unique keys (SPOOL-FORMAT.md, "Unique keys"), mode "keep": a key is the file
// unique/<sha256(name "\n" key)>, made exclusive by link() of a complete staged
// record, never by a check then a write.
//
//	stage the task (tmp/.task-…) -> stage the key (tmp/.unique-…) -> link it to unique/H
//	  -> linked:  unlink the staged key, rename the task into incoming/, check unique/H still names it
//	  -> EEXIST:  read unique/H (no link followed): drop both staged files, return its holder

const (
	keyFileMaxBytes = 8192
	// How long a holder whose key file vanished under us (released by its runner) is retried.
	uniqueRetryFor = 2 * time.Second
)

type keyRecord struct {
	Version int    `json:"version"`
	ID      string `json:"id"`
	File    string `json:"file"`
	Key     string `json:"key"`
	While   string `json:"while"`
}

func keyFileName(name, key string) string {
	sum := sha256.Sum256([]byte(name + "\n" + key))
	return hex.EncodeToString(sum[:])
}

func (s *Spool) enqueueUnique(p prepared) (Task, error) {
	unique := filepath.Join(s.dir, "unique")
	if err := os.MkdirAll(unique, 0o777); err != nil {
		return Task{}, fmt.Errorf("spool: cannot take a unique key: %w", err)
	}
	keyPath := filepath.Join(unique, keyFileName(p.name, *p.unique))
	started := time.Now()
	for {
		task, again, err := s.tryUnique(p, keyPath)
		if !again {
			return task, err
		}
		if time.Since(started) > uniqueRetryFor {
			return Task{}, fmt.Errorf("spool: the unique key %q of %s kept changing hands for %v; try again", *p.unique, p.name, uniqueRetryFor)
		}
	}
}

// tryUnique is one attempt; again: the key was released or lost meanwhile, start over.
func (s *Spool) tryUnique(p prepared, keyPath string) (task Task, again bool, err error) {
	staged, task, err := s.stage(p)
	if err != nil {
		return Task{}, false, err
	}
	published := false
	defer func() {
		if !published {
			os.Remove(staged)
		}
	}()
	record, _ := json.Marshal(keyRecord{Version: 1, ID: task.ID, File: task.File, Key: *p.unique, While: p.while})
	stagedKey, err := s.stageKey(append(record, '\n'))
	if err != nil {
		return Task{}, false, err
	}
	linkErr := os.Link(stagedKey, keyPath)
	os.Remove(stagedKey)
	if linkErr != nil {
		if !keyHeld(linkErr, keyPath) {
			return Task{}, false, fmt.Errorf("spool: cannot take the unique key %q of %s (unique keys need link(): local filesystems and NFS have it): %w", *p.unique, p.name, linkErr)
		}
		holder, err := readKeyFile(keyPath)
		if errors.Is(err, os.ErrNotExist) {
			return Task{}, true, nil // released between the link and the read
		}
		if err != nil {
			return Task{}, false, err
		}
		due, _ := strconv.ParseInt(fieldOf(holder.File, 1), 10, 64)
		prio, _ := strconv.Atoi(fieldOf(holder.File, 0))
		return Task{ID: holder.ID, Name: p.name, File: holder.File, Priority: prio, Due: due, Existing: true}, false, nil
	}
	if err := s.publish(staged, task.File); err != nil {
		s.releaseKey(keyPath, task.ID)
		return Task{}, false, err
	}
	published = true
	// A producer stalled past the daemons' grace (60 s) between link and rename lost its key to the
	// unique sweep: take the task back and start over rather than leave two tasks with one key.
	if holder, err := readKeyFile(keyPath); err != nil || holder.ID != task.ID {
		incoming := filepath.Join(s.dir, "incoming", task.File)
		if os.Rename(incoming, staged) == nil {
			os.Remove(staged)
			return Task{}, true, nil
		}
	}
	return task, false, nil
}

func (s *Spool) stageKey(record []byte) (string, error) {
	random, err := randomHex(6)
	if err != nil {
		return "", err
	}
	path := filepath.Join(s.dir, "tmp", fmt.Sprintf(".unique-%d-%s", os.Getpid(), random))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if err == nil {
		_, err = f.Write(record)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}
	if err != nil {
		return "", fmt.Errorf("spool: cannot stage a unique key: %w", err)
	}
	return path, nil
}

// keyHeld: link() failed because the key exists. Over sshfs an existing target gives EPERM, not EEXIST.
func keyHeld(err error, keyPath string) bool {
	if errors.Is(err, os.ErrExist) {
		return true
	}
	if errors.Is(err, syscall.EPERM) {
		_, statErr := os.Lstat(keyPath)
		return statErr == nil
	}
	return false
}

// readKeyFile reads a key record without following a link or blocking on a FIFO; unique/ is
// written by every producer, so anything but a small regular file with a valid record is refused.
func readKeyFile(path string) (keyRecord, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return keyRecord{}, err
		}
		return keyRecord{}, &BadKeyFileError{Path: path, Reason: err.Error()}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return keyRecord{}, &BadKeyFileError{Path: path, Reason: err.Error()}
	}
	if !st.Mode().IsRegular() || st.Size() > keyFileMaxBytes {
		return keyRecord{}, &BadKeyFileError{Path: path, Reason: "not a regular file of at most 8 KiB"}
	}
	data, err := io.ReadAll(io.LimitReader(f, keyFileMaxBytes+1))
	if err != nil {
		return keyRecord{}, &BadKeyFileError{Path: path, Reason: err.Error()}
	}
	var r keyRecord
	if err := json.Unmarshal(data, &r); err != nil || r.Version != 1 || !isTaskID(r.ID) || fieldOf(r.File, 2) != r.ID {
		return keyRecord{}, &BadKeyFileError{Path: path, Reason: "not a key record"}
	}
	return r, nil
}

// releaseKey gives back a key taken for a task that was not enqueued, if it still names that task
// (else the daemons' sweep does, after its grace). Moved aside first so a key taken again meanwhile survives.
func (s *Spool) releaseKey(keyPath, id string) {
	if r, err := readKeyFile(keyPath); err != nil || r.ID != id {
		return
	}
	random, err := randomHex(6)
	if err != nil {
		return
	}
	aside := filepath.Join(s.dir, "tmp", fmt.Sprintf(".unique-gone-%d-%s", os.Getpid(), random))
	if os.Rename(keyPath, aside) != nil {
		return
	}
	if r, err := readKeyFile(aside); err == nil && r.ID != id {
		os.Link(aside, keyPath)
	}
	os.Remove(aside)
}

// fieldOf returns the i-th dash-separated field of a task file name (0: priority, 1: due, 2: id).
func fieldOf(file string, i int) string {
	fields := strings.SplitN(file, "-", 4)
	if len(fields) < 4 {
		return ""
	}
	return fields[i]
}

// BadKeyFileError: unique/<hash> is there but is not a key record (a link, a directory, a big or
// broken file: another producer's mistake or a hostile one). The enqueue adds nothing.
type BadKeyFileError struct {
	Path   string
	Reason string
}

func (e *BadKeyFileError) Error() string {
	return fmt.Sprintf("spool: the unique key file %s is not a key record (%s); a daemon's sweep removes it after 60 s", e.Path, e.Reason)
}
