package observed

import (
	"fmt"
	"testing"
)

// BenchmarkRead reads a scandir of complete slots, each with supervise/status and a free
// supervise/lock (every other one marked down), next to a few entries Read skips.
func BenchmarkRead(b *testing.B) {
	for _, n := range []int{10, 500} {
		b.Run(fmt.Sprintf("slots=%d", n), func(b *testing.B) {
			tr := newTree(b)
			for i := range n {
				p := fmt.Sprintf("p%03d", i)
				tr.slot(p)
				tr.fixture("2.13.2.0-up.status", "gateway-"+p+"/supervise/status")
				tr.file("gateway-"+p+"/supervise/lock", "", 0o644)
				if i%2 == 1 {
					tr.file("gateway-"+p+"/down", "", 0o644)
				}
			}
			tr.dir("s6-svscan-log")
			tr.dir(".s6-svscan")
			tr.dir(".gateway-new.tmp")
			b.ReportAllocs()
			for b.Loop() {
				st, err := Read(tr.root)
				if err != nil {
					b.Fatal(err)
				}
				if len(st.Slots) != n {
					b.Fatalf("read %d slots, want %d", len(st.Slots), n)
				}
			}
		})
	}
}
