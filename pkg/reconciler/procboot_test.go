package reconciler

import (
	"testing"
	"time"
)

func TestPid1Start(t *testing.T) {
	b := pid1Start()
	if b.IsZero() || b.After(time.Now()) || time.Since(b) > 10*365*24*time.Hour {
		t.Fatalf("pid1Start = %v", b)
	}
	t.Log(b)
}
