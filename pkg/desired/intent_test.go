package desired

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func mustDecode(t testing.TB, s string) map[string]any {
	t.Helper()
	doc, err := decodeState([]byte(s))
	if err != nil {
		t.Fatalf("decodeState(%q): %v", s, err)
	}
	return doc
}

func TestIntentFromState(t *testing.T) {
	const noFile = "<no file>"
	tests := []struct {
		name      string
		doc       string // JSON object, or noFile for (nil, hasFile=false)
		readErr   error
		boot, run Intent
		warn      string // substring of the warning; "" means no warning
	}{
		// desired_state running: gateway_state is irrelevant.
		{name: "desired running alone", doc: `{"desired_state":"running"}`, boot: Up, run: Up},
		{name: "desired running, gateway stopped", doc: `{"desired_state":"running","gateway_state":"stopped"}`, boot: Up, run: Up},
		{name: "desired running, gateway startup_failed", doc: `{"desired_state":"running","gateway_state":"startup_failed"}`, boot: Up, run: Up},
		{name: "desired running, gateway starting", doc: `{"desired_state":"running","gateway_state":"starting"}`, boot: Up, run: Up},
		{name: "desired running, gateway unknown", doc: `{"desired_state":"running","gateway_state":"weird"}`, boot: Up, run: Up},
		{name: "desired running, gateway not a string", doc: `{"desired_state":"running","gateway_state":[1]}`, boot: Up, run: Up},

		// desired_state stopped: gateway_state is irrelevant.
		{name: "desired stopped alone", doc: `{"desired_state":"stopped"}`, boot: Down, run: Down},
		{name: "desired stopped, gateway running", doc: `{"desired_state":"stopped","gateway_state":"running"}`, boot: Down, run: Down},
		{name: "desired stopped, gateway draining", doc: `{"desired_state":"stopped","gateway_state":"draining"}`, boot: Down, run: Down},
		{name: "desired stopped, gateway starting", doc: `{"desired_state":"stopped","gateway_state":"starting"}`, boot: Down, run: Down},
		{name: "desired stopped, gateway unknown", doc: `{"desired_state":"stopped","gateway_state":7}`, boot: Down, run: Down},

		// desired_state absent: gateway_state decides.
		{name: "gateway running", doc: `{"gateway_state":"running"}`, boot: Up, run: Up},
		{name: "gateway draining", doc: `{"gateway_state":"draining"}`, boot: Up, run: Up},
		{name: "gateway degraded", doc: `{"gateway_state":"degraded"}`, boot: Up, run: Up},
		{name: "gateway stopped", doc: `{"gateway_state":"stopped"}`, boot: Down, run: Down},
		{name: "gateway startup_failed", doc: `{"gateway_state":"startup_failed"}`, boot: Down, run: Down},
		{name: "gateway starting", doc: `{"gateway_state":"starting"}`, boot: Down, run: Hold},
		{name: "gateway absent", doc: `{"pid":12,"kind":"hermes-gateway"}`, boot: Down, run: Hold},
		{name: "empty object", doc: `{}`, boot: Down, run: Hold},
		{name: "gateway null", doc: `{"gateway_state":null}`, boot: Down, run: Hold},
		{name: "gateway unknown value", doc: `{"gateway_state":"paused"}`, boot: Down, run: Hold, warn: `gateway_state is "paused", an unknown state`},
		{name: "gateway wrong case", doc: `{"gateway_state":"RUNNING"}`, boot: Down, run: Hold, warn: `"RUNNING"`},
		{name: "gateway number", doc: `{"gateway_state":1}`, boot: Down, run: Hold, warn: "gateway_state is a number"},
		{name: "gateway object", doc: `{"gateway_state":{}}`, boot: Down, run: Hold, warn: "an object"},

		// Explicit null counts as absent.
		{name: "desired null, gateway running", doc: `{"desired_state":null,"gateway_state":"running"}`, boot: Up, run: Up},
		{name: "desired null, gateway starting", doc: `{"desired_state":null,"gateway_state":"starting"}`, boot: Down, run: Hold},
		{name: "desired null alone", doc: `{"desired_state":null}`, boot: Down, run: Hold},

		// Any other desired_state value or type: Down at boot, Hold at runtime, with a warning,
		// whatever gateway_state says.
		{name: "desired unknown value", doc: `{"desired_state":"paused"}`, boot: Down, run: Hold, warn: `desired_state is "paused"`},
		{name: "desired unknown, gateway running", doc: `{"desired_state":"paused","gateway_state":"running"}`, boot: Down, run: Hold, warn: "desired_state"},
		{name: "desired unknown, gateway stopped", doc: `{"desired_state":"up","gateway_state":"stopped"}`, boot: Down, run: Hold, warn: "desired_state"},
		{name: "desired empty string", doc: `{"desired_state":""}`, boot: Down, run: Hold, warn: `desired_state is ""`},
		{name: "desired wrong case", doc: `{"desired_state":"Running"}`, boot: Down, run: Hold, warn: `"Running"`},
		{name: "desired padded", doc: `{"desired_state":" running"}`, boot: Down, run: Hold, warn: `" running"`},
		{name: "desired with newline", doc: `{"desired_state":"running\nx"}`, boot: Down, run: Hold, warn: `"running\nx"`},
		{name: "desired number", doc: `{"desired_state":1}`, boot: Down, run: Hold, warn: `desired_state is a number "1"`},
		{name: "desired bool", doc: `{"desired_state":true}`, boot: Down, run: Hold, warn: "a boolean"},
		{name: "desired array", doc: `{"desired_state":["running"]}`, boot: Down, run: Hold, warn: "an array"},
		{name: "desired object", doc: `{"desired_state":{"x":1}}`, boot: Down, run: Hold, warn: "an object"},
		{name: "desired long value shortened", doc: `{"desired_state":"` + strings.Repeat("x", 500) + `"}`, boot: Down, run: Hold, warn: `xxx"...`},

		// No file, unreadable file.
		{name: "no file", doc: noFile, boot: Down, run: Hold},
		{name: "unreadable", doc: noFile, readErr: errors.New("file too big: 70000 bytes, limit 65536"), boot: Down, run: Hold, warn: "unusable, ignored: file too big"},
		{name: "read error wins over a good doc", doc: `{"desired_state":"running"}`, readErr: errors.New("not a JSON object"), boot: Down, run: Hold, warn: "not a JSON object"},
		{name: "multi-line read error kept on one line", doc: noFile, readErr: errors.New("a\nb"), boot: Down, run: Hold, warn: `a\nb`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc map[string]any
			hasFile := tt.doc != noFile
			if hasFile {
				doc = mustDecode(t, tt.doc)
			}
			boot, run, warn := IntentFromState(doc, hasFile, tt.readErr)
			if boot != tt.boot || run != tt.run {
				t.Errorf("intents = boot %v, runtime %v; want boot %v, runtime %v", boot, run, tt.boot, tt.run)
			}
			if tt.warn == "" && warn != "" {
				t.Errorf("unexpected warning %q", warn)
			}
			if tt.warn != "" && !strings.Contains(warn, tt.warn) {
				t.Errorf("warning %q does not contain %q", warn, tt.warn)
			}
			if strings.ContainsAny(warn, "\r\n") {
				t.Errorf("warning is not one line: %q", warn)
			}
		})
	}
}

func TestIntentFromStateNilDocWithFile(t *testing.T) {
	boot, run, warn := IntentFromState(nil, true, nil)
	if boot != Down || run != Hold || warn == "" {
		t.Errorf("IntentFromState(nil, true, nil) = %v, %v, %q; want down, hold and a warning", boot, run, warn)
	}
}

func TestDecodeState(t *testing.T) {
	bom := "\xef\xbb\xbf"
	tests := []struct {
		name    string
		in      string
		wantKey string // a key the decoded object must hold
		wantErr string // substring of the error; "" means success
	}{
		{name: "empty object", in: `{}`},
		{name: "compact gateway write", in: `{"pid":1,"gateway_state":"running","argv":["a"],"start_time":null}`, wantKey: "gateway_state"},
		{name: "BOM", in: bom + `{"desired_state":"running"}`, wantKey: "desired_state"},
		{name: "trailing white space", in: "{\"a\":1}\n\t \r\n", wantKey: "a"},
		{name: "leading white space", in: "\n {\"a\":1}", wantKey: "a"},
		{name: "huge number kept", in: `{"a":1e400}`, wantKey: "a"},
		{name: "nested", in: `{"platforms":{"x":{"state":"connected"}}}`, wantKey: "platforms"},

		{name: "empty", in: ``, wantErr: "empty"},
		{name: "white space only", in: " \n", wantErr: "empty"},
		{name: "BOM only", in: bom, wantErr: "empty"},
		{name: "double BOM", in: bom + bom + `{}`, wantErr: "invalid JSON"},
		{name: "UTF-16 BOM", in: "\xff\xfe{\x00}\x00", wantErr: "UTF-8"},
		{name: "invalid UTF-8 in a string", in: "{\"a\":\"\xff\"}", wantErr: "UTF-8"},
		{name: "array", in: `["running"]`, wantErr: "not a JSON object (top level is an array)"},
		{name: "null", in: `null`, wantErr: "top level is null"},
		{name: "string", in: `"running"`, wantErr: "a string"},
		{name: "number", in: `1`, wantErr: "a number"},
		{name: "truncated", in: `{"a":`, wantErr: "invalid JSON"},
		{name: "trailing object", in: `{}{}`, wantErr: "trailing data"},
		{name: "trailing garbage", in: `{"a":1} x`, wantErr: "trailing data"},
		{name: "trailing comma", in: `{"a":1,}`, wantErr: "invalid JSON"},
		{name: "single quotes", in: `{'a':1}`, wantErr: "invalid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := decodeState([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("decodeState(%q) = %v, %v; want an error containing %q", tt.in, doc, err, tt.wantErr)
				}
				if doc != nil {
					t.Errorf("decodeState returned a doc with an error: %v", doc)
				}
				return
			}
			if err != nil {
				t.Fatalf("decodeState(%q): %v", tt.in, err)
			}
			if doc == nil {
				t.Fatal("nil doc without an error")
			}
			if _, ok := doc[tt.wantKey]; tt.wantKey != "" && !ok {
				t.Errorf("decoded %v lacks key %q", doc, tt.wantKey)
			}
		})
	}
}

func TestPriorState(t *testing.T) {
	tests := []struct {
		name string
		doc  string // "" means no state file
		want string
	}{
		{name: "no file", want: "None"},
		{name: "empty object", doc: `{}`, want: "None"},
		{name: "desired running", doc: `{"desired_state":"running","gateway_state":"stopped"}`, want: "running"},
		{name: "desired stopped beats gateway running", doc: `{"desired_state":"stopped","gateway_state":"running"}`, want: "stopped"},
		{name: "desired invalid shown verbatim", doc: `{"desired_state":"paused","gateway_state":"running"}`, want: "paused"},
		{name: "desired number", doc: `{"desired_state":42}`, want: "42"},
		{name: "desired bool", doc: `{"desired_state":false}`, want: "false"},
		{name: "desired empty string", doc: `{"desired_state":""}`, want: `""`},
		{name: "desired with space quoted", doc: `{"desired_state":"a b"}`, want: `"a b"`},
		{name: "desired with newline quoted", doc: `{"desired_state":"a\nb"}`, want: `"a\nb"`},
		{name: "desired array quoted", doc: `{"desired_state":["x y"]}`, want: `"[\"x y\"]"`},
		{name: "desired long shortened", doc: `{"desired_state":"` + strings.Repeat("r", 100) + `"}`, want: `"` + strings.Repeat("r", 64) + `"...`},
		{name: "desired null falls back to gateway", doc: `{"desired_state":null,"gateway_state":"stopped"}`, want: "stopped"},
		{name: "gateway running", doc: `{"gateway_state":"running"}`, want: "running"},
		{name: "gateway draining shown as running", doc: `{"gateway_state":"draining"}`, want: "running"},
		{name: "gateway degraded shown as running", doc: `{"gateway_state":"degraded"}`, want: "running"},
		{name: "gateway starting", doc: `{"gateway_state":"starting"}`, want: "starting"},
		{name: "gateway startup_failed", doc: `{"gateway_state":"startup_failed"}`, want: "startup_failed"},
		{name: "gateway unknown verbatim", doc: `{"gateway_state":"weird"}`, want: "weird"},
		{name: "gateway number", doc: `{"gateway_state":3}`, want: "3"},
		{name: "gateway null", doc: `{"gateway_state":null}`, want: "None"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Profile
			if tt.doc != "" {
				applyState(&p, mustDecode(t, tt.doc))
			}
			if got := p.PriorState(); got != tt.want {
				t.Errorf("PriorState() = %s, want %s", got, tt.want)
			}
		})
	}
}

func FuzzIntentFromState(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"desired_state":"running"}`, `{"desired_state":"stopped","gateway_state":"running"}`,
		`{"gateway_state":"starting"}`, `{"gateway_state":"draining"}`, `{"desired_state":null}`,
		`{"desired_state":1}`, "\xef\xbb\xbf{\"gateway_state\":\"degraded\"}", `[]`, `null`, `{} x`, "", "\xff",
		`{"desired_state":"a\nb","gateway_state":{"x":[1,2,{"y":null}]}}`, `{"gateway_state":"a b"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := decodeState(b)
		if (doc == nil) == (err == nil) {
			t.Fatalf("decodeState(%q) = %v, %v: want exactly one of doc and error", b, doc, err)
		}
		boot, run, warn := IntentFromState(doc, true, err)
		if boot != Up && boot != Down {
			t.Fatalf("boot intent %v: the boot column is only up or down", boot)
		}
		if run != Up && run != Down && run != Hold {
			t.Fatalf("runtime intent %d is not one of up, down, hold", run)
		}
		if boot == Up && run != Up || run == Up && boot != Up {
			t.Fatalf("boot %v and runtime %v disagree on up", boot, run)
		}
		if err != nil && warn == "" {
			t.Fatalf("decode failed (%v) but there is no warning", err)
		}
		if strings.ContainsAny(warn, "\r\n") {
			t.Fatalf("warning is not one line: %q", warn)
		}
		if err == nil {
			var p Profile
			applyState(&p, doc)
			prior := p.PriorState()
			if prior == "" || strings.ContainsAny(prior, "\r\n") {
				t.Fatalf("PriorState() = %q: want a non-empty single line", prior)
			}
			if strings.ContainsAny(prior, " \t") {
				if _, qerr := strconv.Unquote(strings.TrimSuffix(prior, "...")); qerr != nil {
					t.Fatalf("PriorState() = %q holds white space but is not quoted", prior)
				}
			}
			if d, ok := doc["desired_state"].(string); ok && d == "running" && boot != Up {
				t.Fatalf("desired_state running gave boot %v", boot)
			}
		}
	})
}
