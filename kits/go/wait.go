package spool

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Result is how a task ended: its record results/<id>.json (SPOOL-FORMAT.md, "Results").
type Result struct {
	Version    int             `json:"version"`
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Ending     string          `json:"ending"` // processed, skipped, dead, cancelled or expired
	Value      any             `json:"-"`      // processed: what the task returned, as encoding/json decodes it into an any
	ValueJSON  json.RawMessage `json:"value,omitempty"`
	ValueError string          `json:"valueError,omitempty"`
	Reason     string          `json:"reason,omitempty"`
	Error      *RemoteError    `json:"error,omitempty"`
	Attempts   int             `json:"attempts"`
	Owner      string          `json:"owner"`
	FinishedAt int64           `json:"finishedAt"`
	KeepUntil  int64           `json:"keepUntil"`
}

// RemoteError is a dead letter's final error, as the task threw it in the daemon.
type RemoteError struct {
	Name    string `json:"name,omitempty"`
	Message string `json:"message"`
	Stack   string `json:"stack,omitempty"`
}

// Sentinels for errors.Is on what Wait returns.
var (
	ErrTaskDead        = errors.New("spool: the task is a dead letter")
	ErrTaskSkipped     = errors.New("spool: the task was skipped")
	ErrTaskCancelled   = errors.New("spool: the task was cancelled")
	ErrTaskExpired     = errors.New("spool: the task expired before it ran")
	ErrResultValueLost = errors.New("spool: the task was processed but its value was not kept")
	ErrResultTimeout   = errors.New("spool: no result in time")
)

// TaskNotProcessedError: the task ended other than processed with a value (Result says how).
// errors.Is matches it with ErrTaskDead, ErrTaskSkipped, ErrTaskCancelled, ErrTaskExpired or ErrResultValueLost.
type TaskNotProcessedError struct {
	Code   string // SPOOL_TASK_DEAD, SPOOL_TASK_SKIPPED, SPOOL_TASK_CANCELLED, SPOOL_TASK_EXPIRED, SPOOL_RESULT_VALUE_LOST
	Result *Result
	kind   error
}

func (e *TaskNotProcessedError) Error() string {
	r := e.Result
	task := fmt.Sprintf("task %s %s", r.Name, r.ID)
	switch e.kind {
	case ErrTaskDead:
		msg := r.Reason
		if r.Error != nil {
			msg = r.Error.Name + ": " + r.Error.Message
		}
		return fmt.Sprintf("%s is a dead letter after %d attempt(s): %s (spool show %s; spool retry %s to run it again)", task, r.Attempts, msg, r.ID, r.ID)
	case ErrResultValueLost:
		return fmt.Sprintf("%s was processed, but its value was not kept: %s", task, r.ValueError)
	}
	reason := ""
	if r.Reason != "" {
		reason = ": " + r.Reason
	}
	return fmt.Sprintf("%s %s%s", task, map[error]string{ErrTaskSkipped: "was skipped", ErrTaskCancelled: "was cancelled", ErrTaskExpired: "expired before it ran"}[e.kind], reason)
}

func (e *TaskNotProcessedError) Is(target error) bool { return target == e.kind }

// ResultTimeoutError: no result appeared within the timeout. errors.Is(err, ErrResultTimeout).
type ResultTimeoutError struct {
	ID      string
	Timeout time.Duration
}

func (e *ResultTimeoutError) Error() string {
	return fmt.Sprintf("spool: no result for task %s after %v (did it ask to keep its result? Options.KeepResult, or the daemon's --keep-results)", e.ID, e.Timeout)
}

func (e *ResultTimeoutError) Is(target error) bool { return target == ErrResultTimeout }

// How often Wait looks for the record: a stat of one name, so cheap, yet soon after it appears.
const waitPoll = 20 * time.Millisecond

// Wait returns the result of task id once its record appears in results/ (it is renamed into
// place whole), polling; timeout <= 0 waits as long as it takes. A task that ended processed
// returns its Result; any other ending returns the Result and a *TaskNotProcessedError.
// Only tasks that keep their result (Options.KeepResult, --keep-results) leave a record.
func (s *Spool) Wait(id string, timeout time.Duration) (*Result, error) {
	if !isTaskID(id) {
		return nil, refused("id", fmt.Sprintf("%q is not a task id (13 digits and 16 lowercase hex digits)", id))
	}
	path := filepath.Join(s.dir, "results", id+".json")
	deadline := time.Now().Add(timeout)
	for {
		r, err := readResult(path, s.maxBytes())
		if err == nil {
			return r, r.failure()
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if timeout > 0 && time.Now().After(deadline) {
			return nil, &ResultTimeoutError{ID: id, Timeout: timeout}
		}
		time.Sleep(waitPoll)
	}
}

func (r *Result) failure() error {
	kind, code := map[string]error{
		"dead": ErrTaskDead, "skipped": ErrTaskSkipped, "cancelled": ErrTaskCancelled, "expired": ErrTaskExpired,
	}[r.Ending], "SPOOL_TASK_"+map[string]string{"dead": "DEAD", "skipped": "SKIPPED", "cancelled": "CANCELLED", "expired": "EXPIRED"}[r.Ending]
	if r.Ending == "processed" {
		if r.ValueError == "" {
			return nil
		}
		kind, code = ErrResultValueLost, "SPOOL_RESULT_VALUE_LOST"
	}
	if kind == nil {
		return fmt.Errorf("spool: the result of task %s has an ending this kit does not know: %q", r.ID, r.Ending)
	}
	return &TaskNotProcessedError{Code: code, Result: r, kind: kind}
}

// readResult reads a record without following a link (results/ is the daemon's, but be safe).
func readResult(path string, maxBytes int) (*Result, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("spool: the result %s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, int64(maxBytes)+1<<20))
	if err != nil {
		return nil, fmt.Errorf("spool: cannot read the result %s: %w", path, err)
	}
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("spool: the result %s is not a JSON record: %w", path, err)
	}
	if len(r.ValueJSON) > 0 {
		if err := json.Unmarshal(r.ValueJSON, &r.Value); err != nil {
			return nil, fmt.Errorf("spool: the value in %s: %w", path, err)
		}
	}
	return &r, nil
}

// isTaskID: 13 decimal digits, then 16 lowercase hex digits.
func isTaskID(id string) bool {
	if len(id) != 29 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || i >= 13 && c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
