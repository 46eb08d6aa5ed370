package desired

import (
	"regexp"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string // substring of the error; "" means valid
	}{
		{name: "plain", in: "coder"},
		{name: "hyphen", in: "my-profile"},
		{name: "underscore and digit", in: "assistant_v2"},
		{name: "one letter", in: "a"},
		{name: "one digit", in: "0"},
		{name: "leading digit", in: "0abc"},
		{name: "trailing hyphen", in: "a-"},
		{name: "default is a valid name", in: "default"},
		{name: "242 bytes (staging 255)", in: strings.Repeat("a", 242)},

		{name: "empty", in: "", wantErr: "empty"},
		{name: "uppercase", in: "BadName", wantErr: `has "B" at byte 0`},
		{name: "uppercase inside", in: "badName", wantErr: `has "N" at byte 3`},
		{name: "leading hyphen", in: "-x", wantErr: `starts with "-"`},
		{name: "leading underscore", in: "_x", wantErr: `starts with "_"`},
		{name: "space", in: "my profile", wantErr: `has " " at byte 2`},
		{name: "tab", in: "a\tb", wantErr: `has "\t" at byte 1`},
		{name: "dot inside", in: "my.profile", wantErr: `has "." at byte 2`},
		{name: "leading dot", in: ".hidden", wantErr: `has "." at byte 0`},
		{name: "dot", in: ".", wantErr: `has "."`},
		{name: "dotdot", in: "..", wantErr: `has "."`},
		{name: "slash", in: "a/b", wantErr: `has "/" at byte 1`},
		{name: "traversal", in: "../etc", wantErr: `has "."`},
		{name: "newline", in: "a\nb", wantErr: `"a\nb" has "\n" at byte 1`},
		{name: "shell substitution", in: "$(x)", wantErr: `has "$" at byte 0`},
		{name: "semicolon", in: "a;rm", wantErr: `has ";"`},
		{name: "non-UTF-8 byte", in: "a\xffb", wantErr: `has "\xff" at byte 1`},
		{name: "UTF-8 letter", in: "caf\u00e9", wantErr: `at byte 3`},
		{name: "NUL", in: "a\x00", wantErr: `has "\x00"`},
		{name: "243 bytes (staging 256)", in: strings.Repeat("a", 243), wantErr: "243 bytes, at most 242"},
		{name: "255 bytes", in: strings.Repeat("a", 255), wantErr: "at most 242"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateName(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateName(%q) = %v, want nil", tt.in, err)
				}
				if got := len(SlotPrefix + tt.in); got > MaxSlotNameLen {
					t.Fatalf("accepted name gives a %d-byte slot name", got)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateName(%q) = nil, want an error containing %q", tt.in, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ValidateName(%q) = %q, want it to contain %q", tt.in, err, tt.wantErr)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

var nameOracle = regexp.MustCompile(NamePattern)

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"coder", "a", "0", "my-profile", "assistant_v2", "", "BadName", "-x", "_x",
		"a b", "..", ".x", "a/b", "a\nb", "$(x)", "\xff", strings.Repeat("a", 242), strings.Repeat("a", 243)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidateName(name)
		want := nameOracle.MatchString(name) && len(name) <= MaxNameLen
		if (err == nil) != want {
			t.Fatalf("ValidateName(%q) = %v, but the pattern and length say valid=%v", name, err, want)
		}
		if err != nil {
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		if len(name) == 0 || len(name) > 242 || name[0] == '.' || strings.ContainsAny(name, "/ \t\r\n\v\f") {
			t.Fatalf("accepted %q", name)
		}
		for i := 0; i < len(name); i++ {
			if c := name[i]; c >= 0x80 || ('A' <= c && c <= 'Z') {
				t.Fatalf("accepted %q with byte %#x", name, c)
			}
		}
	})
}
