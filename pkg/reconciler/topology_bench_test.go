package reconciler_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hermes/profile-controller/internal/benchvol"
	"github.com/hermes/profile-controller/pkg/reconciler"
)

// BenchmarkReconcileKeyMultiplex is what one event costs under topology multiplex, for a named
// profile and for the root, at n profiles (every one standalone, so the converged volume stays
// converged): neither may grow with n, although the root's effective intent counts them all.
func BenchmarkReconcileKeyMultiplex(b *testing.B) {
	for _, n := range sizes() {
		newCtl, _, fake := convergedVolumeWith(b, n, func(home string, names []string) {
			for _, name := range names[1:] {
				path := filepath.Join(home, "profiles", name, "config.yaml")
				if err := os.WriteFile(path, []byte("gateway:\n  standalone: true\n"), 0o644); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, key := range []string{benchvol.ProfileName(n / 2), "default"} {
			b.Run(fmt.Sprintf("key=%s/profiles=%d", map[bool]string{true: "root", false: "named"}[key == "default"], n), func(b *testing.B) {
				ctl := newCtl()
				ctl.SetTopology(reconciler.Multiplex)
				ctx := context.Background()
				ctl.RefreshRoots()
				if err := ctl.Pass(ctx, false, false).Err; err != nil { // counts every profile
					b.Fatal(err)
				}
				loopReconcileKey(b, ctl, key, fake)
			})
		}
	}
}
