package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/safefs"
	"github.com/hermes/profile-controller/pkg/observed"
	"github.com/hermes/profile-controller/pkg/s6"
)

func TestSlotDiff(t *testing.T) {
	rendered := []s6.File{
		{Name: "type", Data: []byte("longrun\n"), Mode: 0o644},
		{Name: "run", Data: []byte("#!/bin/sh\nexec hermes\n"), Mode: 0o755},
	}
	slot := func(files map[string]string, modes map[string]uint32) *observed.Slot {
		s := &observed.Slot{Files: new(observed.SlotFiles)}
		for k, v := range files {
			*s.File(k) = observed.ManagedFile{ID: safefs.FileID{Ino: 1, Mode: unix.S_IFREG | modes[k]}, Data: []byte(v)}
		}
		return s
	}
	inSync := map[string]string{"type": "longrun\n", "run": "#!/bin/sh\nexec hermes\n"}
	modes := map[string]uint32{"type": 0o644, "run": 0o755}
	tests := []struct {
		name string
		slot *observed.Slot
		want string
	}{
		{name: "in sync", slot: slot(inSync, modes), want: ""},
		{
			name: "no slot",
			slot: nil,
			want: "# gateway-x/type: missing or unusable in the slot; rendered mode 0644\n" +
				"--- /dev/null\n+++ rendered/gateway-x/type\n@@ -0,0 +1 @@\n+longrun\n" +
				"# gateway-x/run: missing or unusable in the slot; rendered mode 0755\n" +
				"--- /dev/null\n+++ rendered/gateway-x/run\n@@ -0,0 +1,2 @@\n+#!/bin/sh\n+exec hermes\n",
		},
		{
			name: "content drift",
			slot: slot(map[string]string{"type": "longrun\n", "run": "#!/bin/sh\nexec old\n"}, modes),
			want: "--- /s/gateway-x/run\n+++ rendered/gateway-x/run\n@@ -1,2 +1,2 @@\n #!/bin/sh\n-exec old\n+exec hermes\n",
		},
		{
			name: "mode drift only",
			slot: slot(inSync, map[string]uint32{"type": 0o644, "run": 0o4755}),
			want: "# gateway-x/run: mode 4755 in the slot, 0755 rendered\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, slotDiff("/s", "gateway-x", rendered, tt.slot)); diff != "" {
				t.Errorf("slotDiff() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPrintRendered(t *testing.T) {
	var b bytes.Buffer
	err := printRendered(&b, "gateway-x", []s6.File{
		{Name: "type", Data: []byte("longrun\n"), Mode: 0o644},
		{Name: "run", Data: []byte("#!/bin/sh"), Mode: 0o755},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"==> gateway-x/type (mode 0644) <==", "longrun", "",
		"==> gateway-x/run (mode 0755) <==", "#!/bin/sh", "",
	}, "\n")
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("printRendered() (-want +got):\n%s", diff)
	}
}
