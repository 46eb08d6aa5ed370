package jsonread

import (
	"encoding/json"
	"math"
	"testing"
)

// Strings read the same as encoding/json reads them, escapes included; what encoding/json
// would change (invalid UTF-8) or refuse is an error.
func TestString(t *testing.T) {
	for _, in := range []string{
		`""`, `"plain"`, `"é ü 水"`, `"a\"b\\c\/d"`, `"\b\f\n\r\t"`, `"\u00e9\u6c34"`,
		`"\u003cscript\u003e \u0026"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\ude00x"`, `"\ud83d\u0041"`,
		`"\ud83d\ud83d\ude00"`,
	} {
		var want string
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatalf("%s: encoding/json: %v", in, err)
		}
		r := New([]byte(in))
		got, err := r.String()
		if err == nil {
			err = r.End()
		}
		if err != nil || got != want {
			t.Errorf("String(%s) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{`"abc`, `"a` + "\n" + `b"`, `"\x"`, `"\u12"`, `"\u12zz"`, "\"\xff\"", `abc`, `"a" x`} {
		r := New([]byte(in))
		if got, err := r.String(); err == nil && r.End() == nil {
			t.Errorf("String(%q) = %q, want an error", in, got)
		}
	}
}

// Integers take JSON's syntax only, and nothing out of range.
func TestIntegers(t *testing.T) {
	ints := map[string]int64{"0": 0, "-0": 0, "7": 7, "-12": -12, " 42": 42,
		"9223372036854775807": math.MaxInt64, "-9223372036854775808": math.MinInt64}
	for in, want := range ints {
		if got, err := New([]byte(in)).Int(); err != nil || got != want {
			t.Errorf("Int(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-", "+1", "01", "-01", "1.0", "1e3", "1E3", "9223372036854775808", "-9223372036854775809", "x"} {
		if got, err := New([]byte(in)).Int(); err == nil {
			t.Errorf("Int(%q) = %d, want an error", in, got)
		}
	}
	if got, err := New([]byte("18446744073709551615")).Uint(math.MaxUint64); err != nil || got != math.MaxUint64 {
		t.Errorf("Uint(max) = %d, %v", got, err)
	}
	for _, in := range []string{"18446744073709551616", "-1", "4294967296"} {
		if got, err := New([]byte(in)).Uint(math.MaxUint32); err == nil {
			t.Errorf("Uint(%q, MaxUint32) = %d, want an error", in, got)
		}
	}
}

// Objects and arrays: any spacing, no trailing commas, no repeated keys, nothing after the end.
func TestObjectsAndArrays(t *testing.T) {
	read := func(in string) (map[string][]int64, error) {
		r := New([]byte(in))
		out := map[string][]int64{}
		err := r.Object(func(key []byte) error {
			var vs []int64
			err := r.Array(func() error {
				v, err := r.Int()
				vs = append(vs, v)
				return err
			})
			out[string(key)] = vs
			return err
		})
		if err == nil {
			err = r.End()
		}
		return out, err
	}
	if got, err := read(" {\n\t\"a\" : [ 1 , 2 ] ,\"b\":[],\"c\":[3]\r\n} "); err != nil || len(got) != 3 || len(got["a"]) != 2 || got["c"][0] != 3 {
		t.Errorf("read = %v, %v", got, err)
	}
	if _, err := read(`{}`); err != nil {
		t.Errorf("empty object: %v", err)
	}
	for _, in := range []string{`{"a":[1],}`, `{"a":[1,]}`, `{"a":[1] "b":[2]}`, `{"a":[1],"a":[2]}`, `{"a":[1]} {}`, `{"a"[1]}`, `{a:[1]}`, `{"a":[1]`, `[1]`} {
		if got, err := read(in); err == nil {
			t.Errorf("read(%s) = %v, want an error", in, got)
		}
	}
}

// Literals must be whole: a boolean or null followed by letters is no literal.
func TestLiterals(t *testing.T) {
	for in, want := range map[string]bool{"true": true, " false": false} {
		if got, err := New([]byte(in)).Bool(); err != nil || got != want {
			t.Errorf("Bool(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"tru", "nul", "True", "1"} {
		r := New([]byte(in))
		if v, err := r.Bool(); err == nil && r.End() == nil {
			t.Errorf("Bool(%q) = %v, want an error", in, v)
		}
	}
	if r := New([]byte("nullx")); !r.Null() || r.End() == nil {
		t.Error(`"nullx": want null, then an error at its end`)
	}
	if r := New([]byte(`"null"`)); r.Null() {
		t.Error(`the string "null" read as null`)
	}
}
