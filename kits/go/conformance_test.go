package spool

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The conformance vectors (conformance/vectors/produce.json of the checkout at $SPOOLERD_ROOT):
// every produce case is enqueued by this kit into <dir>/<case id>/ and judged by spoolerd's own
// checker (node dist/conformance/check.js produced <dir>); every refuse case must be refused
// (its error written to <case id>/refused, as the checker asks) with nothing enqueued.

type produceCase struct {
	ID     string          `json:"id"`
	Why    string          `json:"why"`
	Input  json.RawMessage `json:"input"`
	Refuse *string         `json:"refuse"`
}

type produceInput struct {
	Name       string          `json:"name"`
	Args       json.RawMessage `json:"args"`
	Priority   *json.Number    `json:"priority"`
	PostponeMs *json.Number    `json:"postponeMs"`
	Retries    *json.Number    `json:"retries"`
	Unique     *string         `json:"unique"`
	Encoding   string          `json:"encoding"`
}

func TestConformance(t *testing.T) {
	root := checkout(t)
	raw, err := os.ReadFile(filepath.Join(root, "conformance", "vectors", "produce.json"))
	if err != nil {
		t.Fatalf("no conformance vectors in %s: %v", root, err)
	}
	var vectors struct{ Cases []produceCase }
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	refuseCases := 0
	for _, c := range vectors.Cases {
		caseDir := filepath.Join(dir, c.ID)
		in, why := decodeInput(c.Input)
		if why != "" {
			// A JSON-only kit has no MessagePack body to write: the checker counts the case as unsupported.
			if err := os.MkdirAll(caseDir, 0o777); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(caseDir, "unsupported"), []byte(why), 0o644)
			continue
		}
		s, err := Open(caseDir)
		if err != nil {
			t.Fatal(err)
		}
		if in.typeRefuses != "" {
			err = fmt.Errorf("%s", in.typeRefuses) // the call does not compile, so nothing is enqueued
		} else {
			_, err = s.Enqueue(in.name, in.args, in.opts)
		}
		if c.Refuse != nil {
			refuseCases++
			if err == nil {
				t.Errorf("%s (%s): not refused (spoolerd refuses it: %s)", c.ID, c.Why, *c.Refuse)
			} else if in.typeRefuses == "" && !IsInvalidInput(err) {
				t.Errorf("%s: refused, but not with an InvalidInputError: %v", c.ID, err)
			}
		} else if err != nil {
			t.Errorf("%s (%s): refused: %v", c.ID, c.Why, err)
		}
		if err != nil {
			os.WriteFile(filepath.Join(caseDir, "refused"), []byte(err.Error()+"\n"), 0o644)
		}
	}
	if refuseCases == 0 {
		t.Fatal("produce.json has no refuse cases: wrong file?")
	}
	out, err := exec.Command("node", filepath.Join(root, "dist", "conformance", "check.js"), "produced", dir).CombinedOutput()
	t.Logf("check.js produced:\n%s", out)
	if err != nil {
		t.Fatalf("the checker failed (%v)", err)
	}
	if !regexp.MustCompile(`produce: [1-9]\d* passed, 0 failed`).Match(out) {
		t.Fatalf("the checker's summary is missing")
	}
}

// input is a produce case's call, in this kit's terms.
type input struct {
	name        string
	args        []any
	opts        Options
	typeRefuses string // why Go's types cannot even express the call (priority 1.5): refused at compile time
}

// Escapes of a UTF-16 surrogate: encoding/json would turn a lone one into U+FFFD, so they are
// decoded here, into the bytes a Go string would hold for them (not valid UTF-8).
var surrogateEscapes = regexp.MustCompile(`\\u[dD][89a-fA-F][0-9a-fA-F]{2}(\\u[dD][c-fC-F][0-9a-fA-F]{2})?`)

const surrogateMark = "\u0000surrogate:"

// decodeInput reads a produce case's input (tagged values: conformance/README.md). why: the kit cannot make this case.
func decodeInput(raw json.RawMessage) (in input, why string) {
	raw = surrogateEscapes.ReplaceAllFunc(raw, func(m []byte) []byte {
		if len(m) == 12 {
			return m // a pair: encoding/json decodes it
		}
		return []byte(`\u0000surrogate:` + string(m[2:]))
	})
	var p produceInput
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&p); err != nil {
		panic(err)
	}
	if p.Encoding == "msgpack" {
		return in, "this kit writes JSON bodies only"
	}
	in.name = p.Name
	if len(p.Args) > 0 {
		var args []any
		dec := json.NewDecoder(bytes.NewReader(p.Args))
		dec.UseNumber()
		if err := dec.Decode(&args); err != nil {
			panic(err)
		}
		for i, a := range args {
			args[i] = untag(a)
		}
		in.args = args
	}
	integer := func(n *json.Number, what string) *int {
		if n == nil {
			return nil
		}
		v, err := n.Int64()
		if err != nil {
			in.typeRefuses = fmt.Sprintf("%s %s is not an integer: Go's int cannot hold it", what, n)
			return nil
		}
		i := int(v)
		return &i
	}
	in.opts.Priority = integer(p.Priority, "priority")
	in.opts.Retries = integer(p.Retries, "retries")
	if ms := integer(p.PostponeMs, "postponeMs"); ms != nil {
		in.opts.Postpone = time.Duration(*ms) * time.Millisecond
		if *ms < 0 && in.opts.Postpone >= 0 {
			panic("postpone")
		}
	}
	in.opts.Unique = p.Unique
	return in, ""
}

// untag turns tagged JSON into the Go values a caller would pass.
func untag(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil && !strings.ContainsAny(v.String(), ".eE") {
			return i
		}
		f, _ := v.Float64()
		return f
	case string:
		if strings.HasPrefix(v, surrogateMark) {
			code, _ := strconv.ParseUint(v[len(surrogateMark):], 16, 16)
			// The 3 bytes UTF-8 would use for the code point: what a Go string converted from UTF-16 holds.
			return string([]byte{0xe0 | byte(code>>12), 0x80 | byte(code>>6&0x3f), 0x80 | byte(code&0x3f)})
		}
		return v
	case []any:
		for i := range v {
			v[i] = untag(v[i])
		}
		return v
	case map[string]any:
		if len(v) == 1 {
			for tag, x := range v {
				switch tag {
				case "$bytes":
					b, _ := hex.DecodeString(x.(string))
					return b
				case "$int":
					i, err := strconv.ParseInt(x.(string), 10, 64)
					if err != nil {
						panic(err)
					}
					return i
				case "$float":
					f, err := strconv.ParseFloat(x.(string), 64)
					if err != nil {
						panic(err)
					}
					if x.(string) == "-0" {
						f = math.Copysign(0, -1)
					}
					return f
				case "$function":
					return func() {}
				case "$repeat":
					r := x.(map[string]any)
					times, _ := r["times"].(json.Number).Int64()
					return strings.Repeat(r["text"].(string), int(times))
				case "$map":
					return untagMap(x.(map[string]any))
				}
			}
		}
		return untagMap(v)
	}
	return v
}

func untagMap(m map[string]any) map[string]any {
	for k := range m {
		m[k] = untag(m[k])
	}
	return m
}
