package reconciler

import (
	"errors"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
)

func TestKeyLogAddsTheProfileAndKeepsTheCaller(t *testing.T) {
	var lines []string
	base := funcr.New(func(prefix, args string) { lines = append(lines, args) },
		funcr.Options{LogCaller: funcr.All, Verbosity: 1})
	log := newKeyLogs(base).of("alpha")
	log.Info("Applied action", "action", "start")
	log.V(1).Error(errors.New("boom"), "Reconcile failed")
	log.V(2).Info("not written")
	log.WithValues("slot", "gateway-alpha").Info("With values")
	newKeyLogs(logr.Discard()).of("beta").Info("discarded") // no sink: must not panic

	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3: %q", len(lines), lines)
	}
	for _, l := range lines {
		if !strings.Contains(l, `"profile"="alpha"`) {
			t.Errorf("line %s lacks the profile", l)
		}
		if !strings.Contains(l, `"file"="keylog_test.go"`) {
			t.Errorf("line %s does not name this file as its caller", l)
		}
	}
	if !strings.Contains(lines[2], `"slot"="gateway-alpha"`) {
		t.Errorf("WithValues lost its value: %s", lines[2])
	}
}
