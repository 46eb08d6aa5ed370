// Package jsonread reads JSON values one at a time from a byte slice, without reflection: a
// decoder written for one known struct walks its bytes once, where encoding/json scans them
// once to validate, again to decode and once more for each value with its own UnmarshalJSON.
//
// The Reader is strict: it accepts only what RFC 8259 accepts, and a value it does not take
// (an integer out of range, an invalid UTF-8 string) is an error too. Its callers fall back to
// encoding/json on any error, so an input they decode gives what encoding/json would.
package jsonread

import (
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// Reader reads JSON values from b, in order.
type Reader struct {
	b []byte
	i int
}

// New returns a Reader over b.
func New(b []byte) *Reader { return &Reader{b: b} }

// errSyntax is the error of every read that does not find what it wants; the offset is enough
// for the fallback that follows.
type errSyntax struct {
	want string
	at   int
}

func (e *errSyntax) Error() string { return fmt.Sprintf("json: want %s at offset %d", e.want, e.at) }

func (r *Reader) fail(want string) error { return &errSyntax{want, r.i} }

// ws skips white space.
func (r *Reader) ws() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// peek returns the next byte after white space (0 at the end).
func (r *Reader) peek() byte {
	r.ws()
	if r.i < len(r.b) {
		return r.b[r.i]
	}
	return 0
}

// End reports an error unless only white space is left.
func (r *Reader) End() error {
	if r.peek() != 0 || r.i < len(r.b) {
		return r.fail("end of input")
	}
	return nil
}

// Null consumes a null and reports whether there was one.
func (r *Reader) Null() bool {
	if r.peek() == 'n' && r.literal("null") {
		return true
	}
	return false
}

func (r *Reader) literal(lit string) bool {
	if len(r.b)-r.i >= len(lit) && string(r.b[r.i:r.i+len(lit)]) == lit {
		r.i += len(lit)
		return true
	}
	return false
}

// Object reads an object, calling field with each key (valid only during the call); field must
// read the key's value. Keys must be distinct: a repeated key is an error, so that no caller has
// to merge two values the way encoding/json does.
func (r *Reader) Object(field func(key []byte) error) error {
	if r.peek() != '{' {
		return r.fail("{")
	}
	r.i++
	if r.peek() == '}' {
		r.i++
		return nil
	}
	var seen [24][]byte // the objects read here are small
	for n := 0; ; n++ {
		key, err := r.rawString()
		if err != nil {
			return err
		}
		for _, k := range seen[:min(n, len(seen))] {
			if string(k) == string(key) {
				return r.fail("distinct keys")
			}
		}
		if n >= len(seen) {
			return r.fail("at most 24 keys")
		}
		seen[n] = key
		if r.peek() != ':' {
			return r.fail(":")
		}
		r.i++
		if err := field(key); err != nil {
			return err
		}
		switch r.peek() {
		case ',':
			r.i++
		case '}':
			r.i++
			return nil
		default:
			return r.fail(", or }")
		}
	}
}

// Array reads an array, calling elem once per element; elem must read it.
func (r *Reader) Array(elem func() error) error {
	if r.peek() != '[' {
		return r.fail("[")
	}
	r.i++
	if r.peek() == ']' {
		r.i++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		switch r.peek() {
		case ',':
			r.i++
		case ']':
			r.i++
			return nil
		default:
			return r.fail(", or ]")
		}
	}
}

// Bool reads true or false.
func (r *Reader) Bool() (bool, error) {
	switch {
	case r.peek() == 't' && r.literal("true"):
		return true, nil
	case r.peek() == 'f' && r.literal("false"):
		return false, nil
	}
	return false, r.fail("a boolean")
}

// Int reads an integer: JSON number syntax without fraction or exponent, in int64's range.
func (r *Reader) Int() (int64, error) {
	neg := r.peek() == '-'
	if neg {
		r.i++
	}
	u, err := r.digits(1 << 63)
	if err != nil {
		return 0, err
	}
	if neg {
		return -int64(u), nil // -(1<<63) wraps to itself
	}
	if u == 1<<63 {
		return 0, r.fail("an int64")
	}
	return int64(u), nil
}

// Uint reads a non-negative integer no greater than limit.
func (r *Reader) Uint(limit uint64) (uint64, error) {
	r.ws()
	return r.digits(limit)
}

// digits reads an integer's digits (no leading zero unless it is 0, no fraction or exponent)
// and returns their value, at most limit.
func (r *Reader) digits(limit uint64) (uint64, error) {
	start := r.i
	var u uint64
	for r.i < len(r.b) && '0' <= r.b[r.i] && r.b[r.i] <= '9' {
		d := uint64(r.b[r.i] - '0')
		if u > (limit-d)/10 {
			return 0, r.fail("an integer in range")
		}
		u = u*10 + d
		r.i++
	}
	switch n := r.i - start; {
	case n == 0, n > 1 && r.b[start] == '0':
		return 0, r.fail("an integer")
	}
	if r.i < len(r.b) && (r.b[r.i] == '.' || r.b[r.i] == 'e' || r.b[r.i] == 'E') {
		return 0, r.fail("an integer")
	}
	return u, nil
}

// String reads a string.
func (r *Reader) String() (string, error) {
	raw, err := r.rawString()
	if errors.Is(err, errEscaped) {
		return r.escapedString()
	}
	return string(raw), err
}

// Quoted reads a string without escapes and returns it with its quotes, as a type's own
// UnmarshalJSON (time.Time's) wants it.
func (r *Reader) Quoted() ([]byte, error) {
	start := r.i
	if _, err := r.rawString(); err != nil {
		if errors.Is(err, errEscaped) {
			r.i = start
			return nil, r.fail("a string without escapes")
		}
		return nil, err
	}
	return r.b[start:r.i], nil
}

// errEscaped reports a string with escapes to rawString's callers.
var errEscaped = errors.New("json: escaped string")

// rawString reads a string without escapes and returns its bytes (valid only until b
// changes). At a backslash it stops with errEscaped and the reader at the opening quote.
func (r *Reader) rawString() ([]byte, error) {
	if r.peek() != '"' {
		return nil, r.fail("a string")
	}
	start := r.i + 1
	for j := start; j < len(r.b); j++ {
		switch c := r.b[j]; {
		case c == '"':
			s := r.b[start:j]
			if !utf8.Valid(s) {
				return nil, r.fail("valid UTF-8")
			}
			r.i = j + 1
			return s, nil
		case c == '\\':
			return nil, errEscaped
		case c < 0x20:
			r.i = j
			return nil, r.fail("no control character in a string")
		}
	}
	return nil, r.fail("a closing quote")
}

// escapedString reads a string with escapes (the reader at its opening quote).
func (r *Reader) escapedString() (string, error) {
	r.i++
	out := make([]byte, 0, 64)
	for r.i < len(r.b) {
		c := r.b[r.i]
		switch {
		case c == '"':
			r.i++
			if !utf8.Valid(out) {
				return "", r.fail("valid UTF-8")
			}
			return string(out), nil
		case c < 0x20:
			return "", r.fail("no control character in a string")
		case c != '\\':
			out = append(out, c)
			r.i++
			continue
		}
		if r.i+1 >= len(r.b) {
			break
		}
		r.i += 2
		switch e := r.b[r.i-1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			c, ok := r.hex4()
			if !ok {
				return "", r.fail("4 hex digits")
			}
			if utf16.IsSurrogate(c) {
				lo, ok := rune(-1), false
				if r.literal(`\u`) {
					if lo, ok = r.hex4(); !ok {
						return "", r.fail("4 hex digits")
					}
				}
				if d := utf16.DecodeRune(c, lo); d != utf8.RuneError {
					c = d
				} else {
					c = utf8.RuneError
					if ok {
						r.i -= 6 // lo was no low surrogate: it is a code unit of its own
					}
				}
			}
			out = utf8.AppendRune(out, c)
		default:
			return "", r.fail("a valid escape")
		}
	}
	return "", r.fail("a closing quote")
}

func (r *Reader) hex4() (rune, bool) {
	if len(r.b)-r.i < 4 {
		return 0, false
	}
	var c rune
	for _, h := range r.b[r.i : r.i+4] {
		switch {
		case '0' <= h && h <= '9':
			h -= '0'
		case 'a' <= h && h <= 'f':
			h -= 'a' - 10
		case 'A' <= h && h <= 'F':
			h -= 'A' - 10
		default:
			return 0, false
		}
		c = c<<4 | rune(h)
	}
	r.i += 4
	return c, true
}
