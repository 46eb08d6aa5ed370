package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"k8s.io/klog/v2"
)

// TestLogger: lines name the logger and the caller, levels are readable, V levels are numbers,
// verbosity filters, and klog (client-go's workqueue) lands in the same stream.
func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	log, flush := newLogger("json", 4, &buf)
	log.Info("Changed", "profile", "coder")
	log.V(1).Info("Decided")
	log.V(4).Info("Per pass")
	log.V(5).Info("Too verbose")
	log.Error(errors.New("boom"), "Failed")
	klog.InfoS("From klog", "queue", "profiles")
	klog.V(4).InfoS("From klog at 4")
	klog.V(5).InfoS("From klog at 5")
	flush()

	type line struct {
		Level  string   `json:"level"`
		V      *float64 `json:"v"`
		Logger string   `json:"logger"`
		Caller string   `json:"caller"`
		Msg    string   `json:"msg"`
		Error  string   `json:"error"`
	}
	byMsg := map[string]line{}
	for _, raw := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var l line
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			t.Fatalf("not a JSON line: %q", raw)
		}
		byMsg[l.Msg] = l
	}
	v := func(n float64) *float64 { return &n }
	tests := []struct {
		msg, level, logger string
		v                  *float64
	}{
		{"Changed", "info", "controller", v(0)},
		{"Decided", "debug", "controller", v(1)},
		{"Per pass", "debug", "controller", v(4)},
		{"Failed", "error", "controller", nil},
		{"From klog", "info", "controller.klog", v(0)},
		{"From klog at 4", "debug", "controller.klog", v(4)},
	}
	for _, tt := range tests {
		l, ok := byMsg[tt.msg]
		if !ok {
			t.Errorf("no line %q in:\n%s", tt.msg, buf.String())
			continue
		}
		if l.Level != tt.level || l.Logger != tt.logger {
			t.Errorf("%q: level %q logger %q, want %q %q", tt.msg, l.Level, l.Logger, tt.level, tt.logger)
		}
		if (l.V == nil) != (tt.v == nil) || l.V != nil && *l.V != *tt.v {
			t.Errorf("%q: v = %v, want %v", tt.msg, l.V, tt.v)
		}
		if !strings.HasPrefix(tt.logger, "controller.klog") && !strings.HasPrefix(l.Caller, "profile-controller/logger_test.go:") {
			t.Errorf("%q: caller %q, want this test file", tt.msg, l.Caller)
		}
	}
	if byMsg["Failed"].Error != "boom" {
		t.Errorf("error line: %+v", byMsg["Failed"])
	}
	for _, msg := range []string{"Too verbose", "From klog at 5"} {
		if _, ok := byMsg[msg]; ok {
			t.Errorf("%q was logged at verbosity 4", msg)
		}
	}
	if strings.Contains(buf.String(), "Level(") {
		t.Errorf("a level printed as Level(-n):\n%s", buf.String())
	}
}

func TestLoggerConsole(t *testing.T) {
	var buf bytes.Buffer
	log, flush := newLogger("console", 1, &buf)
	log.V(1).Info("Decided", "profile", "coder")
	flush()
	out := buf.String()
	for _, want := range []string{"DEBUG", "controller", "logger_test.go:", "Decided", `"profile": "coder"`, `"v": 1`} {
		if !strings.Contains(out, want) {
			t.Errorf("console line lacks %q: %s", want, out)
		}
	}
}

func TestLoggerVerbosityChangesLive(t *testing.T) {
	var buf bytes.Buffer
	log, flush, setVerbosity := newLoggerLevel("json", 0, &buf)
	log.V(1).Info("Hidden")
	setVerbosity(1)
	log.V(1).Info("Shown")
	setVerbosity(0)
	log.V(1).Info("Hidden again")
	flush()
	out := buf.String()
	if strings.Contains(out, "Hidden") || !strings.Contains(out, `"msg":"Shown"`) {
		t.Errorf("verbosity not followed: %s", out)
	}
}
