package spool_test

import (
	"fmt"
	"log"
	"time"

	"spoolerd/spool"
)

// The example of README.md (kept in step with it by TestReadmeExample; compiled, not run, by go test).
func Example() {
	s, err := spool.Open("/var/spool/app") // makes tmp/ and incoming/ if missing
	if err != nil {
		log.Fatal(err)
	}
	// The tasks of examples/tasks.ts: greet(name), remind(what), checksum(text, rounds).
	if _, err := s.Enqueue("greet", []any{"Ada"}, spool.Options{}); err != nil {
		log.Fatal(err)
	}
	_, err = s.Enqueue("remind", []any{"water the plants"}, spool.Options{
		Priority: spool.Int(10),       // 0 runs first, 99 last; default 50
		Postpone: 10 * time.Minute,    // due in 10 minutes, never earlier
		Retries:  spool.Int(5),        // retries after the first attempt
		Unique:   spool.Key("plants"), // while one waits, another enqueue adds nothing and returns its id (Existing)
	})
	if err != nil {
		log.Fatal(err)
	}
	task, err := s.Enqueue("checksum", []any{"hello", 3}, spool.Options{KeepResult: time.Hour})
	if err != nil {
		log.Fatal(err)
	}
	result, err := s.Wait(task.ID, 30*time.Second) // reads results/<id>.json
	if err != nil {
		log.Fatal(err) // a *spool.TaskNotProcessedError (errors.Is(err, spool.ErrTaskDead) …) or a timeout
	}
	fmt.Println(result.Value) // the digest checksum returned
}
