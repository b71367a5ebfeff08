package spool

import (
	"math"
	"reflect"
	"sort"
	"strconv"
	"unicode/utf8"
)

// The rules of SPOOL-FORMAT.md, "Values", for a JSON body.
const (
	maxSafeInteger = 1<<53 - 1
	// The body object is level 1, so args is level 2.
	maxNesting = 64
	// A pointer chain longer than this is a cycle (a pointer to itself) rather than data.
	maxPointerChain = 1000
)

// appendValue writes v as JSON, refusing what SPOOL-FORMAT.md "Values" rules out
// rather than writing what encoding/json would (it silently turns invalid UTF-8
// into U+FFFD and writes integers beyond 2^53 that every reader rounds).
// level is the nesting level of the container v sits in; path names v in errors.
func appendValue(b []byte, v reflect.Value, level int, path string) ([]byte, error) {
	for chain := 0; v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface; chain++ {
		if v.IsNil() {
			return append(b, "null"...), nil
		}
		if chain > maxPointerChain {
			return nil, refused(path, "a cycle of pointers")
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Invalid:
		return append(b, "null"...), nil
	case reflect.Bool:
		return strconv.AppendBool(b, v.Bool()), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n := v.Int()
		if n > maxSafeInteger || n < -maxSafeInteger {
			return nil, refused(path, "an integer beyond ±(2^53 − 1), which readers would round: send it as a string")
		}
		return strconv.AppendInt(b, n, 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n := v.Uint()
		if n > maxSafeInteger {
			return nil, refused(path, "an integer beyond 2^53 − 1, which readers would round: send it as a string")
		}
		return strconv.AppendUint(b, n, 10), nil
	case reflect.Float32, reflect.Float64:
		return appendFloat(b, v.Float(), path)
	case reflect.String:
		return appendString(b, v.String(), path)
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return nil, refused(path, "bytes: a JSON body cannot carry them; send base64 text")
		}
		if v.Kind() == reflect.Slice && v.IsNil() {
			return append(b, "null"...), nil
		}
		if level+1 > maxNesting {
			return nil, refused(path, "nested deeper than 64 levels of arrays and maps (the body is level 1)")
		}
		b = append(b, '[')
		for i := 0; i < v.Len(); i++ {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendValue(b, v.Index(i), level+1, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return nil, refused(path, "a map whose keys are not strings ("+v.Type().String()+")")
		}
		if v.IsNil() {
			return append(b, "null"...), nil
		}
		if level+1 > maxNesting {
			return nil, refused(path, "nested deeper than 64 levels of arrays and maps (the body is level 1)")
		}
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			key := k.String()
			var err error
			if b, err = appendString(b, key, path+" (a key)"); err != nil {
				return nil, err
			}
			b = append(b, ':')
			if b, err = appendValue(b, v.MapIndex(k), level+1, path+"."+key); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	default:
		// Structs (time.Time included), channels, functions, complex numbers: no plain value
		// every reader agrees on. Convert to a map[string]any, or a time to its ms (UnixMilli).
		return nil, refused(path, "a "+v.Type().String()+", which is not a plain value (nil, bool, number, string, slice, map with string keys); convert it, e.g. a time to its UnixMilli()")
	}
}

// appendFloat writes a finite double as JSON.stringify does (readers read every JSON number as a double).
func appendFloat(b []byte, f float64, path string) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, refused(path, "NaN and infinities are not allowed")
	}
	if f == 0 {
		return append(b, '0'), nil // −0 too: the sign of zero is not part of the format
	}
	abs, format := math.Abs(f), byte('f')
	if abs < 1e-6 || abs >= 1e21 {
		format = 'e'
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// 1e-07 -> 1e-7, as JSON.stringify writes it.
		if n := len(b); n-start >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string; s must be valid UTF-8 (the format refuses anything else).
func appendString(b []byte, s string, path string) ([]byte, error) {
	if !utf8.ValidString(s) {
		return nil, refused(path, "a string that is not valid UTF-8")
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"'), nil
}
