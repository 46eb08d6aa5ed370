package desired

import (
	"fmt"
	"testing"
)

func TestPort(t *testing.T) {
	tests := []struct {
		name string
		want int
	}{
		{"coder", 9570},
		{"assistant", 9714},
		{"writer", 9543},
		{"default", 9449},
		{"a", 9610},
		{"b", 9566},
		{"very-long-profile-name-here", 9318},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Port(tt.name); got != tt.want {
				t.Errorf("Port(%q) = %d, want %d", tt.name, got, tt.want)
			}
		})
	}
}

func TestPortRangeAndSpread(t *testing.T) {
	seen := map[int]bool{}
	for i := 0; i < 100; i++ {
		name := fmt.Sprintf("profile-%d", i)
		p := Port(name)
		if p < PortBase || p >= PortBase+PortRange {
			t.Fatalf("Port(%q) = %d, outside [%d, %d)", name, p, PortBase, PortBase+PortRange)
		}
		if Port(name) != p {
			t.Fatalf("Port(%q) is not deterministic", name)
		}
		seen[p] = true
	}
	// The seeds' formula gives 91 distinct ports for profile-0..99.
	if len(seen) != 91 {
		t.Errorf("profile-0..99 map to %d distinct ports, want 91", len(seen))
	}
}
